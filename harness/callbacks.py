"""The Hydra callback that gives a multirun one MLflow parent run, and the end of that run.

Before Hydra starts, ``harness.app.main`` has checked and created the store and the experiment, marked
lost runs FAILED and, for ``resume=...``, chosen the parent to continue; it hands these to the callback
as a ``Launch`` in ``$HARNESS_LAUNCH`` (an environment variable: no module holds state).

``on_multirun_start`` (launching process, before any job) opens the parent, or sets the resumed one
RUNNING again, and hands every job the store, the experiment and the parent's id through
``hydra.job.env_set`` (``HARNESS_SWEEP``): a job never searches folders for its parent, so it finds it
from any working directory, process or machine. ``end_parent`` (``on_multirun_end``, or ``main`` after a
signal or a crash) ends the parent from each job's latest attempt, once: FINISHED when every job has a
FINISHED child; after a signal KILLED (FAILED if a child failed); otherwise FAILED. A child left RUNNING
whose process is gone is marked too, never left RUNNING.
"""

from __future__ import annotations

import base64
import json
import os
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, open_dict, read_write

SWEEP_ENV = "HARNESS_SWEEP"
LAUNCH_ENV = "HARNESS_LAUNCH"


@dataclass
class Launch:
    """What ``main`` decided before Hydra started: the store, the experiment, the number of jobs, the
    parent to resume (None: a new sweep) and whether the pre-flight composed every job (the sweeper
    then does not compose them again: ``hydra_plugins.harness_launchers.sweeper``)."""

    uri: str
    experiment: str
    experiment_id: str
    jobs: int = 1
    resume_id: str | None = None
    validated: bool = False

    def export(self) -> None:
        """Hand this launch to the callback and the jobs of this process (and its children)."""
        os.environ[LAUNCH_ENV] = encode(asdict(self))

    @classmethod
    def from_env(cls) -> Launch | None:
        text = os.environ.get(LAUNCH_ENV)
        return cls(**json.loads(base64.urlsafe_b64decode(text))) if text else None


@dataclass
class Outcome:
    status: str  # the parent's
    summary: str  # "3 of 4 jobs FINISHED, 1 FAILED; parent run ... FAILED"
    unfinished: int  # jobs without a FINISHED run: main exits 1 when there are any
    story: str = ""  # the sweep's findings (extremes, theory), printed after the summary


def swept_values(config: DictConfig) -> dict[str, str]:
    """The keys this multirun varies (sweep overrides on the command line, then sweeper params), each
    with its values as written (``model.depth``: ``10,20``): the parent's params."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    values = {}
    for o in OverridesParser.create().parse_overrides(list(config.hydra.overrides.task)):
        if o.is_sweep_override():
            values[o.key_or_group] = ",".join(o.sweep_string_iterator())
    for key, line in (config.hydra.sweeper.get("params") or {}).items():
        values.setdefault(key, str(line))
    return {k.lstrip("+~"): v[:6000] for k, v in values.items()}


def without_resume(overrides: list[str]) -> list[str]:
    return [o for o in overrides if o.split("=", 1)[0].lstrip("+~") != "resume"]


def encode(info: dict) -> str:
    """The sweep's info as a Hydra-safe string (no quotes, no interpolation)."""
    return base64.urlsafe_b64encode(json.dumps(info).encode()).decode()


def sweep_info() -> dict:
    """In a job: what ``on_multirun_start`` handed it."""
    text = os.environ.get(SWEEP_ENV)
    if not text:
        raise RuntimeError(
            f"${SWEEP_ENV} is not set: the sweep callback did not run (see Hydra's output above); "
            "check tracking.uri and that the store is writable"
        )
    return json.loads(base64.urlsafe_b64decode(text))


def sweep_started() -> dict | None:
    """In the launching process, after ``on_multirun_start``: the sweep's info, else None."""
    return sweep_info() if os.environ.get(SWEEP_ENV) else None


class SweepCallback(Callback):
    """Opens the sweep's parent run (``on_multirun_start``) and ends it (``on_multirun_end``)."""

    def __init__(self) -> None:
        self.parent: Any = None
        self.info: dict = {}

    def __getstate__(self) -> dict:
        """Launchers pickle the callbacks with every job; the parent run (its heartbeat thread and
        lock) stays in the launching process."""
        return {"parent": None, "info": self.info}

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        from harness import tracking

        cwd = config.hydra.runtime.cwd
        launch = Launch.from_env()
        if launch is None:  # launched without harness.app.main
            uri = tracking.resolve_uri(config.tracking.uri, cwd)
            experiment = config.tracking.experiment or config.study
            launch = Launch(uri, experiment, tracking.prepare(uri, experiment), jobs=0)
        sweep_dir = (Path(cwd) / config.hydra.sweep.dir).resolve()
        values = swept_values(config)
        self.parent = _open_parent(config, launch, sweep_dir, values)
        self.info = _hand_over(config, launch, self.parent.run_id, list(values))
        verb = "resuming" if launch.resume_id else "sweep:"
        print(f"{verb} parent run {self.parent.run_id} in experiment {launch.experiment!r} ({launch.uri})",
              file=sys.stderr)  # fmt: skip

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        end_parent(self.info, parent=self.parent)


