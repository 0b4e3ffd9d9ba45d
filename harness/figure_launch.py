"""A figure's missing jobs, run as ``harness -m`` sweeps through a Hydra launcher (joblib on the local
cores by default; basic, submitit_local, slurm or ray as for any sweep).

The missing jobs are covered by product blocks: a case and, for every swept factor and the seed, a list
of values, so that every job in a block is missing. When none has run yet that is one block per case
(one sweep), after an interruption a few more. Each block is one ``harness -m`` process started as a
user starts it, into the figure's store; its parent and child runs are ordinary sweep runs. SIGINT,
SIGTERM and SIGHUP are passed on to the running sweep, which records its runs; the figure stops after
it, and the same command continues with the jobs still missing.
"""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from harness import processes
from harness.config import ConfigError

STOP_WAIT_SECONDS = 120.0  # a sweep stopped by a signal records its runs; after this it is killed


class LaunchFailed(RuntimeError):
    """A figure's sweep ended without running its jobs (a crash, a kill): its output says why."""


def check_launcher(name: str) -> None:
    from harness.preflight import group_options

    if name not in group_options("launcher"):
        raise ConfigError(f"--launcher: got {name!r}; allowed: {', '.join(group_options('launcher'))}")


def blocks(spec: Any, missing: list) -> list[dict[str, list[str]]]:
    """Product blocks covering exactly the missing jobs: {"case": [label], factor: [values], "seed": [...]}.
    Each job starts as its own block; blocks equal in all but one factor merge, factor by factor from
    the seed up (the full grid merges into one block per case)."""
    out = [
        {"case": [job.factors.get("case")]} | {k: [v] for k, v in job.factors.items() if k != "case"}
        | {"seed": [str(job.seed)]}
        for job in missing
    ]  # fmt: skip
    for factor in ["seed", *reversed(list(spec.sweep))]:
        merged: dict[tuple, dict[str, list[str]]] = {}
        for block in out:
            key = tuple((k, tuple(v)) for k, v in block.items() if k != factor)
            if key in merged:
                merged[key][factor] += [v for v in block[factor] if v not in merged[key][factor]]
            else:
                merged[key] = {k: list(v) for k, v in block.items()}
        out = list(merged.values())
    return out


def command(spec: Any, block: dict[str, list[str]], launcher: str) -> list[str]:
    """The ``harness -m`` command line of one block."""
    from harness.figures import _as_override_value

    case = next((c for c in spec.cases if c["label"] == block["case"][0]), {})
    words = [f"{k}={_as_override_value(v)}" for k, v in spec.base.items()]
    words += [f"{k}={_as_override_value(v)}" for k, v in case.items() if k != "label"]
    words += [f"{k}={','.join(v)}" for k, v in block.items() if k not in ("case", "seed")]
    words += [f"seed={','.join(block['seed'])}", f"study={spec.study}", f"launcher={launcher}"]
    return [sys.executable, "-m", "harness", "-m", *words]


def run(spec: Any, missing: list, launcher: str, uri: str, cwd: Path) -> None:
    """Run every block, one after another (each as parallel as its launcher). Raises ``Interrupted``
    after passing a signal on and waiting for the sweep to record its runs."""
    env = dict(os.environ, MLFLOW_TRACKING_URI=uri)
    parts = blocks(spec, missing)
    for i, block in enumerate(parts, 1):
        size = math.prod(len(v) for k, v in block.items() if k != "case")
        label = f" ({block['case'][0]})" if block["case"][0] else ""
        print(
            f"harness-figure: sweep {i}/{len(parts)}{label}: {size} job(s), launcher={launcher}",
            file=sys.stderr,
        )
        with processes.deferred():  # a signal here waits until the sweep exists, then reaches it
            proc = subprocess.Popen(command(spec, block, launcher), cwd=cwd, env=env)
        try:
            code = proc.wait()
        except KeyboardInterrupt as stop:  # further signals are ignored while the sweep records
            if proc.poll() is None:
                proc.send_signal(getattr(stop, "signum", signal.SIGINT))
            try:
                proc.wait(timeout=STOP_WAIT_SECONDS)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            raise
        if code not in (0, 1):  # 1: some job failed, and the figure names them; else the sweep itself
            how = f"was killed by signal {-code}" if code < 0 else f"exited {code}"
            raise LaunchFailed(f"harness -m {how} in sweep {i} of {len(parts)}; its output is above")
