"""The aiohttp service: ``POST /v1/check``, ``POST /v1/reload``, health, readiness, metrics."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine

from aiohttp import hdrs, web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestPayloadError
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from scorer.auth import Credential, PreviousTokenClients, credential
from scorer.config import Config, ConfigError, ServerConfig
from scorer.connections import close_once_answered
from scorer.contentcoding import (
    DECODED,
    DecodedTooLarge,
    UndecodableBody,
    UnsupportedCoding,
    body_coding,
    codings_listed,
    decode_content,
)
from scorer.dns.layer import resolvers
from scorer.handover import unexpected_error
from scorer.hangup import take_deferred_hangup
from scorer.metrics import Metrics
from scorer.pipeline import Pipeline
from scorer.protocol import (
    ACCEPTED_TYPES,
    CheckReply,
    CheckRequest,
    Labels,
    ReplyKey,
    RequestError,
    decode_body,
    encode_reply,
    parse_labels,
    parse_request,
    wants_msgpack,
)
from scorer.refusals import CONNECTION_ADVICE, RELOAD_ADVICE, RefusalLog
from scorer.requestlog import configure_logging, log_check
from scorer.text import escape_unprintable, option
from scorer.workermetrics import SNAPSHOT_SECONDS, WorkerMetrics

log = logging.getLogger("rdns_scorer")

# The most of a request body a failed check's log line shows (bytes that are no UTF-8,
# such as msgpack's, and control characters escaped).
MAX_LOGGED_BODY = 1024

# How long an idle connection is kept open (aiohttp's default): longer than rspamd keeps
# one in its pool (http.client.keepalive_interval, 65 s by default), so that rspamd
# gives it up first and never sends a request into one we are closing. (A pooled
# connection we close is noticed and dropped by rspamd, which watches it.)
IDLE_CONNECTION_SECONDS = 75

# The header lines a request may have, and the bytes of one's value. aiohttp keeps the
# lines of a request until its headers end, as bytes and again as text (a byte that is
# not UTF-8 doubles the text), for up to IDLE_CONNECTION_SECONDS: its defaults (128
# lines of 8,190 bytes) let anyone, token or not, make a connection hold ~3 MB (100
# connections ~300 MB, which the process does not give back). The plugins send fewer
# than 10 short lines (the longest, Authorization, carries the token, which
# config.MAX_TOKEN_CHARS keeps within one), a browser asking for /metrics about 20.
MAX_HEADER_LINES = 32
MAX_HEADER_LINE_BYTES = 4096
# The longest request target (path and query) taken. aiohttp's router shortens the path
# one segment at a time, each a new string, looking for its resource: time quadratic in
# the path's slashes, ~10 ms of the event loop for its default 8,190 bytes of them, on
# any path, token or not (16 connections sending those held every check ~160 ms; 100,
# past the plugins' timeout). ~0.35 ms at this limit; our paths are a few bytes, and
# Prometheus adds a short query at most.
MAX_REQUEST_TARGET_BYTES = 1024

# The endpoint a request aiohttp could not parse is counted under (its 400: connections.
# MALFORMED_BODY): a port scanner, a TLS client on the plain port, broken chunking.
UNPARSABLE_ENDPOINT = "malformed"

ConfigLoader = Callable[[], Config]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
ServiceHandler = Callable[["Service", web.Request], Awaitable[web.StreamResponse]]


class Service:
    """What the handlers share: the current pipeline (swapped on reload), metrics, limits."""

    def __init__(
        self,
        config: Config,
        loader: ConfigLoader | None = None,
        peer_reload: Callable[[], None] | None = None,
        shared_metrics: WorkerMetrics | None = None,
        body_cap: int | None = None,
        api_loader: ConfigLoader | None = None,
    ) -> None:
        self.metrics = Metrics()
        self.started_body_limit = body_cap or config.server.max_body_bytes
        self.started_server = config.server  # what a reload cannot change (reload_warnings)
        # With several workers: /metrics shows them all (scorer.workermetrics).
        self.shared_metrics = shared_metrics
        self._use(self._build(config, previous=None))
        self._loader = loader
        # POST /v1/reload's, when not ``loader`` (create_app).
        self._api_loader = api_loader or loader
        self._reloading = asyncio.Lock()
        self.in_flight = 0
        # Set once the service stops: replies then close their connections (stop()).
        self.stopping = False
        self.refusals = RefusalLog()
        # A reload refused is an admin action someone tried: in the log too, rate-limited.
        self.reload_refusals = RefusalLog("reload request(s)", RELOAD_ADVICE)
        # Connections past [server] max_connections (scorer.connections): no request read.
        self.connection_refusals = RefusalLog("connection(s)", CONNECTION_ADVICE)
        self.previous_token_clients = PreviousTokenClients()
        # Read when Prometheus scrapes: nothing to update per request.
        self.metrics.in_flight.set_function(lambda: self.in_flight)
        # Requests aiohttp could not parse (scorer.connections.ParsingHandler): no
        # endpoint to count them under, and every one a 400. From the start, at 0.
        self._unparsable = self.metrics.request_series(UNPARSABLE_ENDPOINT, (400,))[400]
        # With several workers: after a reload through the API, reload the others too.
        self.peer_reload = peer_reload

    @property
    def config(self) -> Config:
        return self.pipeline.config

    def _use(self, pipeline: Pipeline) -> None:
        """Serve with ``pipeline`` (and its config) from now on."""
        self.pipeline = pipeline
        # The largest check body accepted now: ``max_body_bytes``, but never above the
        # one the service started with, which aiohttp enforces (``client_max_size``) and
        # a reload cannot raise. Worked out here, not read per request through a
        # property (a call each: docs/performance-history.md, forty-fifth session).
        self.body_limit = min(pipeline.config.server.max_body_bytes, self.started_body_limit)

    def connection_limit(self) -> int:
        """The open connections taken now (a reload applies to the next accept)."""
        return self.pipeline.config.server.max_connections

    def refuse_connection(self, client: str | None) -> None:
        """A connection from ``client`` was refused: max_connections were open."""
        self.metrics.connections_refused.inc()
        limit = self.connection_limit()
        # "or more": a reload may have lowered the limit below what is open.
        message = f"{limit} or more connections were open"
        self.connection_refusals.note(503, message, "service", client)

    def refuse_unparsable(self) -> None:
        """A request could not be parsed as HTTP: answered 400 (scorer.connections)."""
        self._unparsable.value += 1

    def _build(self, config: Config, previous: Pipeline | None) -> Pipeline:
        # Keep the DNS layer (and its warm cache) when neither the settings its cached
        # outcomes depend on changed nor, without [dns] nameservers, /etc/resolv.conf's:
        # the README's way to a local resolver is to install one and point resolv.conf
        # at it, then reload. A new timeout, deadline, lookup limit or reply cache does
        # not empty it: raising the timeout while the resolver is slow must not also
        # throw away every answer it gave (each check would ask it again, or fail).
        keep = (
            previous is not None
            and previous.config.dns.cache_settings == config.dns.cache_settings
            and previous.dns.nameservers == resolvers(config.nameservers)
        )
        pipeline = Pipeline(config, previous.dns if keep and previous else None)
        if keep:
            pipeline.dns.set_timeout(config.dns.timeout)
        else:
            pipeline.dns.observer = self.metrics.observe_dns
        self.metrics.watch_caches(pipeline.dns, pipeline.replies)
        return pipeline

    async def answer(
        self, pipeline: Pipeline, body: bytes, content_type: str, want_msgpack: bool
    ) -> tuple[bytes, str]:
        """A /v1/check body in, the reply body and its media type out: everything but HTTP.

        Raises RequestError for a body that cannot be read as a check request.
        The reply's ``elapsed_ms`` is the time from here to the verdict (decoding,
        validation and the check; not metrics, logging, encoding or HTTP).
        """
        answered = self.answer_at_once(pipeline, body, content_type, want_msgpack)
        return answered if isinstance(answered, tuple) else await answered

    def answer_at_once(
        self, pipeline: Pipeline, body: bytes, content_type: str, want_msgpack: bool
    ) -> tuple[bytes, str] | Coroutine[None, None, tuple[bytes, str]]:
        """``answer``'s reply at once for a reply-cache hit, else a coroutine that checks
        the request and gives it. A hit, the common case, awaits nothing, and a coroutine
        of its own cost a served warm check ~4 plain calls (docs/performance-history.md,
        forty-fifth session)."""
        started = time.perf_counter()
        data = decode_body(body, content_type)
        request, key = parse_request(data)
        labels = parse_labels(data)
        reply = pipeline.cached(key)
        if reply is None:
            return self._answer_new(pipeline, request, key, labels, started, want_msgpack)
        return self._answered(request, labels, reply, started, want_msgpack)

    async def _answer_new(
        self,
        pipeline: Pipeline,
        request: CheckRequest,
        key: ReplyKey,
        labels: Labels,
        started: float,
        want_msgpack: bool,
    ) -> tuple[bytes, str]:
        reply = await pipeline.check_and_cache(request, key)
        return self._answered(request, labels, reply, started, want_msgpack)

    def _answered(
        self,
        request: CheckRequest,
        labels: Labels,
        reply: CheckReply,
        started: float,
        want_msgpack: bool,
    ) -> tuple[bytes, str]:
        """The reply to ``request``, counted and logged; ``started``: when answering began."""
        seconds = time.perf_counter() - started
        self.metrics.observe_check(request, reply, seconds)
        elapsed_ms = seconds * 1000
        log_check(request, labels, reply, elapsed_ms)
        return reply.encoded(elapsed_ms, want_msgpack)

    def authorized(self, request: web.Request, server: ServerConfig) -> bool:
        """Whether ``request`` carries ``server``'s token (set), or one of its previous
        tokens, whose use is counted and named in the log (scorer.auth)."""
        given = credential(request, server)
        if given is Credential.PREVIOUS:
            self.metrics.previous_token.inc()
            self.previous_token_clients.note(request.remote, server)
        return given is not Credential.REFUSED

    def refuse(
        self, request: web.Request, status: int, message: str, field: str, want_msgpack: bool
    ) -> web.Response:
        """The error reply for a refused check, logged (RefusalLog: rate-limited)."""
        self.refusals.note(status, message, field, request.remote)
        return _error(status, message, field, want_msgpack)

    async def reload(self, source: str, api: bool = False) -> list[str]:
        """Load the config again; on any error keep serving the old one, log and raise.
        Returns what the new config warns about (Config.reload_warnings).

        The config and its allowlist files are read and validated in a thread: 50,000
        allowlist lines take ~0.4 s, which on the event loop stalled every check in
        flight (with several workers, all at once). One reload at a time, so two
        signals in a row cannot apply an older reading after a newer one. ``api``: for
        POST /v1/reload, from create_app's ``api_loader``.
        """
        async with self._reloading:
            try:
                loader = self._api_loader if api else self._loader
                if loader is None:
                    raise ConfigError("no config source to reload from")
                config = await asyncio.to_thread(loader)
            except ConfigError as error:
                self.metrics.record_reload(success=False)
                log.error(
                    "config reload on %s failed (pid %d), keeping the old config: %s",
                    source, os.getpid(), error,
                )  # fmt: skip
                raise
            except Exception as error:
                # A bug of ours reading some config: still a rejected reload (counted, the
                # alert fires, the API answers 422), never a dead worker or a reload task
                # whose exception nobody retrieves.
                self.metrics.record_reload(success=False)
                log.exception(
                    "config reload on %s failed (pid %d), keeping the old config",
                    source, os.getpid(),
                )  # fmt: skip
                raise unexpected_error(error) from error
            # Requests already running hold the old pipeline and finish with it.
            previous = self.pipeline.config
            changes = config.changes_from(previous)
            pipeline = self._build(config, previous=self.pipeline)
            if pipeline.dns is not self.pipeline.dns:
                # A new resolver is judged before it serves (DnsLayer._judge_root): one
                # that says the root does not exist would otherwise have its NXDOMAIN
                # scored until the next root check, up to ROOT_CHECK_SECONDS later.
                await pipeline.dns.check_root()
                if pipeline.dns.nameservers != self.pipeline.dns.nameservers:
                    log.info(
                        "resolvers now %s (were %s)",
                        pipeline.dns.described_nameservers,
                        self.pipeline.dns.described_nameservers,
                    )
                if self.pipeline.dns.silent and not pipeline.dns.silent:
                    # The new layer has nothing to say "again" about, and the log's last
                    # word on the resolver was the old one's silence.
                    log.info(
                        "resolver %s answers; %s, asked until this reload, did not",
                        pipeline.dns.described_nameservers,
                        self.pipeline.dns.described_nameservers,
                    )
            self._use(pipeline)
            if config.server.logging_settings != previous.server.logging_settings:
                configure_logging(*config.server.logging_settings)
            warnings = config.reload_warnings(self.started_server, previous)
            if self.peer_reload is None:
                # With several workers the supervisor, which reloads too, warns once
                # (workers.Supervisor._reload), not each worker.
                for warning in warnings:
                    log.warning("%s", warning)
            self.metrics.record_reload(success=True)
        log.info(
            "config reloaded on %s (pid %d): %s",
            source,
            os.getpid(),
            "; ".join(changes) if changes else "no change",
        )
        return warnings


SERVICE_KEY = web.AppKey("service", Service)
# The plugins send a few hundred bytes with the headers and give up after ~1 s: a body
# still missing after this is a stalled or hostile client.
BODY_TIMEOUT_SECONDS = 2.0
# How long the unread rest of a refused body (a 413, a 401; not a 408's: connections.
# close_once_answered) is still read and dropped after the reply before the connection
# closes: a client still sending gets to read the reply instead of a reset. aiohttp's
# 10 s let anyone, token or not, keep a connection and the loop busy with whatever it
# streams for that long.
UNREAD_BODY_SECONDS = BODY_TIMEOUT_SECONDS
# The status counted for a request whose client closed the connection before its
# body arrived (nginx's convention; never sent).
CLIENT_CLOSED_REQUEST = 499
# Every status /v1/check answers with (500: a bug; aiohttp's own 500 counts too).
CHECK_STATUSES = (200, 400, 401, 408, 413, 415, 417, CLIENT_CLOSED_REQUEST, 500, 503)


def _error(status: int, message: str, field: str, want_msgpack: bool) -> web.Response:
    # "field" is always a string (never null) so msgpack replies stay nil-free.
    body, content_type = encode_reply({"error": message, "field": field}, want_msgpack)
    return web.Response(status=status, body=body, content_type=content_type)


def body_too_large(limit: int) -> str:
    """The 413's message, whether the size showed in the headers or the body."""
    return f"body larger than {limit} bytes"


