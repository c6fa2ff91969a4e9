"""The ``rdns-scorer`` entry point.

``serve`` defers SIGHUP before anything else is imported (scorer.hangup): the
command line pulls in aiohttp, dnspython and the rest, which takes long enough
for a ``systemctl reload`` right after a start to land in it.
"""

from __future__ import annotations

import os
import signal
import sys

from scorer.hangup import defer_hangups

# What a shell reports for a command ended by SIGINT (128 + 2): Ctrl-C.
INTERRUPTED_STATUS = 130


def main() -> int:
    try:
        if sys.argv[1:2] == ["serve"]:
            defer_hangups()
            if os.getpid() == 1:
                _stop_on_signals_until_served()
        _open_standard_descriptors()
        from scorer.cli import main as cli_main

        return cli_main()
    except KeyboardInterrupt:
        # Ctrl-C while the command line is still imported (~0.5 s, before cli.main,
        # which says the same of one during a command, and before serve's own handler):
        # Python's traceback of whichever import it cut, and an exit by SIGINT.
        return INTERRUPTED_STATUS


def _stop_on_signals_until_served() -> None:
    """As PID 1 (a container without an init), end on SIGTERM and SIGINT until the app
    handles them: the kernel gives PID 1 no default action, so a `docker stop` in the
    half second a start takes was lost, and Docker killed the service 10 s later."""

    def stop(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)


def _open_standard_descriptors() -> None:
    """/dev/null on whichever of fds 0-2 the process was started without (``<&-``,
    ``2>&-``, a careless daemonizer): else the next file or socket opened takes that
    number. The event loop's epoll fd became fd 0 or 2, and uvloop (libuv asserts it
    never closes a standard fd) aborted every stop with SIGABRT; sys.stderr was None,
    which ended a stopping worker in an AttributeError."""
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            null = os.open(os.devnull, os.O_RDWR)
            if null != fd:
                os.dup2(null, fd)
                os.close(null)
    if sys.stdin is None:
        sys.stdin = open(0, closefd=False)  # noqa: SIM115 - for the process's lifetime
    if sys.stderr is None:
        sys.stderr = open(2, "w", errors="backslashreplace", closefd=False)  # noqa: SIM115
