"""In-process costs of the per-request steps, and memory per cache entry (tracemalloc).

Used by bench/run.py; run alone with ``python bench/hotpath.py NAMESERVER``.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import dns.rdatatype  # noqa: E402
import dns.reversename  # noqa: E402

from bench import zones  # noqa: E402
from scorer.config import config_from_mapping  # noqa: E402
from scorer.metrics import Metrics  # noqa: E402
from scorer.pipeline import Pipeline  # noqa: E402
from scorer.protocol import (  # noqa: E402
    decode_body,
    parse_labels,
    parse_request,
)
from scorer.requestlog import configure_logging, log_check  # noqa: E402


def _body(i: int) -> bytes:
    return zones.request_body(i, f"s{i % zones.DOMAINS}.bench-mail.org")


def _per_call_us(fn: Callable[[], object], number: int = 20_000, rounds: int = 5) -> float:
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        for _ in range(number):
            fn()
        best = min(best, time.perf_counter() - started)
    return round(best / number * 1e6, 2)


async def _async_per_call_us(fn: Callable[[], Any], number: int = 20_000, rounds: int = 5) -> float:
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        for _ in range(number):
            await fn()
        best = min(best, time.perf_counter() - started)
    return round(best / number * 1e6, 2)


async def _costs(nameserver: str) -> dict[str, float]:
    body = _body(5)
    config = config_from_mapping({"dns": {"nameservers": [nameserver]}})
    no_reply_cache = config_from_mapping(
        {"dns": {"nameservers": [nameserver], "reply_cache_max_entries": 0}}
    )
    pipeline, uncached = Pipeline(config), Pipeline(no_reply_cache)
    data = decode_body(body, "application/msgpack")
    request, key = parse_request(data)
    labels = parse_labels(data)
    reply = await pipeline.check(request)
    await uncached.check(request)
    metrics = Metrics()
    costs = {
        # Validation is memoised: this is the cost for fields seen before.
        "decode_and_validate": _per_call_us(
            lambda: parse_request(decode_body(body, "application/msgpack"))
        ),
        "check_reply_cache_hit": _per_call_us(lambda: pipeline.cached(key)),
        "check_dns_cache_hit_no_reply_cache": await _async_per_call_us(
            lambda: uncached.check(request), number=5_000
        ),
        "metrics_observe_check": _per_call_us(lambda: metrics.observe_check(request, reply, 0.001)),
        # As served: a cached reply keeps its rendered JSON up to elapsed_ms.
        "encode_reply_json": _per_call_us(lambda: reply.encoded(0.004, False)),
    }
    # Option building for a new reply (a reply-cache hit reuses it all): two symbols
    # with three options each (a generic PTR and HELO) weighted, totalled and rendered.
    # The options' text itself is written by the checks, in the figure above.
    flagged = parse_request(decode_body(_body(1), "application/msgpack")).request
    _facts, hits = await uncached.evaluate(flagged)
    costs["score_and_render_new_reply"] = _per_call_us(lambda: uncached.reply_for(hits).rendered())
    configure_logging("text", requests=False)
    costs["log_check_off"] = _per_call_us(lambda: log_check(request, labels, reply, 0.004))
    configure_logging("text", requests=True)
    with open("/dev/null", "w") as sink:
        logging.getLogger().handlers[0] = logging.StreamHandler(sink)
        logging.getLogger().handlers[0].setFormatter(logging.Formatter("%(message)s"))
        from scorer import requestlog

        logging.getLogger().handlers[0].setFormatter(requestlog._TextFormatter())
        costs["log_check_on"] = _per_call_us(
            lambda: log_check(request, labels, reply, 0.004), number=5_000
        )
    configure_logging("text", requests=False)
    return costs


def _traced() -> int:
    gc.collect()
    return tracemalloc.get_traced_memory()[0]


async def _bytes_per_answer(
    pipeline: Pipeline, questions: list[tuple[str, dns.rdatatype.RdataType]]
) -> int:
    """Bytes the DNS cache holds per outcome of ``questions`` (built by the caller,
    before the baseline is taken: the inputs must not count as cache)."""
    pipeline.dns.cache.clear()
    empty = _traced()
    deadline = asyncio.get_running_loop().time() + 60
    for start in range(0, len(questions), 100):
        await asyncio.gather(
            *(
                pipeline.dns.lookup(name, rdtype, deadline)
                for name, rdtype in questions[start : start + 100]
            )
        )
    entries = len(pipeline.dns.cache)
    assert entries == len(questions), (entries, len(questions))
    return round((_traced() - empty) / entries)


async def _memory(nameserver: str, n: int = 3_000) -> dict[str, Any]:
    config = config_from_mapping({"dns": {"nameservers": [nameserver]}})
    bodies = [decode_body(_body(i), "application/msgpack") for i in range(n)]
    requests = [parse_request(data).request for data in bodies]
    # One outcome of each kind the checks cache, the names built here, before any
    # baseline below.
    by_kind: dict[str, list[tuple[str, dns.rdatatype.RdataType]]] = {
        "PTR": [
            (dns.reversename.from_address(zones.client_ip(i)).to_text(), dns.rdatatype.PTR)
            for i in range(1, n)
            if zones.ptr_name(i)
        ],
        "A": [(name, dns.rdatatype.A) for i in range(n) if (name := zones.ptr_name(i))],
        "MX": [(f"s{j}.bench-mail.org", dns.rdatatype.MX) for j in range(n)],
        "NXDOMAIN": [(f"nx{j}.bench-mail.org", dns.rdatatype.A) for j in range(n)],
    }
    tracemalloc.start()
    pipeline = Pipeline(config)
    await pipeline.check(requests[0])  # sockets, lazy imports
    pipeline.dns.cache.clear()
    pipeline.replies.clear()
    before = _traced()
    for start in range(0, n, 100):
        await asyncio.gather(*(pipeline.check(r) for r in requests[start : start + 100]))
    with_both = _traced()
    replies = len(pipeline.replies)
    pipeline.replies.clear()
    dns_only = _traced()
    dns_entries = len(pipeline.dns.cache)
    per_answer = {
        kind: await _bytes_per_answer(pipeline, questions) for kind, questions in by_kind.items()
    }
    tracemalloc.stop()
    return {
        "dns_cache_bytes_per_answer": per_answer,
        # The target's figure: the largest kind of cached answer.
        "dns_cache_bytes_per_positive_answer": max(per_answer[k] for k in ("PTR", "A", "MX")),
        # Not the cache alone: what a check keeps besides its reply, per DNS entry it
        # caches (the parsing memos and metric series of values never seen before too).
        "check_bytes_kept_per_dns_entry": round((dns_only - before) / dns_entries),
        "dns_cache_entries": dns_entries,
        "reply_cache_entries": replies,
        "reply_cache_bytes_per_entry": round((with_both - dns_only) / max(replies, 1)),
    }


def measure(nameserver: str) -> dict[str, Any]:
    try:
        import uvloop

        new_loop: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    except ImportError:
        new_loop = asyncio.new_event_loop
    with asyncio.Runner(loop_factory=new_loop) as runner:
        costs = runner.run(_costs(nameserver))
        memory = runner.run(_memory(nameserver))
    return {"per_call_us": costs, "memory": memory}


if __name__ == "__main__":
    print(json.dumps(measure(sys.argv[1]), indent=2))