async def _invite_the_body(request: web.Request) -> None:
    """Send "100 Continue" to a client that waits for it before sending its body.

    Not to an HTTP/1.0 client, whose expectation is to be ignored (RFC 9110 section
    10.1.1), and only for a request about to be read: a final status instead (401,
    413, 415, or any route but /v1/check) spares the client sending a body we would
    not read (RFC 9110 section 10.1.1 lets a server answer so before the content).
    """
    if request.version >= (1, 1):
        await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        request.writer.output_size = 0  # the response proper has not started


def media_type(content_type: str) -> str:
    """The media type a Content-Type value names: what comes before its parameters, in
    lower case (RFC 9110 section 8.3.1).

    Not aiohttp's ``request.content_type``, which reads the value with the email
    package's header parser: ~1.4 ms of the event loop for 64 semicolons, ~200 ms for
    4,000 (one header line), and a client sending those kept every check waiting.
    """
    return content_type.partition(";")[0].strip(" \t").lower()


def _read_check_body(
    request: web.Request, limit: int
) -> tuple[bytes, str] | Coroutine[None, None, tuple[bytes, str]]:
    """The body of a /v1/check request and its media type, or a RequestError (415, 413,
    408 when it does not arrive within BODY_TIMEOUT_SECONDS). A body that came with the
    headers, the usual case, is taken at once; for one still on its way, a coroutine
    that waits for it (awaiting one of its own cost a served warm check ~4 plain calls:
    docs/performance-history.md, forty-fifth session)."""
    # aiohttp's header names (istr): a plain str key is case-folded on every lookup.
    content_type = request.headers.get(hdrs.CONTENT_TYPE, "")
    if content_type not in ACCEPTED_TYPES:  # parameters, odd case
        content_type = media_type(content_type)
    if content_type not in ACCEPTED_TYPES:
        raise RequestError(
            "Content-Type must be application/msgpack or application/json",
            "Content-Type",
            status=415,
        )
    codings = request.headers.getall(hdrs.CONTENT_ENCODING, ())
    try:
        coding = body_coding(codings) if codings else "identity"  # usually none at all
    except UnsupportedCoding as error:
        # Read as sent, compressed bytes would be taken for the body (RFC 9110 8.4.1).
        raise RequestError(
            f"Content-Encoding {option(str(error), 40)} is not supported "
            f"(use identity, {' or '.join(DECODED)})",
            "Content-Encoding",
            status=415,
        ) from None
    transfer = request.headers.get(hdrs.TRANSFER_ENCODING)
    if transfer is not None and codings_listed(transfer) != ["chunked"]:
        # aiohttp reads "gzip, chunked" as chunked alone: the gzip would be taken for the
        # body. RFC 9112 section 6.1 suggests a 501, but a 5xx pages the admin as a bug.
        raise RequestError(
            f"Transfer-Encoding {option(transfer, 40)} is not supported (use chunked)",
            "Transfer-Encoding",
        )
    if request.content.is_eof():
        # All of it is buffered: taken as it is, with no timer to arm, and not through
        # request.read(), whose coroutine, two readany() rounds and copy cost a served
        # warm check ~12k instructions (docs/performance.md, forty-fourth session). Its
        # size is measured in _checked_body, where request.read() measured it against
        # the larger client_max_size: the same 413 for the same bodies.
        return _checked_body(request.content.read_nowait(), content_type, coding, limit)
    return _receive_check_body(request, content_type, coding, limit)


