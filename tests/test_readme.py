"""The README's Python examples run as written."""

import re
from pathlib import Path

import pytest

from harness.config import ConfigError

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_blocks_run():
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks, "the README has no Python example"
    for block in blocks:
        exec(compile(block, str(README), "exec"), {})


def test_readme_harness_commands_validate():
    import shlex

    from harness.preflight import validate_command

    commands = [
        line.split("#")[0].strip()
        for block in re.findall(r"```bash\n(.*?)```", README.read_text(), flags=re.S)
        for line in block.splitlines()
        if line.startswith("harness ") and "--help" not in line
    ]
    assert len(commands) >= 6
    for command in commands:
        argv = shlex.split(command)[1:]
        missing = _missing_launcher_plugin(argv)
        if missing:  # an install without that extra: the command says which one, in one line
            with pytest.raises(ConfigError, match=rf"needs Hydra's {missing} plugin: pip install"):
                validate_command(argv)
            continue
        assert validate_command(argv)[0] >= 1, command


def _missing_launcher_plugin(argv: list[str]) -> str | None:
    """The launcher plugin a command names but this install lacks (``pip install -e .[test]`` only)."""
    import importlib.util

    from harness.preflight import LAUNCHER_PLUGINS

    for word in argv:
        key, _, value = word.partition("=")
        module = LAUNCHER_PLUGINS.get(value, (None,))[0] if key.lstrip("+") == "launcher" else None
        if module and importlib.util.find_spec(module) is None:
            return module.split(".")[1]
    return None


def test_readme_gallery_names_shipped_figures():
    from harness.figure_cli import shipped

    named = set(re.findall(r"`harness-figure ([a-z_]+)`", README.read_text()))
    assert named and named <= set(shipped())
    assert set(shipped()) <= named  # every shipped figure has its rebuild line


def test_readme_gallery_shows_every_shipped_figure():
    from harness.figure_cli import shipped

    pictures = set(re.findall(r'<img src="docs/figures/([a-z_]+)\.png"', README.read_text()))
    assert pictures == set(shipped())
    for name in pictures:  # committed, and a real PNG
        assert (README.parent / "docs" / "figures" / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_readme_key_table_is_the_schema():
    """The README's table of every key is the schema's (harness.config), default by default: a key
    added, removed or re-defaulted in the dataclasses must show in the README."""
    from harness.config import key_table

    text = README.read_text()
    table = text.split("<!-- keys: harness.config.key_table() -->\n", 1)[1].split("\n<!-- /keys -->", 1)[0]
    assert table == key_table()


def test_help_lists_every_key_with_its_default():
    """``harness --help`` shows the same table (from the schema), and the composed default config."""
    import subprocess
    import sys

    from harness.config import StudyConfig
    from harness.schema import keys

    out = subprocess.run([sys.executable, "-m", "harness", "--help"], capture_output=True, text=True,
                         timeout=120, check=True).stdout  # fmt: skip
    for name, default, _, _ in keys(StudyConfig):
        shown = "null" if default is None else str(default).lower() if isinstance(default, bool) else default
        assert f"| `{name}` | `{shown}` |" in out, name