def _open_parent(config: DictConfig, launch: Launch, sweep_dir: Path, values: dict[str, str]) -> Any:
    """The parent run, new or resumed (RUNNING again), with the swept values as written."""
    from harness import tracking
    from harness.provenance import git_commit

    overrides = without_resume(list(config.hydra.overrides.task))
    tags = {
        "harness.kind": "sweep",
        "harness.sweep_dir": str(sweep_dir),
        "harness.swept": ",".join(values),
        "harness.overrides": " ".join(overrides),
        "harness.task_overrides": json.dumps(overrides),
    }
    commit = git_commit(config.hydra.runtime.cwd)
    if commit:
        tags[tracking.GIT_COMMIT_TAG] = commit
    heartbeat = float(config.tracking.heartbeat_seconds)
    if launch.resume_id:
        tags["harness.resumed"] = time.strftime("%Y-%m-%d %H:%M:%S")
        parent = tracking.reopen(launch.uri, launch.resume_id, tags, heartbeat)
    else:
        name = f"sweep {sweep_dir.name}: {', '.join(values) or 'no swept keys'}"
        parent = tracking.Run.start(launch.uri, launch.experiment_id, name, tags, heartbeat=heartbeat)
    # from here on the parent is ended whatever happens (end_parent)
    parent.set_tags({"harness.swept_values": json.dumps(values)[:5000]})  # this launch's, as written
    if not launch.resume_id:  # a param cannot change: a resumed sweep keeps its first values
        parent.log_params(values)
    parent.flush()  # the swept values show on the parent while its jobs run
    return parent


def _hand_over(config: DictConfig, launch: Launch, parent_id: str, swept: list[str]) -> dict:
    """Give every job (``hydra.job.env_set``) and this process the sweep's info."""
    from harness import processes

    cwd = config.hydra.runtime.cwd
    info = {"uri": launch.uri, "experiment": launch.experiment, "experiment_id": launch.experiment_id,
            "parent_id": parent_id, "swept": swept, "resume": bool(launch.resume_id), "jobs": launch.jobs,
            "launched": int(time.time() * 1000), "launcher": [processes.host(), os.getpid()]}  # fmt: skip
    with read_write(config.hydra), open_dict(config.hydra):
        # the folder as resolved here: jobs that compose their config again elsewhere (submitit)
        # would resolve ${now:} and the uid anew
        sweep_dir = Path(cwd, str(config.hydra.sweep.dir)).resolve()
        info["sweep_dir"] = str(sweep_dir)
        config.hydra.overrides.hydra.append(f"++hydra.job.env_set.{SWEEP_ENV}='{encode(info)}'")
        config.hydra.sweep.dir = str(sweep_dir)
        config.hydra.overrides.hydra.append(f"hydra.sweep.dir='{sweep_dir}'")
    os.environ[SWEEP_ENV] = encode(info)  # jobs of the basic launcher run in this process
    return info


def end_parent(
    info: dict, stop: BaseException | None = None, crashed: bool = False, parent: Any = None
) -> Outcome:
    """End the sweep's parent run from its children, once: a parent no longer RUNNING is left as it
    is. The outcome is printed here unless a signal stopped the sweep (``main`` prints that line)."""
    from harness import processes, story, tracking

    uri, parent_id = info["uri"], info["parent_id"]
    try:
        ended = tracking.get_run(uri, parent_id)
        if ended is not None and ended.info.status != "RUNNING":
            return _ended_outcome(ended)
        with processes.deferred():
            outcome = _end(info, parent or tracking.Run(uri, parent_id), stop, crashed)
    except Exception as err:  # the store itself failed
        summary = (
            f"could not record the end of the sweep in {uri} ({tracking.first_line(err)}); make the store "
            f"writable again (disk space, permissions); the next launch of study {info['experiment']!r} "
            "marks the runs left RUNNING as FAILED, and resume=true runs the unfinished jobs"
        )
        print(f"harness: {summary}", file=sys.stderr)
        return Outcome("FAILED", summary, 1)
    if stop is None:
        params = [story.param_key(k) for k in info["swept"]]
        search = f"tags.mlflow.parentRunId = '{parent_id}'"
        link = runs_link(uri, info["experiment_id"], f"sweep-{parent_id[:12]}", params, search, parent_id)
        print(f"sweep done: {outcome.summary}{outcome.story}\n{link}", file=sys.stderr)
    return outcome


