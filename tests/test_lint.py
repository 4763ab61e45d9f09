"""The lint and type gate of `make test`: ruff and mypy find nothing.

- ruff (rules and line length in pyproject.toml `[tool.ruff]`) on every folder of Python code:
  the service, the cards, the tests, the benchmark and the tools.
- mypy as configured in pyproject.toml `[tool.mypy]`: its `files` (service/ and cards/), strict
  for the engine and the cards (`[[tool.mypy.overrides]]`), the default options elsewhere.  The
  configuration is the whole gate: nothing is excluded here.  Its incremental cache is
  `.mypy_cache/` at the top of the checkout, so a run after the first rechecks only the modules
  that changed and what depends on them.

Each failure shows the tool's own report.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import ROOT

LINTED = ["service", "cards", "tests", "bench", "tools"]
MYPY_CACHE = ROOT / ".mypy_cache"


def _passes(*command: str, timeout: float) -> None:
    """Run `python -m <command>` at the top of the checkout; fail with its report unless it exits 0."""
    done = subprocess.run([sys.executable, "-m", *command], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)
    if done.returncode != 0:
        pytest.fail(f"{' '.join(command)} (exit {done.returncode}):\n{done.stdout}{done.stderr}", pytrace=False)


def test_ruff_finds_nothing():
    _passes("ruff", "check", "--no-cache", *LINTED, timeout=120)


def test_mypy_finds_nothing():
    _passes("mypy", "--cache-dir", str(MYPY_CACHE), timeout=900)
