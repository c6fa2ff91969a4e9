"""Who may ask: the bearer token (RFC 6750 section 2.1) of ``[server] token``, and the
ones still taken while a rotation replaces it (``[server] previous_tokens``).

A rotation changes the secret of every rspamd and SpamAssassin host that asks one
service. Those hosts cannot all change at the same moment, and a host whose token is
refused fails open on every message until it does, so for a while the service takes
the new token and the old one. This module tells the two apart, so that the admin
learns which hosts still send an old one (the log names each, once per worker) and when none
does any more (``rdns_scorer_previous_token_requests_total`` stays flat).
"""

from __future__ import annotations

import enum
import hmac
import logging

from aiohttp import hdrs, web

from scorer.config import ServerConfig

log = logging.getLogger("rdns_scorer")

# Clients named in the log as still sending a previous token, at most: a rotation
# concerns a handful of mail hosts, and a flood from many addresses must not grow a set.
MAX_NAMED_CLIENTS = 1024


class Credential(enum.Enum):
    """What a request's ``Authorization`` header carries."""

    REFUSED = "missing or wrong"
    CURRENT = "[server] token"
    PREVIOUS = "one of [server] previous_tokens"


def credential(request: web.Request, server: ServerConfig) -> Credential:
    """Which of ``server``'s tokens the request carries (``server.token`` is set: callers
    skip the check without one). Each comparison takes constant time (hmac), so the time
    taken does not reveal how much of a token matched."""
    scheme, _, presented = request.headers.get(hdrs.AUTHORIZATION, "").partition(" ")
    if scheme.lower() != "bearer":  # the scheme is case-insensitive (RFC 9110 section 11.1)
        return Credential.REFUSED
    # surrogateescape: aiohttp keeps a header's invalid UTF-8 bytes as surrogates.
    given = presented.strip(" \t").encode("utf-8", "surrogateescape")
    if hmac.compare_digest(given, server.token.encode()):
        return Credential.CURRENT
    if any(hmac.compare_digest(given, old.encode()) for old in server.previous_tokens):
        return Credential.PREVIOUS
    return Credential.REFUSED


class PreviousTokenClients:
    """The clients that sent a previous token: each named in the log once, for as long as
    the previous tokens stay what they were (a reload that changes them starts afresh)."""

    def __init__(self) -> None:
        self._named: set[str] = set()
        self._tokens: list[str] = []

    def note(self, client: str | None, server: ServerConfig) -> None:
        if server.previous_tokens != self._tokens:
            self._tokens = server.previous_tokens
            self._named.clear()
        name = client or "an unknown address"  # a Unix socket has no peer address
        if name in self._named or len(self._named) >= MAX_NAMED_CLIENTS:
            return
        self._named.add(name)
        log.warning(
            "%s sent a previous token ([server] previous_tokens), still taken: give its "
            "plugin [server] token (`rdns-scorer rspamd install --config FILE`, or "
            "SpamAssassin's rdns_scorer_token), then drop previous_tokens once "
            "rdns_scorer_previous_token_requests_total stays flat (docs/security.md, "
            "Rotating the token)",
            name,
        )
