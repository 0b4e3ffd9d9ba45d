"""The Hydra callback that gives a multirun one MLflow parent run, and the end of that run.

Before Hydra starts, ``harness.app.main`` has checked and created the store and the experiment, marked
lost runs FAILED and, for ``resume=...``, chosen the parent to continue; it leaves these in ``STATE``.

``on_multirun_start`` (launching process, before any job) opens the parent, or sets the resumed one
RUNNING again, and hands every job the store, the experiment and the parent's id through
``hydra.job.env_set`` (``HARNESS_SWEEP``): a job never searches folders for its parent, so it finds it
from any working directory, process or machine. ``end_parent`` ends the parent from each job's latest
attempt: FINISHED when every job has a FINISHED child; after a signal KILLED (FAILED if a child
failed); otherwise FAILED. A child left RUNNING whose process is gone is marked too, never left RUNNING.
"""

from __future__ import annotations

import base64
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, open_dict, read_write

SWEEP_ENV = "HARNESS_SWEEP"
STATE: dict[str, Any] = {}  # this launch: store, experiment, parent run, expected jobs, outcome


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


class SweepCallback(Callback):
    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        from harness import processes, tracking
        from harness.runner import git_commit

        cwd = config.hydra.runtime.cwd
        if "uri" not in STATE:  # launched without harness.app.main
            STATE["uri"] = tracking.resolve_uri(config.tracking.uri, cwd)
            STATE["experiment"] = config.tracking.experiment or config.study
            STATE["experiment_id"] = tracking.prepare(STATE["uri"], STATE["experiment"])
        uri, experiment_id = STATE["uri"], STATE["experiment_id"]
        sweep_dir = (Path(cwd) / config.hydra.sweep.dir).resolve()
        values = swept_values(config)
        keys = list(values)
        overrides = without_resume(list(config.hydra.overrides.task))
        tags = {
            "harness.kind": "sweep",
            "harness.sweep_dir": str(sweep_dir),
            "harness.swept": ",".join(keys),
            "harness.overrides": " ".join(overrides),
            "harness.task_overrides": json.dumps(overrides),
        }
        commit = git_commit(cwd)
        if commit:
            tags["harness.git_commit"] = commit
        heartbeat = float(config.tracking.heartbeat_seconds)
        launched = int(time.time() * 1000)
        if STATE.get("resume_id"):
            tags["harness.resumed"] = time.strftime("%Y-%m-%d %H:%M:%S")
            parent = tracking.reopen(uri, STATE["resume_id"], tags, heartbeat)
        else:
            name = f"sweep {sweep_dir.name}: {', '.join(keys) or 'no swept keys'}"
            parent = tracking.Run.start(uri, experiment_id, name, tags, heartbeat=heartbeat)
        # from here on the parent is ended whatever happens (end_parent)
        STATE.update(parent=parent, parent_id=parent.run_id, launched=launched, ended=False, failed=0,
                     swept=keys)  # fmt: skip
        parent.set_tags({"harness.swept_values": json.dumps(values)[:5000]})  # this launch's, as written
        if not STATE.get("resume_id"):  # a param cannot change: a resumed sweep keeps its first values
            parent.log_params(values)
        parent.flush()  # the swept values show on the parent while its jobs run
        info = {"uri": uri, "experiment_id": experiment_id, "parent_id": parent.run_id, "swept": keys,
                "sweep_dir": str(sweep_dir), "resume": bool(STATE.get("resume_id")),
                "jobs": STATE.get("jobs", 0), "launcher": [processes.host(), os.getpid()]}  # fmt: skip
        with read_write(config.hydra), open_dict(config.hydra):
            config.hydra.overrides.hydra.append(f"++hydra.job.env_set.{SWEEP_ENV}='{encode(info)}'")
            # the folder as resolved here: jobs that compose their config again elsewhere (submitit)
            # would resolve ${now:} and the uid anew
            sweep_dir = Path(cwd, str(config.hydra.sweep.dir)).resolve()
            config.hydra.sweep.dir = str(sweep_dir)
            config.hydra.overrides.hydra.append(f"hydra.sweep.dir='{sweep_dir}'")
        os.environ[SWEEP_ENV] = encode(info)  # jobs of the basic launcher run in this process
        STATE.update(info, parent=parent, launched=launched, ended=False, failed=0)
        verb = "resuming" if STATE.get("resume_id") else "sweep:"
        print(
            f"{verb} parent run {parent.run_id} in experiment {STATE['experiment']!r} ({uri})",
            file=sys.stderr,
        )

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        end_parent()