def _ended_outcome(run: Any) -> Outcome:
    tags = run.data.tags
    unfinished = int(tags.get("harness.jobs", 0)) - int(tags.get("harness.jobs_finished", 0))
    status = run.info.status
    return Outcome(
        status, f"parent run {run.info.run_id} {status}", max(unfinished, int(status != "FINISHED"))
    )


def runs_link(
    uri: str, experiment_id: str, key: str, params: list[str], search: str = "", parent: str | None = None
) -> str:
    """Where to look: a saved view ``key`` of the runs table (the runs matching ``search``, sorted by the
    key metric, the key metrics and ``params`` as columns), the ``parent``'s figures, how to start the UI."""
    from harness import story, tracking

    try:
        link = tracking.runs_view(uri, experiment_id, key, list(story.KEY_METRICS), params, search=search)
    except Exception as err:  # the view is a convenience: the runs are recorded
        return f"open the UI: {tracking.ui_hint(uri)} (no saved view: {tracking.first_line(err)})"
    line = f"runs table (sorted by {story.KEY_METRICS[0]}): {link}"
    if parent:
        line += f"\nthe sweep's figures and CSV: {tracking.run_link(uri, experiment_id, parent, 'artifacts')}"
    return line + tracking.ui_start(uri)


def _mark_lost(uri: str, experiment_id: str, parent_id: str, stop: BaseException | None) -> list:
    """The parent's children, those left RUNNING by a worker that died marked KILLED or FAILED."""
    from harness import processes, tracking

    runs = tracking.children(uri, experiment_id, parent_id)
    c = tracking.client(uri)
    now, here, lost = time.time(), processes.host(), 0
    for r in runs:
        reason = r.info.status == "RUNNING" and tracking.lost_reason(r.data.tags, now, here)
        if reason:  # its worker died before ending it
            c.set_tag(r.info.run_id, "harness.lost", f"{reason}; marked by the sweep's end")
            c.set_terminated(r.info.run_id, "KILLED" if stop is not None else "FAILED")
            lost += 1
    return tracking.children(uri, experiment_id, parent_id) if lost else runs


def _end(info: dict, parent: Any, stop: BaseException | None, crashed: bool) -> Outcome:
    from harness import processes, sweep_story, tracking

    runs = _mark_lost(info["uri"], info["experiment_id"], parent.run_id, stop)
    latest = {r.data.tags.get("harness.job_num", r.info.run_id): r for r in runs}  # oldest first: latest wins
    count = {s: sum(r.info.status == s for r in latest.values()) for s in ("FINISHED", "FAILED", "KILLED")}
    jobs = max(info.get("jobs", 0), len(latest))
    missing = jobs - len(latest)
    if stop is not None:
        status = "FAILED" if count["FAILED"] else "KILLED"
    else:
        status = "FINISHED" if count["FINISHED"] == jobs and not crashed else "FAILED"
    parent.end(status)  # first: on a full disk an update may still go through where inserts do not
    tags = {"harness.jobs": str(jobs), "harness.jobs_finished": str(count["FINISHED"])}
    if missing:
        tags["harness.jobs_without_run"] = str(missing)
    parent.set_tags(tags)
    parent.flush()
    story = ""
    try:
        findings = sweep_story.tell(parent, list(latest.values()), info["swept"], jobs, stop is None)
        story = f"\n{findings}" if findings else ""
    except Exception as err:  # the status is recorded; the story is a summary of what is stored
        processes.say(f"harness: no summary in the sweep's parent run ({tracking.first_line(err)})")
    parts = [f"{count['FINISHED']} of {jobs} jobs FINISHED"]
    parts += [f"{count[s]} {s}" for s in ("FAILED", "KILLED") if count[s]]
    if missing:
        parts.append(f"{missing} without a run" if stop is None else f"{missing} not started")
    if info.get("resume"):
        skipped = sum(
            r.info.start_time < info["launched"] and r.info.status == "FINISHED" for r in latest.values()
        )
        ran = sum(r.info.start_time >= info["launched"] for r in runs)
        parts.append(f"{skipped} skipped as already FINISHED, {ran} run now")
    summary = f"{', '.join(parts)}; parent run {parent.run_id} {status}"
    return Outcome(status, summary, jobs - count["FINISHED"], story)