async def _receive_check_body(
    request: web.Request, content_type: str, coding: str, limit: int
) -> tuple[bytes, str]:
    """_read_check_body's for a body still on its way."""
    if (request.content_length or 0) > limit:
        # Refused before waiting for it (one that arrived is measured, for free).
        raise RequestError(body_too_large(limit), status=413)
    if request.headers.get(hdrs.EXPECT):  # 100-continue: expect_continue took others
        await _invite_the_body(request)
    try:
        async with asyncio.timeout(BODY_TIMEOUT_SECONDS):
            body = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise RequestError(body_too_large(limit), status=413) from None
    except TimeoutError:
        raise RequestError(
            f"body not received within {BODY_TIMEOUT_SECONDS:g} s", status=408
        ) from None
    except RequestPayloadError as error:  # broken chunking (codings: decode_content below)
        cause = error.__cause__
        why = cause.message if isinstance(cause, HttpProcessingError) else str(error)
        raise RequestError(f"body could not be read: {option(why, 100)}") from None
    return _checked_body(body, content_type, coding, limit)


def _checked_body(body: bytes, content_type: str, coding: str, limit: int) -> tuple[bytes, str]:
    """``body`` as read, measured against ``limit`` and decoded from ``coding``."""
    if len(body) > limit:
        # A reload may have lowered the limit below aiohttp's own cap, and a chunked
        # body has no Content-Length to compare first.
        raise RequestError(body_too_large(limit), status=413)
    if coding != "identity":
        try:
            body = decode_content(body, coding, limit)
        except DecodedTooLarge:
            raise RequestError(body_too_large(limit), status=413) from None
        except UndecodableBody as error:
            raise RequestError(f"body could not be read: {option(str(error), 100)}") from None
    return body, content_type


