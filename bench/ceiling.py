"""The ceiling: a bare aiohttp endpoint that decodes the same msgpack request and
returns a fixed reply. Nothing real can be faster on the same loop and core.

    python bench/ceiling.py PORT [asyncio|uvloop]
"""

from __future__ import annotations

import asyncio
import json
import sys

import msgpack
from aiohttp import web

REPLY = json.dumps({"symbols": [], "score": 0.0, "elapsed_ms": 0.0}).encode()


async def check(request: web.Request) -> web.Response:
    data = msgpack.unpackb(await request.read(), raw=True, strict_map_key=False)
    if not isinstance(data, dict):
        return web.Response(status=400)
    return web.Response(body=REPLY, content_type="application/json")


def main() -> None:
    port = int(sys.argv[1])
    loop = sys.argv[2] if len(sys.argv) > 2 else "uvloop"
    if loop == "uvloop":
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    app = web.Application()
    app.router.add_post("/v1/check", check)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


if __name__ == "__main__":
    main()
