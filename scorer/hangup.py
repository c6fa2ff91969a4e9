"""SIGHUP before the service handles it: remembered as a reload, never a kill.

SIGHUP's default action ends the process, and systemd counts that as a clean
exit (``Restart=on-failure`` leaves it down): a ``systemctl reload`` in the
second a start takes (importing the command line alone takes ~0.5 s) would
leave mail unscored. So ``rdns-scorer serve`` defers the signal first thing
(scorer.launch, before any heavy import) and the app runs the reload it missed
once its own handler is in place. This module imports nothing heavy on purpose.
"""

from __future__ import annotations

import signal

_hangup_pending = False


def _remember(_signum: int, _frame: object) -> None:
    global _hangup_pending
    _hangup_pending = True


def defer_hangups() -> None:
    """Until the app takes SIGHUP over, remember a reload request instead of dying of it."""
    signal.signal(signal.SIGHUP, _remember)


def take_deferred_hangup() -> bool:
    """Whether a SIGHUP came before the app handled the signal (and forget it)."""
    global _hangup_pending
    pending, _hangup_pending = _hangup_pending, False
    return pending