def _wants_msgpack(request: web.Request) -> bool:
    """Whether the request's Accept lines ask for msgpack: several lines of one field
    make one comma-separated list (RFC 9110 section 5.3), so all of them are read."""
    return wants_msgpack(", ".join(request.headers.getall(hdrs.ACCEPT, ())))


async def check(service: Service, request: web.Request) -> web.Response:
    pipeline = service.pipeline  # one config for the whole request, even across a reload
    config = pipeline.config
    want_msgpack = _wants_msgpack(request)
    if config.server.token and not service.authorized(request, config.server):
        return service.refuse(
            request, 401, "missing or wrong bearer token", "Authorization", want_msgpack
        )
    try:
        # Read before taking a slot: a client that sends headers and stalls the body
        # must not hold one of max_in_flight (the checks of everyone else would get 503).
        read = _read_check_body(request, service.body_limit)
        body, content_type = read if isinstance(read, tuple) else await read
    except RequestError as error:
        response = service.refuse(request, error.status, error.message, error.field, want_msgpack)
        if error.status in (400, 408, 413):
            # The body's unread rest would be read as the next request ("400 Invalid
            # method"), or (400) it cannot be read, and aiohttp drops the connection
            # anyway: this connection is done, and the reply says so (RFC 9112 section
            # 9.6), so that a client does not send its next request into it.
            response.force_close()
            if error.status == 408:
                close_once_answered(request)
        return response
    except ConnectionResetError:
        # The client left before its body arrived: nobody to answer, and not our
        # fault (a 500 would page the admin). Counted under nginx's 499.
        return web.Response(status=CLIENT_CLOSED_REQUEST)
    if service.in_flight >= config.server.max_in_flight:
        # Shed load at once: the plugin fails open, which beats making rspamd wait.
        service.metrics.overloaded.inc()
        # No field of the request is at fault: the service is (max_in_flight).
        response = service.refuse(request, 503, "overloaded, retry later", "service", want_msgpack)
        response.headers["Retry-After"] = "1"
        return response
    service.in_flight += 1
    try:
        answered = service.answer_at_once(pipeline, body, content_type, want_msgpack)
        payload, reply_type = answered if isinstance(answered, tuple) else await answered
    except RequestError as error:
        return service.refuse(request, error.status, error.message, error.field, want_msgpack)
    except Exception:
        # A bug of ours: logged with the request that triggers it, which the runbook asks
        # to report (aiohttp's own line named only the peer). The plugin fails open.
        shown = escape_unprintable(
            bytes(body[:MAX_LOGGED_BODY]).decode("utf-8", "backslashreplace")
        )
        log.exception("a check failed (a bug; please report it with this request): %s", shown)
        return _error(500, "internal error", "body", want_msgpack)
    finally:
        service.in_flight -= 1
    return web.Response(body=payload, content_type=reply_type)


