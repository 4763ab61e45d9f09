"""ruff (rules and line length in pyproject.toml `[tool.ruff]`) passes on the linted folders.

Only tests/ for now; service/ and cards/ join the list once the refactoring of issue 11 has landed.
"""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import ROOT

LINTED = ["tests"]


def test_ruff_finds_nothing():
    done = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", *LINTED], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
