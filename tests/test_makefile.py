"""The Makefile's choice of Python (tests run `make -n`, which prints the commands without running them;
the check of an existing venv runs as the Makefile is read): a venv built with another Python is removed
and built again with 3.11, a 3.11 venv is kept, and the install says what it is doing."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    shutil.copy(ROOT / "Makefile", tmp_path / "Makefile")
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    return tmp_path


def venv_python(checkout: Path, script: str) -> Path:
    python = checkout / ".venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text(script)
    python.chmod(0o755)
    return python


def make_n(checkout: Path, *args: str) -> str:
    done = subprocess.run(["make", "-n", "install", f"PYTHON={sys.executable}", *args], cwd=checkout,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_a_venv_of_another_python_is_rebuilt_without_make_clean(checkout):
    venv_python(checkout, "#!/bin/sh\n# Python 3.12: the version check fails\nexit 1\n")
    out = make_n(checkout)
    assert "was not built with Python 3.11: rebuilding it" in out
    assert not (checkout / ".venv").exists()
    assert f"{sys.executable} -m venv .venv" in out
    assert "Installing dah-cds" in out and "--quiet" not in out


def test_a_311_venv_is_kept(checkout):
    venv_python(checkout, f"#!/bin/sh\nexec {sys.executable} \"$@\"\n")
    (checkout / ".venv" / "bin" / "activate").write_text("")
    out = make_n(checkout)
    assert "rebuilding" not in out and (checkout / ".venv" / "bin" / "python").exists()
    assert "-m venv" not in out