def expect_continue(
    service: Service, endpoint: str
) -> Callable[[web.Request], Awaitable[web.Response | None]]:
    """A route's answer to ``Expect`` (RFC 9110 section 10.1.1): a JSON 417, counted
    here (the route's wrapper never runs for it), for any expectation but
    100-continue (aiohttp's own echoed the header in plain text, and a header that is
    not UTF-8 made it a 500 with a traceback). 100-continue gets nothing yet: "100
    Continue" asks the client for its body, so only /v1/check sends it, once it has
    taken the token, media type, coding and size and is about to read the body
    (_read_check_body); every other route reads no body and answers at once."""
    by_status = service.metrics.request_series(endpoint)

    async def expect(request: web.Request) -> web.Response | None:
        expectation = request.headers.get("Expect", "")
        if expectation.lower() == "100-continue":
            return None
        want_msgpack = _wants_msgpack(request)
        message = f"unsupported Expect: {option(expectation, 40)} (only 100-continue)"
        response = service.refuse(request, 417, message, "Expect", want_msgpack)
        response.force_close()  # the client may send the body anyway
        by_status[417].value += 1
        return response

    return expect


async def reload_config(service: Service, request: web.Request) -> web.Response:
    # In the format asked for, as every other reply (its 417 already was).
    want_msgpack = _wants_msgpack(request)
    server = service.config.server
    # The current token only: a previous one is kept for plugins not yet told, and a
    # rotation may be for a token that leaked, which must not keep an admin action.
    if not server.token or credential(request, server) is not Credential.CURRENT:
        # Reloading is an admin action: never open, even when checks need no token.
        message = "reload needs the bearer token ([server] token)"
        service.reload_refusals.note(401, message, "Authorization", request.remote)
        return _error(401, message, "Authorization", want_msgpack)
    try:
        warnings = await service.reload("POST /v1/reload", api=True)
    except ConfigError as error:
        return _error(422, str(error), "config", want_msgpack)
    finally:
        # The other workers too, even when it failed: each then reports the rejected
        # config in its own metrics, not just the one that happened to get the request.
        if service.peer_reload is not None:
            service.peer_reload()
    # What the log says beside "reloaded": a changed listen address or a raised body
    # limit waits for a restart, and the caller of the API would not see it otherwise.
    body, content_type = encode_reply({"status": "reloaded", "warnings": warnings}, want_msgpack)
    return web.Response(body=body, content_type=content_type)


