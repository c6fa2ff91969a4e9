"""The aiohttp service: ``POST /v1/check``, ``GET /healthz``, ``GET /readyz``."""

from __future__ import annotations

import hmac
import json
import logging

from aiohttp import web

from scorer.config import Config
from scorer.pipeline import Pipeline
from scorer.protocol import (
    JSON_TYPES,
    MSGPACK_TYPES,
    CheckReply,
    CheckRequest,
    RequestError,
    decode_body,
    encode_reply,
    parse_request,
    wants_msgpack,
)
from scorer.text import option

log = logging.getLogger("rdns_scorer")

PIPELINE_KEY = web.AppKey("pipeline", Pipeline)


def _error(status: int, message: str, field: str, want_msgpack: bool) -> web.Response:
    # "field" is always a string (never null) so msgpack replies stay nil-free.
    body, content_type = encode_reply({"error": message, "field": field}, want_msgpack)
    return web.Response(status=status, body=body, content_type=content_type)


def _log_request(request: CheckRequest, reply: CheckReply) -> None:
    log.info(
        "check ip=%s helo=%s from=%s queue_id=%s score=%.2f symbols=%s elapsed_ms=%.1f",
        request.ip,
        option(request.helo or "", 80),
        option(request.mail_from if request.mail_from is not None else "-", 80),
        option(request.queue_id or "-", 40),
        reply.score,
        ",".join(s.name for s in reply.symbols) or "-",
        reply.elapsed_ms,
    )


def _authorized(request: web.Request, token: str) -> bool:
    if not token:
        return True
    scheme, _, presented = request.headers.get("Authorization", "").partition(" ")
    # Constant-time comparison: the time taken must not reveal how much matched.
    return scheme.lower() == "bearer" and hmac.compare_digest(
        presented.strip().encode(), token.encode()
    )


async def check(request: web.Request) -> web.Response:
    want_msgpack = wants_msgpack(request.headers.get("Accept", ""))
    if not _authorized(request, request.app[PIPELINE_KEY].config.server.token):
        return _error(401, "missing or wrong bearer token", "Authorization", want_msgpack)
    content_type = request.content_type
    if content_type not in MSGPACK_TYPES | JSON_TYPES:
        return _error(
            415, "Content-Type must be application/msgpack or application/json", "body",
            want_msgpack,
        )  # fmt: skip
    limit = request.app[PIPELINE_KEY].config.server.max_body_bytes
    if (request.content_length or 0) > limit:
        return _error(413, f"body larger than {limit} bytes", "body", want_msgpack)
    try:
        body = await request.read()
    except web.HTTPRequestEntityTooLarge:
        return _error(413, f"body larger than {limit} bytes", "body", want_msgpack)
    try:
        check_request = parse_request(decode_body(body, content_type))
    except RequestError as error:
        return _error(400, error.message, error.field, want_msgpack)
    reply = await request.app[PIPELINE_KEY].check(check_request)
    _log_request(check_request, reply)
    payload, reply_type = encode_reply(reply.to_dict(), want_msgpack)
    return web.Response(body=payload, content_type=reply_type)


async def healthz(_request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    ready = await request.app[PIPELINE_KEY].dns.ready()
    return web.Response(
        status=200 if ready else 503,
        text=json.dumps({"status": "ready" if ready else "resolver not answering"}),
        content_type="application/json",
    )


def create_app(config: Config, pipeline: Pipeline | None = None) -> web.Application:
    # client_max_size makes aiohttp itself refuse bigger bodies, even chunked ones.
    app = web.Application(client_max_size=config.server.max_body_bytes)
    app[PIPELINE_KEY] = pipeline or Pipeline(config)
    app.router.add_post("/v1/check", check)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    return app
