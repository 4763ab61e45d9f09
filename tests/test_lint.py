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

from tests.conftest import ROOT

LINTED = ["service", "cards", "tests", "bench", "tools"]
MYPY_CACHE = ROOT / ".mypy_cache"


def _run(*args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def test_ruff_finds_nothing():
    done = _run("ruff", "check", "--no-cache", *LINTED, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


def test_mypy_finds_nothing():
    done = _run("mypy", "--cache-dir", str(MYPY_CACHE), timeout=900)
    assert done.returncode == 0, done.stdout + done.stderr