def unrouted(methods: dict[str, tuple[str, ...]]) -> ServiceHandler:
    """The answer to a request no route takes: 405 (with Allow) for a known path asked
    with another method, else 404; JSON, like every other error."""

    async def handler(_service: Service, request: web.Request) -> web.Response:
        want_msgpack = _wants_msgpack(request)
        taken = methods.get(request.path)
        if taken is None:
            paths = ", ".join(methods)
            return _error(404, f"no such endpoint (there are {paths})", "path", want_msgpack)
        allowed = ", ".join(taken)
        response = _error(405, f"{request.path} takes {allowed}", "method", want_msgpack)
        response.headers["Allow"] = allowed
        return response

    return handler


async def healthz(_service: Service, _request: web.Request) -> web.Response:
    # The pid tells which worker answered when several share the port.
    return web.json_response({"status": "ok", "pid": os.getpid()})


async def readyz(service: Service, _request: web.Request) -> web.Response:
    pipeline = service.pipeline
    reason = await pipeline.dns.unready_reason()
    # The deadline a check is answered within: `rdns-scorer rspamd|spamassassin check`
    # compares it with the plugin's timeout (scorer.integrations.probe).
    status = {
        "status": "ready" if reason is None else reason,
        "request_deadline": pipeline.config.dns.request_deadline,
        # Each worker judges its own queries (their failure share): which one said so.
        "pid": os.getpid(),
    }
    return web.Response(
        status=200 if reason is None else 503,
        text=json.dumps(status),
        content_type="application/json",
    )


