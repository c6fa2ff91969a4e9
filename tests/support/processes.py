"""Stopping the real servers the tests start, the same way everywhere."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from tests.support.ports import wait_for_port


def stop_process(process: subprocess.Popen[bytes] | None, timeout: float = 10.0) -> None:
    """SIGTERM, wait, then SIGKILL (its whole process group, if it leads one)."""
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        if os.getpgid(process.pid) == process.pid:
            os.killpg(process.pid, signal.SIGKILL)
        else:
            process.kill()
        process.wait()


class _Server(Protocol):
    def stop(self) -> None: ...
    def log(self) -> str: ...


def wait_listening(server: _Server, port: int, timeout: float, failure: str) -> None:
    """Wait until something listens on ``port``; if nothing does in time, stop ``server``
    and fail with ``failure`` and its log (read first: stopping may remove it)."""
    try:
        wait_for_port(port, timeout)
    except TimeoutError:
        log = server.log()
        server.stop()
        raise TimeoutError(f"{failure}:\n{log}") from None


def wait_for_http(
    process: subprocess.Popen[bytes],
    url: str,
    ready: Callable[[bytes], bool],
    timeout: float,
    log: Callable[[], str],
) -> None:
    """Poll ``url`` until ``ready(body)``; fail at once if ``process`` exits meanwhile."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args!r} exited:\n{log()}")
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200 and ready(response.read()):
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.05)
    stop_process(process)
    raise TimeoutError(f"{url} not ready after {timeout}s:\n{log()}")


def children(pid: int) -> list[int]:
    """The pids of ``pid``'s child processes (from /proc)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        found += [int(p) for p in (task / "children").read_text().split()]
    return found
