"""The ceiling: a bare aiohttp endpoint that decodes the same msgpack request and
returns a fixed reply. Nothing real can be faster on the same loop and core.

    python bench/ceiling.py PORT [asyncio|uvloop] [buffered]

The reference (runs 1-33 compare against it) reads the body with ``await
request.read()``, as a bare aiohttp handler does. ``buffered`` takes a body that came
with the headers from aiohttp's buffer as it is, as scorer/app.py's _read_check_body
does: the same saving in both, so that the warm ratio cannot flatter the service
(docs/performance.md, "How to measure").
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable

import msgpack
from aiohttp import web

REPLY = json.dumps({"symbols": [], "score": 0.0, "elapsed_ms": 0.0}).encode()


def _reply(body: bytes) -> web.Response:
    data = msgpack.unpackb(body, raw=True, strict_map_key=False)
    if not isinstance(data, dict):
        return web.Response(status=400)
    return web.Response(body=REPLY, content_type="application/json")


async def check(request: web.Request) -> web.Response:
    return _reply(await request.read())


async def check_buffered(request: web.Request) -> web.Response:
    if request.content.is_eof():  # it came with the headers: all of it is buffered
        return _reply(request.content.read_nowait())
    return _reply(await request.read())


HANDLERS: dict[str, Callable[[web.Request], Awaitable[web.Response]]] = {
    "read": check,
    "buffered": check_buffered,
}


def app(body: str = "read") -> web.Application:
    application = web.Application()
    application.router.add_post("/v1/check", HANDLERS[body])
    return application


def main() -> None:
    port = int(sys.argv[1])
    loop = sys.argv[2] if len(sys.argv) > 2 else "uvloop"
    body = sys.argv[3] if len(sys.argv) > 3 else "read"
    if loop == "uvloop":
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    web.run_app(app(body), host="127.0.0.1", port=port, print=None, access_log=None)


if __name__ == "__main__":
    main()
