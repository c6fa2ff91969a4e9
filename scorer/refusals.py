"""Refused checks in the log: at once, then at most once a minute per status.

The plugins fail open on every refusal, and all they show is their own
RL_SCORER_FAIL: without a line here, an admin answering the client-errors or
overload alert would have only a count. Rate-limited per status, so a flood of
bad requests costs a line a minute, and each line names the latest reason.
"""

from __future__ import annotations

import logging
import time

log = logging.getLogger("rdns_scorer")

# A status is logged at most once per this many seconds.
REFUSAL_LOG_SECONDS = 60.0

# What to do about a refusal, by status: the reply's own message says what was wrong.
_ADVICE = {
    401: "the plugin's token must be [server] token: rdns-scorer rspamd install --config",
    503: "max_in_flight checks were running: see docs/operations.md, Overload",
}


class RefusalLog:
    def __init__(self) -> None:
        self._counts: dict[int, int] = {}  # refusals since the last line, by status
        self._quiet_until: dict[int, float] = {}

    def note(self, status: int, message: str, field: str) -> None:
        """A request answered ``status``; ``message`` and ``field`` are the reply's (already
        escaped: scorer.text.option), never the request's raw bytes."""
        count = self._counts.get(status, 0) + 1
        now = time.monotonic()
        if now < self._quiet_until.get(status, 0.0):
            self._counts[status] = count
            return
        advice = _ADVICE.get(status)
        log.warning(
            "%d request(s) refused with %d since the last such line: %s (field %s)%s",
            count,
            status,
            message,
            field,
            f"; {advice}" if advice else "",
        )
        self._counts[status] = 0
        self._quiet_until[status] = now + REFUSAL_LOG_SECONDS
