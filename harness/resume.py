"""``resume=``: which sweep's parent to continue, or whether a single run must run at all.

Decided in the launching process before Hydra starts, from what the store holds: a sweep resumes the
latest parent of the study launched with the same overrides (launcher and hydra settings may differ),
or the parent named by its run id; a single run is skipped when a FINISHED run has its config hash.
"""

from __future__ import annotations

import json
import sys

from harness import tracking
from harness.config import ConfigError, StudyConfig, config_hash

NOT_COMPARED = ("hydra", "launcher", "resume")  # may differ between a sweep and its resumption


def _compared(overrides: list[str]) -> dict[str, str]:
    return {
        o.split("=", 1)[0]: o
        for o in overrides
        if not o.split("=", 1)[0].lstrip("+~").startswith(NOT_COMPARED)
    }


def _difference(here: dict[str, str], there: dict[str, str]) -> str:
    parts = []
    for key in sorted(set(here) | set(there)):
        if here.get(key) != there.get(key):
            parts.append(f"{here.get(key, f'no {key}')} here, {there.get(key, f'no {key}')} there")
    return "; ".join(parts)


def resume_sweep(
    value: bool | str, overrides: list[str], uri: str, experiment_id: str, study: str
) -> str | None:
    """The parent run to continue (None: nothing to resume, start a new sweep), or ConfigError."""
    here = _compared(overrides)
    if value is True:
        parents = tracking.sweeps(uri, experiment_id)
        if not parents:
            print(f"resume: study {study!r} has no sweep yet; starting a new one", file=sys.stderr)
            return None
        match = [
            p
            for p in parents
            if _compared(json.loads(p.data.tags.get("harness.task_overrides", "[]"))) == here
        ]
        if not match:
            latest = parents[0]
            there = _compared(json.loads(latest.data.tags.get("harness.task_overrides", "[]")))
            raise ConfigError(f"resume: no sweep of study {study!r} has these overrides; the latest "
                              f"({latest.info.run_id}) differs: {_difference(here, there)}")  # fmt: skip
        parent = match[0]
    else:
        parent = tracking.get_run(uri, str(value))
        if (
            parent is None
            or parent.info.experiment_id != experiment_id
            or "harness.kind" not in parent.data.tags
        ):
            raise ConfigError(f"resume: {value!r} is not a sweep of study {study!r}; allowed: true, or the "
                              "run id of a sweep's parent in that study")  # fmt: skip
        there = _compared(json.loads(parent.data.tags.get("harness.task_overrides", "[]")))
        if there != here:
            raise ConfigError(
                f"resume: sweep {value} was launched with other overrides: {_difference(here, there)}"
            )
    if parent.info.status == "RUNNING":
        tags = parent.data.tags
        raise ConfigError(
            f"resume: sweep {parent.info.run_id} is still RUNNING (process {tags.get('harness.pid')} on "
            f"{tags.get('harness.host')}); stop it first"
        )
    return parent.info.run_id


def resume_single(value: bool | str, config: StudyConfig, uri: str, experiment_id: str, study: str) -> bool:
    """Whether a single run must run: not when a FINISHED run with its config hash exists."""
    digest = config_hash(config)
    if value is True:
        done = tracking.finished_runs_by_hash(uri, experiment_id, digest)
        found = done[-1] if done else None
    else:
        found = tracking.get_run(uri, str(value))
        if found is None or found.info.experiment_id != experiment_id:
            raise ConfigError(
                f"resume: no run {value!r} in study {study!r}; allowed: true, or a run id there"
            )
        if found.data.tags.get("harness.config_hash") != digest:
            theirs = found.data.tags.get("harness.config_hash")
            raise ConfigError(f"resume: run {value} has another config (hash {theirs}, this one {digest})")
        found = found if found.info.status == "FINISHED" else None
    if found is not None:
        print(f"resume: skipped: run {found.info.run_id} with this config is FINISHED in study {study!r}",
              file=sys.stderr)  # fmt: skip
        return False
    return True
