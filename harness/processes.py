"""Signals and processes: how a ``harness`` process stops, and how it tells a live process from a dead one.

- ``install()`` makes SIGINT, SIGTERM and SIGHUP raise ``Interrupted`` (a ``KeyboardInterrupt``) in the
  main thread, once: a second signal while the first is being handled is ignored, so recording what was
  measured cannot itself be interrupted. ``deferred()`` holds a signal back until a block ends (used
  around every write to the store, so a write is never cut in half).
- A launcher forwards the signal to its worker processes that handle it and waits ``grace`` seconds for
  them to record their runs, then kills what is left (``stop_children``); before it exits it ends every
  process still below it, idle pool workers too (``end_leftovers``). A worker whose launcher
  vanished (kill -9) sends itself SIGTERM (``watch_parent``), so no worker outlives its launcher by more
  than a second or two.
- Inside a submitit SLURM job, SIGUSR2 (sent ``signal_delay_s`` before the time limit, or on preemption)
  is a stop too: the run is recorded, then submitit's own handler runs (``chained``), which requeues the
  job when ``max_num_timeout`` allows it and ends it otherwise.
- ``alive(pid, started)`` checks a process on this machine, including that the PID was not reused.

Linux only (``/proc``). No MLflow, no Hydra here.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator

SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
GRACE_SECONDS = 10.0  # how long a launcher waits for its workers to record their runs


class Interrupted(KeyboardInterrupt):
    """Raised in the main thread by SIGINT, SIGTERM or SIGHUP. ``partial`` may carry what a study had
    measured when it stopped."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum
        self.partial = None

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


# A signal handler belongs to the process, not to an object: the one piece of module state the harness
# keeps on purpose (what was received, whether writes defer it, what to call when it arrives).
_state = {"received": None, "deferring": 0, "pending": None, "on_signal": None}
_chained: dict[int, Callable] = {}  # SIGUSR2's handler from before ``install`` (submitit's), run after a stop


def signal_name(err: BaseException) -> str:
    return signal.Signals(err.signum).name if isinstance(err, Interrupted) else "SIGINT"


def exit_code(err: BaseException) -> int:
    return err.exit_code if isinstance(err, Interrupted) else 128 + signal.SIGINT


def _handler(signum: int, frame: object) -> None:
    if _state["received"] is not None:  # already stopping: finish recording
        return
    _state["received"] = signum
    if _state["on_signal"] is not None:
        _state["on_signal"](signum)
    if _state["deferring"]:
        _state["pending"] = signum
        return
    raise Interrupted(signum)


def install(on_signal: Callable[[int], None] | None = None) -> None:
    """Handle SIGINT, SIGTERM and SIGHUP in this process (main thread only). ``on_signal(signum)`` runs
    first (a launcher forwards the signal to its workers there)."""
    _state.update(received=None, deferring=0, pending=None, on_signal=on_signal)
    for s in SIGNALS:
        signal.signal(s, _handler)
    previous = signal.getsignal(signal.SIGUSR2)
    if callable(previous) and previous is not _handler:  # submitit's time-limit/preemption handler
        _chained[signal.SIGUSR2] = previous
        signal.signal(signal.SIGUSR2, _handler)


def uninstall() -> None:
    """Back to the default action (an idle worker simply ends); SIGUSR2 back to its earlier handler."""
    for s in SIGNALS:
        signal.signal(s, signal.SIG_DFL)
    if signal.SIGUSR2 in _chained:
        signal.signal(signal.SIGUSR2, _chained[signal.SIGUSR2])


def chained(stop: BaseException) -> None:
    """After a stop by SIGUSR2 has been recorded, run the handler that was there before ``install``
    (submitit's: it requeues the job and exits, or raises the error that ends it)."""
    handler = _chained.get(getattr(stop, "signum", None))
    if handler is not None:
        handler(stop.signum, None)


