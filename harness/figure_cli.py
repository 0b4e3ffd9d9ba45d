"""``harness-figure NAME``: build ``harness/figure_configs/NAME.yaml`` into ``figures/NAME/``
(see ``harness.figures``).

harness-figure --list                 # the shipped figures
harness-figure sigmoid_vs_relu        # build (runs only the jobs the store lacks, launcher=joblib)
harness-figure trainability --launcher slurm
harness-figure phase_diagram --uri sqlite:///elsewhere.db --out paper/figs
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from omegaconf import OmegaConf

from harness import figure_launch, processes
from harness.config import STUDY_ALLOWED, STUDY_NAME, ConfigError, flatten
from harness.figure_table import table, write_csv
from harness.figures import (
    FigureSpec,
    Job,
    attach_hashes,
    check_metric_is_recorded,
    jobs_of,
    parse_figure,
)
from harness.preflight import CONF_DIR, check_key, compose_and_parse
from harness.story import run_name
from harness.tracking import StoreError

FIGURE_DIR = Path(__file__).resolve().parent / "figure_configs"  # package data, outside Hydra's groups
FIGURE_EXPERIMENT = "figures"
ARRAY_KINDS = ("profile", "heatmap", "spectrum", "map")  # the kinds drawn from the runs' arrays/stats.npz


class JobsFailed(RuntimeError):
    """Some of a figure's jobs ran but did not finish: the figure is not drawn."""


@dataclass
class Built:
    spec: FigureSpec
    jobs: list[Job]
    ran: int
    reused: int
    files: list[Path]
    figure_run_id: str
    figures_experiment_id: str = ""


def shipped() -> list[str]:
    return sorted(p.stem for p in FIGURE_DIR.glob("*.yaml"))


def figure_path(name: str) -> Path:
    """A shipped figure's config, or a path to your own ``.yaml``."""
    own = name.endswith((".yaml", ".yml"))
    path = Path(name) if own else FIGURE_DIR / f"{name}.yaml"
    if not path.is_file() or not (own or name in shipped()):
        raise ConfigError(f"figure: unknown figure {name!r}; allowed: {', '.join(shipped())} or a .yaml path")
    if not STUDY_NAME.fullmatch(path.stem):  # the stem names figures/<stem>/ and the figure's run
        raise ConfigError(f"figure: the file name {path.name!r} is not {STUDY_ALLOWED} (then .yaml)")
    return path


def prepare_jobs(name: str) -> tuple[FigureSpec, list[Job]]:
    """Everything that can be checked without a store: ConfigError (one line) on any bad value."""
    path = figure_path(name)
    spec = parse_figure(path.stem, OmegaConf.to_container(OmegaConf.load(path), resolve=True))
    for key, value in spec.base.items():
        check_key(key, [str(value)])
    for key in {k for case in spec.cases for k in case if k != "label"}:
        check_key(key, [str(case[key]) for case in spec.cases if key in case])
    for key, values in spec.sweep.items():
        try:
            check_key(key, [str(v) for v in values])
        except ConfigError as err:
            raise ConfigError(f"sweep: unknown factor {key!r} ({err})") from None
    jobs = jobs_of(spec)
    from hydra import initialize_config_dir

    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        for job in jobs:
            job.config = compose_and_parse(job.overrides)
    check_metric_is_recorded(spec, jobs)
    attach_hashes(jobs)
    return spec, jobs


def _job_name(job: Job) -> str:
    return f"{run_name(job.config, list(job.factors))} seed={job.seed}"


def _find_runs(uri: str, experiment_id: str, jobs: list[Job]) -> list[Job]:
    """Set each job's FINISHED run (same config hash); the jobs that have none."""
    from harness import tracking

    missing = []
    for job in jobs:
        found = tracking.finished_runs_by_hash(uri, experiment_id, job.config_hash)
        job.run_id = found[0].info.run_id if found else ""
        if not found:
            missing.append(job)
    return missing


def _run_missing(
    spec: FigureSpec, jobs: list[Job], uri: str, experiment_id: str, launcher: str, cwd: Path
) -> int:
    """Run the jobs the store lacks (JobsFailed if any does not finish); how many ran."""
    missing = _find_runs(uri, experiment_id, jobs)
    if missing:
        print(f"harness-figure {spec.name}: {len(missing)} of {len(jobs)} job(s) to run", file=sys.stderr)
        figure_launch.run(spec, missing, launcher, uri, cwd)
        failed = _find_runs(uri, experiment_id, missing)
        if failed:
            raise JobsFailed(
                f"{len(failed)} job(s) did not finish ({', '.join(_job_name(j) for j in failed[:3])}"
                f"{', ...' if len(failed) > 3 else ''}); the sweep's output above and their runs in "
                f"experiment {spec.study!r} say why; run the same command again to retry them"
            )
    return len(missing)


def _draw(spec: FigureSpec, jobs: list[Job], uri: str, out: str | Path) -> list[Path]:
    """Read the runs back, tabulate, plot; write the CSV, PNG and PDF."""
    from harness import tracking
    from harness.sweep_plots import PLOTTERS

    client = tracking.client(uri)
    data = {}
    for run_id in dict.fromkeys(job.run_id for job in jobs):
        arrays = tracking.load_arrays(uri, run_id) if spec.plot["kind"] in ARRAY_KINDS else {}
        data[run_id] = {"arrays": arrays, "metrics": tracking.metrics_of(client.get_run(run_id))}
    frame = table(spec, jobs, data)
    figure = PLOTTERS[spec.plot["kind"]](frame, spec.plot, spec.style, spec.title)
    folder = Path(out) / spec.name
    folder.mkdir(parents=True, exist_ok=True)
    files = [folder / f"{spec.name}.csv", folder / f"{spec.name}.png", folder / f"{spec.name}.pdf"]
    write_csv(frame, files[0])
    figure.savefig(files[1], dpi=spec.style.get("dpi", 150), metadata={"Software": None})
    figure.savefig(files[2], metadata={"CreationDate": None, "Creator": None, "Producer": None})
    return files


