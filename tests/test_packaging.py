"""The wheel a non-editable install gets (``pip install .``, a git URL, an index) runs on its own: its
configs travel inside the package, found from a folder outside the checkout."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out, source = tmp_path_factory.mktemp("wheel"), tmp_path_factory.mktemp("source") / "harness"
    # a copy without what earlier builds and runs left (build/ is reused by setuptools)
    junk = shutil.ignore_patterns(
        ".git", ".venv", "build", "*.egg-info", "mlruns", "multirun", "outputs", "figures", "__pycache__"
    )
    shutil.copytree(ROOT, source, ignore=junk, symlinks=True)
    pip = [sys.executable, "-m", "pip"]
    build = subprocess.run(
        [*pip, "wheel", "-q", "--no-deps", str(source), "-w", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    if build.returncode != 0 and "Could not find a version that satisfies" in build.stderr:
        pytest.skip("pip cannot reach a package index for the build backend (setuptools)")
    assert build.returncode == 0, build.stderr[-2000:]
    (found,) = out.glob("harness-*.whl")
    return found


def test_the_wheel_carries_every_config_and_the_sweeper_plugin(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {str(p.relative_to(ROOT)) for p in (ROOT / "harness").rglob("*.yaml")}
    assert shipped and shipped <= names, sorted(shipped - names)
    assert {"harness/conf/__init__.py", "hydra_plugins/harness_launchers/sweeper.py"} <= names
    assert not any(n.startswith(("conf/", "tests/")) for n in names)


@pytest.mark.slow
def test_an_installed_wheel_runs_a_study_a_sweep_and_lists_figures_outside_the_checkout(wheel, tmp_path):
    """A fresh environment holds the wheel; its dependencies come from this one (a plain path, so this
    environment's editable install of the checkout is not seen)."""
    env_dir = tmp_path / "env"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env_dir)], check=True)
    python = str(env_dir / "bin" / "python")
    purelib = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    site = Path(subprocess.check_output([python, "-c", purelib], text=True).strip())
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    install = subprocess.run(
        [sys.executable, "-m", "pip", "--python", python, "install", "-q", "--no-deps", str(wheel)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert install.returncode == 0, install.stderr[-2000:]
    work = tmp_path / "elsewhere"
    work.mkdir()
    environ = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}

    def run(*words: str) -> subprocess.CompletedProcess:
        command = [str(env_dir / "bin" / words[0]), *words[1:]]
        return subprocess.run(command, cwd=work, env=environ, capture_output=True, text=True, timeout=300)

    where = run("python", "-c", "import harness; print(harness.__file__)")
    assert where.stdout.strip().startswith(str(site)), where  # the wheel's copy, not the checkout
    single = run("harness", "debug=default", "study=wheel")
    assert single.returncode == 0, single.stderr[-3000:]
    assert "finished in experiment 'wheel'" in single.stderr
    sweep = run("harness", "-m", "debug=default", "study=wheel_sweep", "model.depth=2,3", "launcher=joblib")
    assert sweep.returncode == 0, sweep.stderr[-3000:]
    assert "2 of 2 jobs FINISHED" in sweep.stderr, sweep.stderr[-3000:]
    listed = run("harness-figure", "--list")
    assert listed.returncode == 0 and "trainability" in listed.stdout.split(), listed.stderr[-2000:]
    helped = run("harness", "--help")
    assert "launcher: basic, joblib" in helped.stdout and "\nfigure:" not in helped.stdout
