"""Refused requests in the log (checks; reloads apart): at once, then at most once a
minute per status.

The plugins fail open on every refusal, and all they show is their own
RL_SCORER_FAIL: without a line here, an admin answering the client-errors or
overload alert would have only a count. Rate-limited per status, so a flood of
bad requests costs a line a minute, and each line names the latest reason.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping

from scorer.text import quoted

log = logging.getLogger("rdns_scorer")

# A status is logged at most once per this many seconds.
REFUSAL_LOG_SECONDS = 60.0

# What to do about a refusal, by status: the reply's own message says what was wrong.
CHECK_ADVICE = {
    401: "the plugin's token must be [server] token: `rdns-scorer rspamd install --config "
    "FILE` writes it for rspamd; SpamAssassin takes it as rdns_scorer_token",
    503: "max_in_flight checks were running: see docs/operations.md, Overload",
}
CONNECTION_ADVICE = {
    # The client named is the one turned away, not those holding the connections.
    503: "[server] max_connections were open: see who holds them before raising it "
    "(docs/monitoring.md, RdnsScorerConnectionsRefused)",
}
RELOAD_ADVICE = {
    401: "POST /v1/reload takes [server] token as a bearer token; or send SIGHUP "
    "(docs/operations.md, Reload)",
}


class RefusalLog:
    """Per status: a line at once; refusals within the next REFUSAL_LOG_SECONDS are
    counted and logged when that time is up (a burst, then silence, is still told in
    full), with the latest reason. ``what`` names the requests in the line (a reload
    refused is worth telling apart from a check: it is an admin action)."""

    def __init__(self, what: str = "request(s)", advice: Mapping[int, str] = CHECK_ADVICE) -> None:
        self._what = what
        self._advice = advice
        self._counts: dict[int, int] = {}  # refusals not logged yet, by status
        self._latest: dict[int, tuple[str, str, str]] = {}  # latest message, field, client
        self._quiet_until: dict[int, float] = {}
        self._flushing: set[int] = set()  # statuses with a line scheduled

    def note(self, status: int, message: str, field: str, client: str | None = None) -> None:
        """A request answered ``status``; ``message`` and ``field`` are the reply's (already
        escaped: scorer.text.option), never the request's raw bytes; ``client``: the
        peer's address, which the line names (who sends them: another rspamd host with
        an old token, say). Called on the event loop (a handler), which logs what the
        quiet time held back."""
        self._counts[status] = self._counts.get(status, 0) + 1
        self._latest[status] = (message, field, client or "")
        wait = self._quiet_until.get(status, 0.0) - time.monotonic()
        if wait <= 0:
            self._log(status)
        elif status not in self._flushing:
            self._schedule(status, wait)

    def _schedule(self, status: int, wait: float) -> None:
        self._flushing.add(status)
        asyncio.get_running_loop().call_later(wait, self._flush, status)

    def _flush(self, status: int) -> None:
        self._flushing.discard(status)
        if not self._counts.get(status):
            return
        # A refusal run before this timer, once the quiet time was up, was logged at once
        # and began a new one: those after it (the same loop iteration, under a flood)
        # wait for its end, or they made a second line within the millisecond.
        wait = self._quiet_until[status] - time.monotonic()
        if wait > 0:
            self._schedule(status, wait)
        else:
            self._log(status)

    def _log(self, status: int) -> None:
        message, field, client = self._latest[status]
        advice = self._advice.get(status)
        # The message quoted: it may repeat the request's own words (a bad ``ip``), which
        # could otherwise write "(field ip; the latest from 192.0.2.25)" ahead of ours.
        log.warning(
            "%d %s refused with %d since the last such line: %s (field %s%s)%s",
            self._counts[status],
            self._what,
            status,
            quoted(message),
            field,
            f"; the latest from {client}" if client else "",
            f"; {advice}" if advice else "",
        )
        self._counts[status] = 0
        self._quiet_until[status] = time.monotonic() + REFUSAL_LOG_SECONDS
