"""Hydra's submitit launchers (SLURM, local), waiting on every job whatever becomes of it.

The plugin's own ``launch`` ends with ``[j.results()[0] for j in jobs]``: the first job that was
cancelled, timed out or killed raises there, the launcher stops waiting for the others (which go on
writing children under a parent already ended), and a job that vanished from a scheduler without
accounting is waited on for ever. Here each job is waited on until it has a result or the scheduler
says it ended (``scontrol``, which needs no accounting); a job that ended without a result is reported
in one line and counted by the parent from its child run (KILLED, FAILED, or none). A signal to the
launching process cancels the jobs still queued or running (``scancel``: SIGTERM, and each job ends its
run KILLED), so that no job outlives its launcher.
"""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus, filter_overrides
from omegaconf import OmegaConf

from harness import processes, tracking

try:  # Hydra imports every plugin module at start-up: without the [slurm] extra, define nothing
    from hydra_plugins.hydra_submitit_launcher import submitit_launcher
except ImportError:
    submitit_launcher = None

ENDED = ("BOOT_FAIL", "CANCELLED", "COMPLETED", "DEADLINE", "FAILED", "NODE_FAIL", "OUT_OF_MEMORY",
         "PREEMPTED", "TIMEOUT")  # fmt: skip
POLL_SECONDS = 2.0
_submitted: list[Any] = []  # the sweep's jobs, for ``cancel`` from the process's signal handler (per process)


def slurm_state(job_id: str) -> str | None:
    """A SLURM job's state from ``scontrol`` (None if it cannot say)."""
    try:
        out = subprocess.run(["scontrol", "show", "job", "-o", job_id], capture_output=True, text=True,
                             timeout=30).stdout  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return None
    for word in out.split():
        if word.startswith("JobState="):
            return word.split("=", 1)[1]
    return None


def _without_sacct() -> None:
    """submitit polls ``sacct`` for job states; on a cluster without accounting every poll prints two
    lines (sacct's error and submitit's warning). States come from ``scontrol`` here, so when ``sacct``
    cannot answer, submitit's polling is turned off (results still arrive through its files)."""
    from submitit.slurm import slurm

    try:
        ok = subprocess.run(["sacct", "-n", "-X", "-j", "1"], capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        ok = False
    if ok or isinstance(slurm.SlurmJob.watcher, _NoSacct):
        return

    slurm.SlurmJob.watcher = _NoSacct(delay_s=600)
    processes.say("harness: sacct gives no job states here (no accounting); following the jobs with scontrol")


if submitit_launcher is not None:
    from submitit.slurm.slurm import SlurmInfoWatcher

    class _NoSacct(SlurmInfoWatcher):
        def _make_command(self) -> None:
            return None


def cancel(signum: int) -> None:
    """Cancel the submitted jobs that have not ended (the launching process got ``signum``)."""
    for job in list(_submitted):
        with contextlib.suppress(Exception):
            if not job.done():
                job.cancel(check=False)


def _outcome(job: Any, num: int, slurm: bool) -> JobReturn:
    ended_at, error = None, None
    while not job.done():
        state = slurm_state(job.job_id) if slurm else None
        if state in ENDED:
            ended_at = ended_at or time.monotonic()
            if time.monotonic() - ended_at > 10:  # ended, and no result file came (results() would wait)
                error = f"no result ({state})"
                break
        time.sleep(POLL_SECONDS)
    if error is None:
        try:
            ret = job.results()[0]
            if ret.status != JobStatus.FAILED:
                return ret
            error = tracking.first_line(ret._return_value)  # e.g. submitit ending a job at its time limit
        except Exception as err:  # killed, or died: its run says how it ended
            error = tracking.first_line(err)
    state = (slurm_state(job.job_id) if slurm else None) or "without a result"
    hint = ""
    if state == "TIMEOUT" or "timed-out" in error:
        hint = ("; give it more time (hydra.launcher.timeout_min=...) or let submitit requeue it "
                "(hydra.launcher.max_num_timeout=N), or run it again with resume=true")  # fmt: skip
    processes.say(f"harness: job #{num} (submitit job {job.job_id}) ended {state}: {error}{hint}")
    ret = JobReturn()
    ret.status, ret.return_value = JobStatus.COMPLETED, None
    return ret


class _Waiting(submitit_launcher.BaseSubmititLauncher if submitit_launcher else object):  # type: ignore[misc]
    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        """As the plugin's ``launch`` (one executor, one job array), then wait on each job."""
        import submitit

        if self._EXECUTOR == "slurm":
            _without_sacct()
        assert self.config is not None
        params = dict(self.params)
        init = {"folder": params.pop("submitit_folder")}
        if "max_num_timeout" in params:
            init[f"{self._EXECUTOR}_max_num_timeout"] = params.pop("max_num_timeout")
        executor = submitit.AutoExecutor(cluster=self._EXECUTOR, **init)
        base = set(OmegaConf.structured(submitit_launcher.BaseQueueConf).keys())
        executor.update_parameters(
            **{k if k in base else f"{self._EXECUTOR}_{k}": v for k, v in params.items()}
        )
        Path(str(self.config.hydra.sweep.dir)).mkdir(parents=True, exist_ok=True)
        calls = []
        for i, overrides in enumerate(job_overrides):
            num = initial_job_idx + i
            processes.say(f"harness: #{num}: {' '.join(filter_overrides(overrides))}")
            calls.append(
                (list(overrides), "hydra.sweep.dir", num, f"job_id_for_{num}", Singleton.get_state())
            )
        jobs = executor.map_array(self, *zip(*calls, strict=True))
        _submitted[:] = jobs
        slurm = self._EXECUTOR == "slurm"
        processes.say(f"harness: submitted {len(jobs)} jobs ({jobs[0].job_id.split('_')[0]}); "
                      f"their output: {init['folder']}")  # fmt: skip
        try:
            return [_outcome(job, initial_job_idx + i, slurm) for i, job in enumerate(jobs)]
        finally:
            _submitted.clear()


class SlurmLauncher(_Waiting):
    _EXECUTOR = "slurm"


class LocalLauncher(_Waiting):
    _EXECUTOR = "local"