def _record(
    spec: FigureSpec, jobs: list[Job], ran: int, files: list[Path], uri: str, source: Path, cwd: Path
):  # noqa: ANN202
    """The figure's run in the ``figures`` experiment (one per figure config, updated by a rebuild):
    its files, config, source runs, versions and git commit."""
    from harness import tracking
    from harness.provenance import git_commit, versions

    tags = {"harness.figure": spec.name, "harness.figure_hash": spec.digest(),
            "harness.source_runs": ",".join(dict.fromkeys(j.run_id for j in jobs))[:5000],
            "harness.source_experiment": spec.study}  # fmt: skip
    tags |= {f"version.{k}": v for k, v in versions().items()}
    commit = git_commit(cwd)
    if commit:
        tags[tracking.GIT_COMMIT_TAG] = commit
    figures_id = tracking.prepare(uri, FIGURE_EXPERIMENT)
    before = tracking.run_with_tags(
        uri, figures_id, {"harness.figure": spec.name, "harness.figure_hash": spec.digest()}
    )
    if before is None:  # first build of this config
        run = tracking.Run.start(uri, figures_id, spec.name, tags | {"harness.builds": "1"})
    else:  # the same config again: its run is updated (artifacts replaced, metrics appended)
        builds = int(before.data.tags.get("harness.builds", "1")) + 1
        run = tracking.reopen(uri, before.info.run_id, tags | {"harness.builds": str(builds)})
    run.log_params(
        flatten({"plot": spec.plot, "style": spec.style}) | {"seeds": spec.seeds, "jobs": len(jobs)}
    )
    run.log_metrics([("jobs_ran", ran, 0), ("jobs_reused", len(jobs) - ran, 0)])
    sources = [{"run_id": j.run_id, "config_hash": j.config_hash, "seed": j.seed, **j.factors} for j in jobs]
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "sources.json").write_text(json.dumps(sources, indent=1))
        (Path(tmp) / f"{spec.name}.yaml").write_text(source.read_text())
        for file in [*files, Path(tmp) / "sources.json", Path(tmp) / f"{spec.name}.yaml"]:
            tracking.log_file(uri, run.run_id, file, "figure")
    run.end()
    return run.run_id, figures_id


def build(
    name: str, uri: str | None = None, out: str | Path = "figures", cwd: Path | None = None,
    launcher: str = "joblib",
) -> Built:  # fmt: skip
    """Validate, run what the store lacks, draw, and record the figure's run."""
    from harness import tracking

    cwd = Path.cwd() if cwd is None else Path(cwd)
    figure_launch.check_launcher(launcher)
    spec, jobs = prepare_jobs(name)
    uri = tracking.resolve_uri(uri, cwd)
    tracking.check_store(uri)
    experiment_id = tracking.prepare(uri, spec.study)
    ran = _run_missing(spec, jobs, uri, experiment_id, launcher, cwd)
    files = _draw(spec, jobs, uri, out)
    run_id, figures_id = _record(spec, jobs, ran, files, uri, figure_path(name), cwd)
    return Built(spec, jobs, ran, len(jobs) - ran, files, run_id, figures_id)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="harness-figure", description="Build a figure from its config.")
    parser.add_argument("name", nargs="?", help=f"a figure in {FIGURE_DIR}, or a path to a figure .yaml")
    parser.add_argument("--list", action="store_true", help="list the shipped figures")
    parser.add_argument("--uri", help="tracking URI (default: $MLFLOW_TRACKING_URI, else ./mlruns/mlflow.db)")
    parser.add_argument("--out", default="figures", help="output folder (default: figures)")
    parser.add_argument(
        "--launcher", default="joblib", help="Hydra launcher for the missing jobs: a conf/launcher choice "
        "(default: joblib, the local cores)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    if args.list or not args.name:
        print("\n".join(shipped()))
        return
    processes.install()
    try:
        built = build(args.name, args.uri, args.out, launcher=args.launcher)
    except (ConfigError, StoreError) as err:  # bad input, or a store that cannot be used
        print(f"harness-figure: error: {err}", file=sys.stderr)
        sys.exit(2)
    except (JobsFailed, figure_launch.LaunchFailed) as err:
        print(f"harness-figure: error: {err}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt as stop:
        processes.say(
            f"harness-figure: stopped by {processes.signal_name(stop)}; the finished jobs are kept, and "
            f"the same command runs only the missing ones"
        )
        sys.exit(processes.exit_code(stop))
    from harness import tracking

    uri = tracking.resolve_uri(args.uri, Path.cwd())
    print(
        f"figure {built.spec.name}: ran {built.ran} job(s), reused {built.reused} run(s); wrote "
        f"{', '.join(str(f) for f in built.files)}\nfigure run {built.figure_run_id} in experiment "
        f"{FIGURE_EXPERIMENT!r}: "
        f"{tracking.run_link(uri, built.figures_experiment_id, built.figure_run_id, 'artifacts')}"
        f"{tracking.ui_start(uri)}",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
