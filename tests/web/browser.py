"""Headless Chromium for the browser tests, from Debian's packages (`chromium`, `chromium-driver`).

Like the local FHIR test server (tests/integration/fhirserver.py), the test run installs what it
needs on first use: when /usr/bin/chromium or /usr/bin/chromedriver is missing, `apt-get update`
and `apt-get install chromium chromium-driver` run once (idempotent; concurrent runs wait on a
lock file).  No browser is ever downloaded by selenium or anything else: the driver is started
from its Debian path and selenium's own driver manager is told to stay offline.  Where they cannot
be installed (not Debian, not root, no package source), BrowserUnavailable says why and the test
is skipped with that reason.

The browser starts with a fresh profile and nothing that reaches the network by itself:
--headless --no-sandbox --disable-gpu --disable-quic --no-first-run --disable-background-networking
--disable-component-update --disable-sync --user-data-dir=<new temporary folder>.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
PACKAGES = ("chromium", "chromium-driver")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync")


class BrowserUnavailable(RuntimeError):
    """Chromium and its driver are not installed and cannot be."""


def _installed() -> bool:
    return CHROMIUM.is_file() and CHROMEDRIVER.is_file()


def ensure_chromium(timeout: float = 900) -> None:
    """Install Debian's chromium and chromium-driver unless they are there (BrowserUnavailable)."""
    if _installed():
        return
    apt = shutil.which("apt-get")
    if apt is None:
        raise BrowserUnavailable("no apt-get: install Chromium and chromedriver at /usr/bin to run the browser tests")
    if os.geteuid() != 0:
        raise BrowserUnavailable("not root: run `apt-get install chromium chromium-driver` to run the browser tests")
    lock_path = Path(tempfile.gettempdir()) / f"dah-cds-chromium-{hashlib.sha256(b'apt').hexdigest()[:8]}.lock"
    with open(lock_path, "w") as lock:
        import fcntl

        fcntl.flock(lock, fcntl.LOCK_EX)
        if _installed():
            return
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        for command in ([apt, "update"], [apt, "install", "-y", "--no-install-recommends", *PACKAGES]):
            try:
                done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env,
                                      stdin=subprocess.DEVNULL)
            except subprocess.TimeoutExpired:
                raise BrowserUnavailable(f"`{' '.join(command)}` did not finish in {timeout:.0f} s") from None
            if done.returncode != 0:
                tail = (done.stdout + done.stderr).strip().splitlines()[-5:]
                raise BrowserUnavailable(f"`{' '.join(command)}` failed: " + " | ".join(tail))
    if not _installed():
        raise BrowserUnavailable(f"{' '.join(PACKAGES)} installed, but {CHROMIUM} or {CHROMEDRIVER} is missing")


def start_chrome(profile: Path, width: int = 1280, height: int = 2400):
    """A selenium driver on headless Debian Chromium with a fresh profile folder."""
    os.environ["SE_OFFLINE"] = "true"  # selenium's driver manager never downloads anything
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (*FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}"):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
