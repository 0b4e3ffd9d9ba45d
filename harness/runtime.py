"""Two process-wide settings of a ``harness`` process (the launcher and every job's worker) that make it
faster without changing a number it computes. The Hydra edge (``harness.app``) applies them; the engine
used from a notebook is left as Python and NumPy set it up.

- ``keep_freed_memory``: glibc's malloc gives an array above its mmap threshold (128 KB at start,
  raised as such arrays are freed) back to the operating system the moment NumPy frees it, and trims
  the heap's free top beyond twice that threshold; the next array of that size then costs a page fault
  per 4 KB page, the kernel zeroing each one. A stacked init study allocates and frees the same large
  arrays in every pass: at depth 30, width 128 and 16 draws, 24,000-34,000 page faults a study (about
  100 MB of fresh pages), a sixth of its time. With the thresholds fixed (arrays up to 32 MB from the
  heap, up to 256 MB of free heap kept), the memory is reused and the faults stop.
- ``freeze_long_lived``: a job process holds some 260,000 objects that live as long as it does
  (MLflow, SQLAlchemy, pandas, matplotlib, Hydra), and every full collection of the cyclic garbage
  collector scanned them all again: 17% of a 54-job sweep's CPU. Frozen (``gc.freeze``), they are never
  scanned again.

``benchmarks/sweep.py`` and ``benchmarks/init_stack.py`` measure both (README, "Performance").
"""

from __future__ import annotations

import ctypes
import gc
import sys

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters (malloc.h)
MMAP_THRESHOLD = 32 * 2**20  # arrays up to this size come from the heap (glibc's largest dynamic value)
TRIM_THRESHOLD = 256 * 2**20  # free memory kept at the heap's top

# per process, like a signal handler: len(sys.modules) at the last freeze; whether malloc was tuned
_state: dict[str, int | bool | None] = {"modules_frozen": 0, "malloc": None}


def keep_freed_memory() -> bool:
    """Fix glibc malloc's mmap and trim thresholds (see above), once a process; False where the C
    library has no ``mallopt`` that takes them (macOS, musl), which is then left as it is."""
    if _state["malloc"] is None:
        try:
            mallopt = ctypes.CDLL(None).mallopt  # the process's own symbols: the C library's
        except (OSError, AttributeError):
            mallopt = None
        if mallopt is not None:
            mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
        _state["malloc"] = bool(
            mallopt
            and mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)
            and mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)
        )
    return bool(_state["malloc"])


def freeze_long_lived() -> None:
    """Collect, then move every object still alive into the collector's permanent generation, which it
    never scans again; only when modules were imported since the last call. Call it where only
    long-lived objects and at most one job's leftovers are alive (after a job, after the launch's
    imports): what it freezes is the imports' objects and, a few times a process, a job's leftovers."""
    if len(sys.modules) != _state["modules_frozen"]:
        gc.collect()
        gc.freeze()
        _state["modules_frozen"] = len(sys.modules)
