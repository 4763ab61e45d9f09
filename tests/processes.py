"""Servers the tests start as child processes (PostgreSQL, the FHIR test server): waiting until one
answers, and stopping one, the same way for each."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable


def wait_ready(process: subprocess.Popen | None, answers: Callable[[], bool], timeout: float, interval: float,
               exited: Callable[[], Exception], late: Callable[[], Exception]) -> None:
    """Poll `answers()` until it is true; `exited()` is raised if the process ends first, `late()` after `timeout` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is None or process.poll() is not None:
            raise exited()
        if answers():
            return
        time.sleep(interval)
    raise late()


def stop_process(process: subprocess.Popen | None, sig: signal.Signals, grace: float, kill_wait: float) -> None:
    """Send `sig` to the process (its own pid), SIGKILL if it lingers past `grace` s."""
    if process is not None and process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=kill_wait)
