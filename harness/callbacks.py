"""The Hydra callback that gives a multirun one MLflow parent run.

``on_multirun_start`` (launching process, before any job): resolve the store to an absolute URI,
create the database and the experiment once, open the parent run, and write
``<sweep dir>/harness_sweep.json`` (URI, experiment id, parent id, swept keys) for the jobs, which may
run in other processes. ``on_multirun_end`` ends the parent: FINISHED when every child finished,
else FAILED (children left RUNNING by a crashed worker are marked FAILED too). Jobs never raise (a
failed job is recorded as a FAILED child), so this end is always reached; should Hydra itself fail,
``harness.app.main`` ends the parent as FAILED.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

SWEEP_FILE = "harness_sweep.json"
STATE: dict[str, Any] = {}  # the open parent run of this process, and the failed-job count


def swept_keys(config: DictConfig) -> list[str]:
    """Keys varied by this multirun: sweep overrides on the command line and sweeper params."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    keys = []
    for o in OverridesParser.create().parse_overrides(list(config.hydra.overrides.task)):
        if o.is_sweep_override():
            keys.append(o.key_or_group)
    params = config.hydra.sweeper.get("params") or {}
    keys += [k for k in params if k not in keys]
    return keys


class SweepCallback(Callback):
    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        from harness import tracking
        from harness.runner import git_commit

        cwd = config.hydra.runtime.cwd
        uri = tracking.resolve_uri(config.tracking.uri, cwd)
        experiment = config.tracking.experiment or config.study
        experiment_id = tracking.prepare(uri, experiment)
        sweep_dir = (Path(cwd) / config.hydra.sweep.dir).resolve()
        keys = swept_keys(config)
        tags = {"harness.sweep_dir": str(sweep_dir), "harness.swept": ",".join(keys),
                "harness.overrides": " ".join(config.hydra.overrides.task)}  # fmt: skip
        commit = git_commit(cwd)
        if commit:
            tags["harness.git_commit"] = commit
        name = f"sweep {sweep_dir.name}: {', '.join(keys) or 'no swept keys'}"
        parent = tracking.Run.start(uri, experiment_id, name, tags)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        info = {"uri": uri, "experiment_id": experiment_id, "parent_id": parent.run_id, "swept": keys,
                "sweep_dir": str(sweep_dir)}  # fmt: skip
        (sweep_dir / SWEEP_FILE).write_text(json.dumps(info))
        STATE.update(info, experiment=experiment, ended=False, failed=0)
        print(f"sweep: parent run {parent.run_id} in experiment {experiment!r} ({uri})", file=sys.stderr)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        end_parent()


def find_sweep_file(output_dir: str | Path) -> dict:
    """The sweep's info, found upwards from a job's output folder (sweep dir / subdir)."""
    for folder in Path(output_dir).resolve().parents:
        if (folder / SWEEP_FILE).is_file():
            return json.loads((folder / SWEEP_FILE).read_text())
    raise RuntimeError(
        f"no {SWEEP_FILE} above {output_dir}: the sweep callback could not open the MLflow parent run "
        "(see the warning Hydra printed above); check tracking.uri and that the store is writable"
    )


def end_parent(crashed: bool = False) -> None:
    """End this process's open parent run from its children's statuses (idempotent)."""
    if not STATE or STATE.get("ended"):
        return
    from harness import tracking

    uri, exp, parent = STATE["uri"], STATE["experiment_id"], STATE["parent_id"]
    statuses = tracking.child_statuses(uri, exp, parent)
    client = tracking.client(uri)
    for run_id, status in statuses.items():
        if status == "RUNNING":  # its worker died before ending it
            client.set_terminated(run_id, "FAILED")
    failed = sum(s != "FINISHED" for s in statuses.values())
    tracking.Run(uri, parent).end("FAILED" if failed or crashed else "FINISHED")
    STATE.update(ended=True, failed=failed)
    print(
        f"sweep done: {len(statuses) - failed} of {len(statuses)} jobs finished"
        f"{f', {failed} FAILED' if failed else ''}; experiment {STATE['experiment']!r}, "
        f"parent run {parent}\nopen the UI: {tracking.ui_hint(uri)}",
        file=sys.stderr,
    )
