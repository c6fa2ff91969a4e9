"""The cap on open connections, per worker (``[server] max_connections``).

aiohttp reads a request's headers before any handler runs, so the token and
``max_in_flight`` only apply once a client has sent them: anyone who can reach the
port could hold a connection, and up to 32 header lines of 4 KiB (~330 KB of the
process), for as long as the keep-alive timer allows, thousands of them gigabytes.
The only place that sees a connection before it costs anything is the protocol
factory the listening sockets call on accept: ``ConnectionCap`` hands out aiohttp's
request handler while fewer than the limit are open, and past it a protocol that
writes a 503 and closes at once (``Refused``), reading nothing.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from typing import Any, cast

from aiohttp import web
from aiohttp.web_protocol import RequestHandler, _ErrInfo
from aiohttp.web_request import BaseRequest

from scorer.protocol import encode_reply

# What a refused connection is told: the plugins fail open on it (or on the reset, when
# the client's request reached us before the close: closing a socket with unread bytes
# resets the connection, which drops the 503 at the client's end).
REFUSED_MESSAGE = "too many connections, retry later"


def _refused_reply() -> bytes:
    """The 503 a refused connection gets, whole: no request was read to answer, so no
    aiohttp response is built (and none could be without one)."""
    body, content_type = encode_reply({"error": REFUSED_MESSAGE, "field": "service"}, False)
    head = (
        "HTTP/1.1 503 Service Unavailable\r\n"
        f"Content-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Retry-After: 1\r\n"
        "Connection: close\r\n"
        "\r\n"
    )
    return head.encode("ascii") + body


REFUSED_REPLY = _refused_reply()

# What a request that cannot be parsed as HTTP is told, whatever it sent: aiohttp's own
# 400 quoted the bytes its parser stopped at, up to the whole read (a request line of
# 128 KB came back whole), in plain text; the reason is in the log (scorer.requestlog).
MALFORMED_MESSAGE = "malformed HTTP request"
MALFORMED_BODY, MALFORMED_TYPE = encode_reply(
    {"error": MALFORMED_MESSAGE, "field": "request"}, False
)


class Refused(asyncio.Protocol):
    """A connection past the cap: the 503 written, the socket closed, nothing read
    (each costs no more than its accept, whatever the client goes on sending)."""

    def __init__(self, noted: Callable[[str | None], None]) -> None:
        self._noted = noted

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream transport (uvloop's is no asyncio.WriteTransport subclass).
        stream = cast(asyncio.Transport, transport)
        stream.write(REFUSED_REPLY)
        stream.close()
        peer = transport.get_extra_info("peername")
        self._noted(str(peer[0]) if isinstance(peer, tuple) else None)


class ParsingHandler(RequestHandler):
    """aiohttp's handler of one connection, which reads nothing more once a request on it
    could not be parsed: that request's 400 ends the connection. The 400 is short and
    fixed (MALFORMED_BODY), and ``unparsable`` is called for it (it is counted).

    aiohttp goes on feeding what the client sends to its parser, which fails again on
    every read, each time with an error that quotes the whole read (~256 KB) and a
    caret line as long: each became one more queued "request" of ~0.8 MB, up to 32 of
    them before aiohttp stops reading. A client, token or not, streaming a header line
    past its limit made a connection hold ~7 MB (50 such connections grew the process
    by ~360 MB, 50 more to 771 MB, which it did not give back); now it holds the one
    error.
    """

    __slots__ = ("_noted", "_unparsable")

    def __init__(self, *args: Any, unparsable: Callable[[], None], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._unparsable = False
        self._noted = unparsable

    def data_received(self, data: bytes) -> None:
        if self._unparsable:
            return  # dropped, as aiohttp drops what comes once it closes
        # Named, not super(): a super object built twice a request (aiohttp calls this
        # again with b"" once it resumes reading) was a measurable share of a served warm
        # check (docs/performance-history.md, forty-fifth session).
        RequestHandler.data_received(self, data)
        messages = self._messages
        if messages and type(messages[-1][0]) is _ErrInfo:
            self._unparsable = True

    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        """aiohttp's error reply: for a request its parser refused (the only 400 it makes
        here, from an ``_ErrInfo``), MALFORMED_BODY, counted; a 500 or 504 as aiohttp
        makes it (its text quotes nothing the client sent)."""
        if status != 400:
            return super().handle_error(request, status, exc, message)
        # aiohttp's, for its log line (scorer.requestlog) and its checks, but not with the
        # parser's message: aiohttp would encode a copy of it as the reply's body.
        super().handle_error(request, status, exc, MALFORMED_MESSAGE)
        self._noted()
        response = web.Response(status=400, body=MALFORMED_BODY, content_type=MALFORMED_TYPE)
        response.force_close()
        return response


def close_once_answered(request: web.BaseRequest) -> None:
    """Close ``request``'s connection as soon as its reply is sent: none of the unread
    rest of its body is waited for (aiohttp's lingering, UNREAD_BODY_SECONDS).

    For a 408: a client whose body did not arrive within app.BODY_TIMEOUT_SECONDS has had its
    time, and a 408 says the server "has decided to close the connection rather than
    continue waiting" (RFC 9110 section 15.5.9). Lingering held it open, and counted in
    rdns_scorer_connections_open and against max_connections, 2 s more for nothing;
    what it may still send is too late, and at worst resets the connection before it
    reads the 408 (RFC 9112 section 9.6), which it fails open on all the same.
    """
    request.protocol._lingering_time = 0.0  # read by aiohttp once the reply is sent


def parsing_handler(server: web.Server, unparsable: Callable[[], None]) -> ParsingHandler:
    """A ParsingHandler for a connection to ``server``, made as ``server()`` makes
    aiohttp's own (with the app's and the runner's handler arguments)."""
    return ParsingHandler(server, loop=server._loop, unparsable=unparsable, **server._kwargs)


class ConnectionCap:
    """The listening sockets' protocol factory: aiohttp's handler for a new connection
    while fewer than ``limit()`` are open (read on each accept: a reload applies at
    once), else ``Refused``, which calls ``refused`` with the client's address. Each
    handler calls ``unparsable`` for a request it could not parse (ParsingHandler).

    Open connections are aiohttp's (``web.Server.connections``: those whose handler
    still runs) and those handed out in this turn of the event loop: a handler counts
    there only from its ``connection_made``, which the loop calls in its next turn,
    and one turn may accept a whole burst (asyncio up to the listen backlog, 4,096).
    The turn's count is cleared by a callback queued at its first accept, which runs
    after every accept of that turn and before any of the next, whose handlers are
    counted by then.
    """

    def __init__(
        self,
        server: web.Server,
        limit: Callable[[], int],
        refused: Callable[[str | None], None],
        unparsable: Callable[[], None],
    ) -> None:
        self._server = server
        self._limit = limit
        self._refused = refused
        self._unparsable = unparsable
        self._handed_out = 0  # handlers created this turn, not yet connected

    @property
    def open(self) -> int:
        return len(self._server.connections) + self._handed_out

    def __call__(self) -> asyncio.BaseProtocol:
        if self.open >= self._limit():
            return Refused(self._refused)
        if not self._handed_out:
            asyncio.get_running_loop().call_soon(self._turn_over)
        self._handed_out += 1
        return parsing_handler(self._server, self._unparsable)

    def _turn_over(self) -> None:
        self._handed_out = 0


class CappedSite(web.SockSite):
    """aiohttp's site for a socket we bound, with ``cap`` as its protocol factory (in
    place of the runner's server itself); one cap for every socket of the worker."""

    __slots__ = ("_cap",)

    def __init__(
        self, runner: web.AppRunner, sock: socket.socket, cap: ConnectionCap, backlog: int
    ) -> None:
        super().__init__(runner, sock, backlog=backlog)
        self._cap = cap

    async def start(self) -> None:
        # BaseSite's, which registers the site with the runner (whose cleanup stops it);
        # not SockSite's, which would serve the socket with the server uncapped.
        await web.BaseSite.start(self)
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(self._cap, sock=self._sock, backlog=self._backlog)
