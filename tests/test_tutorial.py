"""docs/tutorial-numpy-adam.md, run as a reader runs it: its code saved as ``scratch_adam.py`` in an
empty folder, its ``pytest`` command run verbatim there in a fresh process (the ``pytest`` console
script, not ``python -m pytest``, which would put the folder on sys.path by itself), and its
abridged output found in what the command prints."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

PAGE = Path(__file__).resolve().parents[1] / "docs" / "tutorial-numpy-adam.md"
BUGGY_LINE = "            p -= self.lr * m_hat / (np.sqrt(v) + self.eps)"


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", PAGE.read_text(encoding="utf-8"), flags=re.S)


def _pytest_script() -> str:
    """The ``pytest`` console script of this interpreter's environment."""
    here = Path(sys.executable).parent / ("pytest.exe" if os.name == "nt" else "pytest")
    found = str(here) if here.exists() else shutil.which("pytest")
    if found is None:
        pytest.skip("no pytest console script next to this interpreter")
    return found


def _run_tutorial_command(folder: Path) -> subprocess.CompletedProcess:
    (command,) = [c.strip() for c in _blocks("bash")]
    argv = shlex.split(command)
    assert argv[0] == "pytest", command
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTEST_ADDOPTS")}
    env["PYTHONHASHSEED"] = "0"
    return subprocess.run([_pytest_script(), *argv[1:], "-p", "no:cacheprovider"], cwd=folder, env=env,
                          capture_output=True, text=True, timeout=300)


def test_the_course_adam_fails_and_is_named_as_the_page_shows(tmp_path):
    buggy, _fix = _blocks("python")
    assert BUGGY_LINE in buggy
    (tmp_path / "scratch_adam.py").write_text(buggy, encoding="utf-8")
    result = _run_tutorial_command(tmp_path)
    out = result.stdout
    assert result.returncode == 1, out + result.stderr
    assert "14 failed, 22 skipped" in out
    # every line of the page's abridged output (not the "..." ones) is printed as the page shows it
    shown = _blocks("text")[0]
    for line in shown.splitlines():
        if line.strip() and "..." not in line:
            assert line in out.splitlines(), f"the page shows a line the run does not print:\n{line}\n\n{out}"


def test_the_one_line_fix_passes(tmp_path):
    buggy, fix = _blocks("python")
    (tmp_path / "scratch_adam.py").write_text(buggy.replace(BUGGY_LINE + "\n", fix), encoding="utf-8")
    result = _run_tutorial_command(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    rerun = _blocks("text")[1].strip().splitlines()
    for line in rerun:
        assert line in result.stdout.splitlines(), f"{line}\n\n{result.stdout}"