async def metrics(service: Service, _request: web.Request) -> web.Response:
    registry = service.metrics.registry
    if service.shared_metrics is None:
        body = generate_latest(registry)
    else:
        body = service.shared_metrics.render(registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


# How often each worker asks the resolver for the root's SOA (DnsLayer.check_root): a
# resolver that starts answering NXDOMAIN for everything is caught within this.
ROOT_CHECK_SECONDS = 10.0


async def _check_the_root(app: web.Application) -> AsyncIterator[None]:
    """Judge the resolver before serving, then every ROOT_CHECK_SECONDS, through the
    DNS layer of the moment (a reload may have replaced it); a change of judgement
    empties the DNS cache and, through Pipeline._judged_replies, the reply caches.

    Before: the first requests must not take the NXDOMAIN of a resolver that says the
    root does not exist at its word. It delays listening by one root query (at most the
    [dns] timeout, when the resolver does not answer).
    """
    service = app[SERVICE_KEY]
    await service.pipeline.dns.check_root()

    async def watch() -> None:
        while True:
            await asyncio.sleep(ROOT_CHECK_SECONDS)
            await service.pipeline.dns.check_root()

    task = asyncio.get_running_loop().create_task(watch())
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def _share_metrics(app: web.Application) -> AsyncIterator[None]:
    """Keep this worker's metrics snapshot fresh for the others' scrapes."""
    service = app[SERVICE_KEY]
    shared = service.shared_metrics
    assert shared is not None
    loop = asyncio.get_running_loop()
    timer: asyncio.TimerHandle | None = None

    def snapshot() -> None:
        nonlocal timer
        shared.snapshot(service.metrics.registry)
        timer = loop.call_later(SNAPSHOT_SECONDS, snapshot)

    snapshot()
    yield
    if timer is not None:
        timer.cancel()
    shared.snapshot(service.metrics.registry)  # what this worker counted last


def counted(
    endpoint: str, handler: ServiceHandler, service: Service, statuses: tuple[int, ...] = ()
) -> Handler:
    """``handler`` as an aiohttp handler: given the service, its replies counted by
    status in ``rdns_scorer_requests_total``.

    A wrapper per route rather than an aiohttp middleware, and the service bound
    here rather than looked up in the app per request: both cost a measurable
    share of a cached check (docs/performance.md). The series of ``statuses`` are
    exported from the start, at 0: a share of errors on a healthy server is 0, not
    "no data".
    """

    by_status = service.metrics.request_series(endpoint, statuses)

    async def wrapper(request: web.Request) -> web.StreamResponse:
        status = 500
        try:
            response = await handler(service, request)
            status = response.status
            if service.stopping:
                # The connection closes once this is answered: said, so a client's pool
                # does not keep it for its next request, which would fail.
                response.force_close()
            elif response.keep_alive is None and request.keep_alive:  # not force_close()d
                # rspamd's HTTP client pools a connection only when the reply says so
                # (rspamd_http_context_push_keepalive), and aiohttp leaves it out of an
                # HTTP/1.1 reply, where keep-alive is the default (RFC 9112 section 9.3):
                # without it every scan opened a new connection.
                response.headers[hdrs.CONNECTION] = "keep-alive"
            return response
        except web.HTTPException as error:
            status = error.status
            raise
        finally:
            by_status[status].value += 1

    return wrapper


async def _reload_on_sighup(app: web.Application) -> None:
    reloads: set[asyncio.Task[None]] = set()  # held until done: the loop keeps weak refs

    async def reload() -> None:
        with contextlib.suppress(ConfigError):  # logged and counted by reload()
            await app[SERVICE_KEY].reload("SIGHUP")

    def handle() -> None:
        task = asyncio.get_running_loop().create_task(reload())
        reloads.add(task)
        task.add_done_callback(reloads.discard)

    asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, handle)
    if take_deferred_hangup():  # asked for while we were starting
        handle()