def say(text: str) -> None:
    """A line on stderr that cannot fail (after SIGHUP the terminal may be gone)."""
    with contextlib.suppress(OSError, ValueError):
        print(text, file=sys.stderr, flush=True)


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """Hold a signal back until the block ends, then raise it."""
    _state["deferring"] += 1
    try:
        yield
    finally:
        _state["deferring"] -= 1
        pending = _state["pending"]
        if pending is not None and not _state["deferring"]:
            _state["pending"] = None
            raise Interrupted(pending)


def _stat(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command name (state is [0], ppid [1], start time [19])."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def start_time(pid: int) -> str:
    """The process's start time in clock ticks since boot ('' if unknown): with the PID, its identity."""
    fields = _stat(pid)
    return fields[19] if fields else ""


def alive(pid: int, started: str = "") -> bool:
    """Whether process ``pid`` on this machine runs (not a zombie) and, if ``started`` is given, is the
    same process that had that start time."""
    fields = _stat(pid)
    if fields is None or fields[0] in ("Z", "X"):
        return False
    return not started or fields[19] == started


def host() -> str:
    return socket.gethostname()


def descendants(pid: int) -> list[int]:
    """Every live process below ``pid``, children first."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat(int(entry))
            if fields and fields[0] not in ("Z", "X"):
                parents.setdefault(int(fields[1]), []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        kids = parents.get(todo.pop(), [])
        out += kids
        todo += kids
    return out


def _catches(pid: int, signum: int) -> bool:
    """Whether ``pid`` has a handler for ``signum`` (a worker running a job has this module's)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            line = next(x for x in f if x.startswith("SigCgt:"))
        return bool(int(line.split()[1], 16) >> (signum - 1) & 1)
    except (OSError, StopIteration, ValueError):
        return False


def stop_children(signum: int, grace: float = GRACE_SECONDS) -> list[int]:
    """Send ``signum`` to every process below this one that handles it (workers running a job), wait up
    to ``grace`` seconds until each has recorded its run (it then exits, or stops handling the signal and
    ``linger``s), then SIGKILL the rest. Helpers that do not handle it (idle pool workers, joblib's
    resource tracker) are left to the pool, which ends them. The PIDs killed."""
    waiting = []
    for pid in descendants(os.getpid()):
        if _catches(pid, signum):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)
                waiting.append(pid)
    deadline = time.monotonic() + grace
    while waiting and time.monotonic() < deadline:
        waiting = [p for p in waiting if alive(p) and _catches(p, signum)]
        time.sleep(0.05)
    for pid in waiting:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return waiting


def end_leftovers(grace: float = 2.0) -> list[int]:
    """Before a stopped launcher exits: SIGTERM every process still below it (idle pool workers, a
    pool's resource tracker, a worker that lingers after recording), SIGKILL what is left after
    ``grace`` seconds, so that none outlives it. The PIDs that needed SIGKILL."""
    left = descendants(os.getpid())
    for pid in left:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while left and time.monotonic() < deadline:
        left = [p for p in left if alive(p)]
        time.sleep(0.05)
    for pid in left:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return left


def linger(launcher: int | None, grace: float = GRACE_SECONDS) -> None:
    """In a worker that has recorded its run: wait for its ``launcher`` (a PID, this process's parent) to
    end the pool (it kills its workers once all have recorded; a worker that exits first makes some pools
    kill the others mid-record), at most ``grace`` seconds, and not at all once the launcher is gone."""
    uninstall()
    deadline = time.monotonic() + grace
    while launcher is not None and os.getppid() == launcher and time.monotonic() < deadline:
        time.sleep(0.05)


def watch_parent(interval: float = 1.0) -> None:
    """In a worker: when the parent process is gone (its launcher was killed), send this process
    SIGTERM, so that its run is recorded and the worker exits."""
    if _state.get("watching"):
        return
    _state["watching"] = True
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(interval)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="harness-watch-parent", daemon=True).start()
