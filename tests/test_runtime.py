"""The settings of a ``harness`` process (``harness.runtime``), each measured on a real process: the
collector's frozen generation, and glibc's malloc keeping freed memory instead of faulting it in again."""

import gc
import importlib
import subprocess
import sys
import weakref

import pytest

from harness import runtime


def test_a_job_process_freezes_what_its_imports_made_after_collecting_its_garbage():
    runtime.freeze_long_lived()
    frozen = gc.get_freeze_count()
    runtime.freeze_long_lived()  # nothing imported since the last call: nothing more frozen
    assert gc.get_freeze_count() == frozen

    class Node:
        pass

    gc.disable()  # no automatic collection between here and the freeze: only the policy's own
    try:
        cycle = Node()
        cycle.me = cycle  # garbage only the cyclic collector frees
        gone = weakref.ref(cycle)
        del cycle
        new = next(m for m in ("graphlib", "tomllib", "zipapp", "mailbox") if m not in sys.modules)
        importlib.import_module(new)
        runtime.freeze_long_lived()
    finally:
        gc.enable()
    assert gc.get_freeze_count() > frozen  # the new module's objects are frozen ...
    assert gone() is None  # ... after a collection: garbage is freed, never frozen for good


DEPTH, WIDTH, BATCH, DRAWS = 12, 128, 64, 16
STUDIES = 3
PASSES = f"""
import resource, sys
from harness import runtime
if sys.argv[1] == "kept":
    assert runtime.keep_freed_memory()
from harness.config import parse_config
from harness.study import run_study
cfg = parse_config({{"model": {{"depth": {DEPTH}, "width": {WIDTH}}}, "gradcheck": {{"mode": "off"}},
                    "init": {{"batch_size": {BATCH}, "repeats": {DRAWS}, "jacobian_max_width": 0}}}})
for _ in range(2):
    run_study(cfg)  # the heap grows to what a study needs
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range({STUDIES}):
    run_study(cfg)
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def test_a_tuned_process_reuses_a_study_passes_memory_instead_of_faulting_it_in_again():
    """Each stacked pass allocates and frees arrays of DRAWS x BATCH x WIDTH float64 (1 MB) per layer.
    Untuned, glibc returns them to the system and every study faults at least its hidden layers'
    outputs in again (DEPTH arrays of 256 pages); tuned, the heap keeps them: a study faults in less
    than one such array."""
    if not runtime.keep_freed_memory():
        pytest.skip("the C library is not glibc: nothing to tune")
    run = [sys.executable, "-c", PASSES]
    faults = {mode: int(subprocess.run([*run, mode], capture_output=True, text=True, check=True).stdout)
              for mode in ("plain", "kept")}  # fmt: skip
    pages_per_output = DRAWS * BATCH * WIDTH * 8 // 4096
    assert faults["plain"] >= STUDIES * DEPTH * pages_per_output, faults
    assert faults["kept"] < STUDIES * pages_per_output, faults