def create_app(
    config: Config,
    loader: ConfigLoader | None = None,
    peer_reload: Callable[[], None] | None = None,
    shared_metrics: WorkerMetrics | None = None,
    body_cap: int | None = None,
    api_loader: ConfigLoader | None = None,
) -> web.Application:
    """The service's application. ``body_cap``: the body limit the service started with,
    for a worker that replaces one (a reload cannot raise it, so neither can a new worker
    of the same service); by default ``config``'s. ``api_loader``: where POST /v1/reload
    reads the config, when not where a SIGHUP's reload does (``loader``): a worker of
    several reads the file there and takes its supervisor's reading on SIGHUP
    (scorer.handover)."""
    service = Service(config, loader, peer_reload, shared_metrics, body_cap, api_loader)
    # client_max_size makes aiohttp itself refuse bigger bodies, even chunked ones; the
    # bodies are read as sent and decoded by scorer.contentcoding, which says why one
    # does not decode (aiohttp's own decoding answered some in plain text, uncounted).
    app = web.Application(
        client_max_size=service.started_body_limit,
        handler_args={
            "auto_decompress": False,
            "max_headers": MAX_HEADER_LINES,
            "max_field_size": MAX_HEADER_LINE_BYTES,
            "max_line_size": MAX_REQUEST_TARGET_BYTES,
        },
    )
    app[SERVICE_KEY] = service
    app.cleanup_ctx.append(_check_the_root)
    if shared_metrics is not None:
        app.cleanup_ctx.append(_share_metrics)
    routes: list[tuple[str, str, ServiceHandler]] = [
        ("POST", "/v1/check", check),
        ("POST", "/v1/reload", reload_config),
        ("GET", "/healthz", healthz),
        ("GET", "/readyz", readyz),
        ("GET", "/metrics", metrics),
    ]
    # HEAD wherever GET: every general-purpose server must take both (RFC 9110 section
    # 9.1), and uptime monitors probe with HEAD; aiohttp sends no content for it.
    methods: dict[str, tuple[str, ...]] = {
        path: ("GET", "HEAD") if method == "GET" else (method,) for method, path, _ in routes
    }
    for _method, path, handler in routes:
        statuses = CHECK_STATUSES if handler is check else ()
        counted_handler = counted(path, handler, service, statuses)
        expect = expect_continue(service, path)
        for method in methods[path]:
            app.router.add_route(method, path, counted_handler, expect_handler=expect)
    # Last, so it only gets what no route above took: a plugin posting to a wrong URL
    # shows on the dashboard (endpoint "other") and gets the usual JSON error. "(?s:"
    # makes "." take a newline too: the path is matched decoded, "/a%0A" as "/a\n".
    app.router.add_route(
        "*",
        "/{path:(?s:.*)}",
        counted("other", unrouted(methods), service),
        expect_handler=expect_continue(service, "other"),
    )
    if loader is not None:
        app.on_startup.append(_reload_on_sighup)
    return app