def end_parent(stop: BaseException | None = None, crashed: bool = False) -> None:
    """End this process's open parent run from its children (idempotent); the outcome goes into
    ``STATE["summary"]`` (printed here unless stopped by a signal: ``main`` prints that line)."""
    if not STATE.get("parent") or STATE.get("ended"):
        return
    from harness import processes, story, tracking

    STATE["ended"] = True
    uri = STATE["uri"]
    try:
        with processes.deferred():
            status, summary = _end(stop, crashed)
    except Exception as err:  # the store itself failed
        STATE["failed"] = 1
        STATE["summary"] = (
            f"could not record the end of the sweep in {uri} ({tracking.first_line(err)}); make the store "
            f"writable again (disk space, permissions); the next launch of study {STATE['experiment']!r} "
            "marks the runs left RUNNING as FAILED, and resume=true runs the unfinished jobs"
        )
        print(f"harness: {STATE['summary']}", file=sys.stderr)
        return
    STATE["summary"] = f"{summary}; parent run {STATE['parent_id']} {status}"
    if stop is None:
        parent = STATE["parent_id"]
        params = [story.param_key(k) for k in STATE.get("swept", [])]
        link = runs_link(f"sweep-{parent[:12]}", params, f"tags.mlflow.parentRunId = '{parent}'", parent)
        print(f"sweep done: {STATE['summary']}{STATE.get('story', '')}\n{link}", file=sys.stderr)


def runs_link(key: str, params: list[str], search: str = "", parent: str | None = None) -> str:
    """Where to look: a saved view ``key`` of the runs table (the runs matching ``search``, sorted by the
    key metric, the key metrics and ``params`` as columns), the ``parent``'s figures, how to start the UI."""
    from harness import story, tracking

    uri, experiment_id = STATE["uri"], STATE["experiment_id"]
    try:
        link = tracking.runs_view(uri, experiment_id, key, list(story.KEY_METRICS), params, search=search)
    except Exception as err:  # the view is a convenience: the runs are recorded
        return f"open the UI: {tracking.ui_hint(uri)} (no saved view: {tracking.first_line(err)})"
    line = f"runs table (sorted by {story.KEY_METRICS[0]}): {link}"
    if parent:
        line += f"\nthe sweep's figures and CSV: {tracking.run_link(uri, experiment_id, parent, 'artifacts')}"
    return line + tracking.ui_start(uri)


def _end(stop: BaseException | None, crashed: bool) -> tuple[str, str]:
    from harness import processes, sweep_story, tracking

    uri, exp, parent = STATE["uri"], STATE["experiment_id"], STATE["parent"]
    runs = tracking.children(uri, exp, parent.run_id)
    c = tracking.client(uri)
    now, here, lost = time.time(), processes.host(), 0
    for r in runs:
        reason = r.info.status == "RUNNING" and tracking.lost_reason(r.data.tags, now, here)
        if reason:  # its worker died before ending it
            c.set_tag(r.info.run_id, "harness.lost", f"{reason}; marked by the sweep's end")
            c.set_terminated(r.info.run_id, "KILLED" if stop is not None else "FAILED")
            lost += 1
    if lost:
        runs = tracking.children(uri, exp, parent.run_id)
    latest = {r.data.tags.get("harness.job_num", r.info.run_id): r for r in runs}  # oldest first: latest wins
    count = {s: sum(r.info.status == s for r in latest.values()) for s in ("FINISHED", "FAILED", "KILLED")}
    jobs = max(STATE.get("jobs", 0), len(latest))
    missing = jobs - len(latest)
    ran = sum(r.info.start_time >= STATE["launched"] for r in runs)
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
    STATE["failed"] = jobs - count["FINISHED"]
    try:
        findings = sweep_story.tell(parent, list(latest.values()), STATE.get("swept", []), jobs, stop is None)
        STATE["story"] = f"\n{findings}" if findings else ""
    except Exception as err:  # the status is recorded; the story is a summary of what is stored
        processes.say(f"harness: no summary in the sweep's parent run ({tracking.first_line(err)})")
    parts = [f"{count['FINISHED']} of {jobs} jobs FINISHED"]
    parts += [f"{count[s]} {s}" for s in ("FAILED", "KILLED") if count[s]]
    if missing:
        parts.append(f"{missing} without a run" if stop is None else f"{missing} not started")
    if STATE.get("resume_id"):
        skipped = sum(
            r.info.start_time < STATE["launched"] and r.info.status == "FINISHED" for r in latest.values()
        )
        parts.append(f"{skipped} skipped as already FINISHED, {ran} run now")
    return status, ", ".join(parts)
