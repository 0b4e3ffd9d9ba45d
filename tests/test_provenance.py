import subprocess
from pathlib import Path

import numpy as np

from harness.provenance import git_commit, versions

ROOT = Path(__file__).resolve().parents[1]


def test_git_commit_is_the_checkouts_head_and_none_outside_one(tmp_path):
    if not (ROOT / ".git").exists():  # an installed copy, not a checkout: nothing to compare
        assert git_commit(ROOT) is None
        return
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout
    assert git_commit(ROOT) == head.strip() and len(head.strip()) == 40
    assert git_commit(tmp_path) is None  # pytest's tmp_path lies outside any checkout


def test_versions_are_the_installed_ones():
    found = versions()
    assert found["numpy"] == np.__version__
    assert set(found) <= {"harness", "numpy", "mlflow", "hydra-core", "matplotlib"} and "mlflow" in found
