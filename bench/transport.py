"""Raw DNS query rate of the candidate transports, one core, against the bench unbound.

    python bench/transport.py [--queries N] [--concurrency C]

Each transport resolves the same N distinct PTR questions (no cache) with C in
flight, pinned to one core while unbound runs on the other. Prints JSON:
queries/s per transport and event loop. This is the measurement behind the
transport choice in docs/performance.md; `make bench` runs it too.

``send_cost``: the time one ``send()`` of a query datagram takes, sent alone to a
resolver that had gone idle, and sent with others back to back: why the transport
sends the queries of one turn of the loop together (scorer/dns/transport.py).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import json
import os
import socket
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import dns.asyncresolver  # noqa: E402
import dns.nameserver  # noqa: E402
import dns.rdatatype  # noqa: E402
import dns.resolver  # noqa: E402
import dns.reversename  # noqa: E402

from bench import zones  # noqa: E402
from scorer.dns.cache import TtlCache  # noqa: E402
from scorer.dns.layer import DnsLayer, Outcome, parse_nameserver  # noqa: E402
from scorer.dns.outcomes import Answer, NotFound  # noqa: E402
from scorer.dns.wire import encode_name, make_query, question  # noqa: E402

Query = Callable[[str], Awaitable[bool]]


def _reverse(i: int) -> str:
    return dns.reversename.from_address(zones.client_ip(i)).to_text()


def _ours(nameserver: str) -> Query:
    cache: TtlCache[Outcome] = TtlCache(0, 0, 0)
    layer = DnsLayer([parse_nameserver(nameserver)], 2.0, cache)

    async def query(name: str) -> bool:
        # The path a check takes on a cache miss (the cache is off: every name is new).
        deadline = asyncio.get_running_loop().time() + 10.0
        outcome = await layer.lookup(name, dns.rdatatype.PTR, deadline)
        return isinstance(outcome, Answer | NotFound)

    return query


def _dnspython(nameserver: str) -> Query:
    ns = parse_nameserver(nameserver)
    resolver = dns.asyncresolver.Resolver(configure=False)
    resolver.nameservers = [dns.nameserver.Do53Nameserver(ns.host, ns.port)]
    resolver.timeout = resolver.lifetime = 2.0
    resolver.cache = None

    async def query(name: str) -> bool:
        with contextlib.suppress(dns.resolver.NXDOMAIN):
            await resolver.resolve(name, "PTR", raise_on_no_answer=False, search=False)
        return True

    return query


def _aiodns(nameserver: str) -> Query | None:
    try:
        import aiodns
    except ImportError:
        return None
    ns = parse_nameserver(nameserver)
    resolver = aiodns.DNSResolver(nameservers=[f"{ns.host}:{ns.port}"], timeout=2.0, tries=1)

    async def query(name: str) -> bool:
        try:
            await resolver.query_dns(name, "PTR")
        except aiodns.error.DNSError as error:
            return error.args[0] in (1, 4)  # ENODATA, ENOTFOUND
        return True

    return query


async def _run(make: Callable[[str], Query | None], nameserver: str, n: int, c: int) -> Any:
    query = make(nameserver)
    if query is None:
        return None
    names = [_reverse(1_000 + i) for i in range(n)]
    await asyncio.gather(*(query(_reverse(i)) for i in range(100)))  # sockets, imports
    queue = iter(names)
    ok = 0

    async def worker() -> None:
        nonlocal ok
        for name in queue:
            answered = await query(name)
            ok += answered

    started, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(worker() for _ in range(c)))
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    return {
        "queries_per_s": round(n / elapsed),
        # CPU per query is what decides the rate on a busy core; it is also less
        # disturbed by other processes than the wall-clock rate.
        "cpu_us_per_query": round(cpu / n * 1e6, 1),
        "ok": ok,
        "queries": n,
    }


def _send_cost(nameserver: str, rounds: int = 300, batch: int = 20) -> dict[str, float]:
    """Median µs per ``send()`` of a PTR query: alone, after a pause that lets the
    resolver go idle (each send wakes it), and ``batch`` back to back (it is awake)."""
    host, _, port = nameserver.rpartition(":")
    wire = make_query(1, question(encode_name(_reverse(0)), int(dns.rdatatype.PTR)))
    figures: dict[str, float] = {}
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.connect((host, int(port)))
        sock.setblocking(False)
        for label, per_round in (("alone_us", 1), ("back_to_back_us", batch)):
            seconds: list[float] = []
            for _ in range(rounds):
                for _ in range(per_round):
                    started = time.perf_counter()
                    sock.send(wire)
                    seconds.append(time.perf_counter() - started)
                time.sleep(0.002)  # the replies come; the resolver goes idle again
                with contextlib.suppress(BlockingIOError):
                    while sock.recv(4096):
                        pass
            figures[label] = round(statistics.median(seconds) * 1e6, 1)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--queries", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=200)
    parser.add_argument("--nameserver", help="use this resolver instead of starting unbound")
    args = parser.parse_args()
    unbound = None
    if args.nameserver is None:
        unbound = zones.start()
        nameserver = unbound.nameserver
        os.sched_setaffinity(unbound._process.pid, {0})  # type: ignore[union-attr]
    else:
        nameserver = args.nameserver
    os.sched_setaffinity(0, {1 % os.cpu_count()})  # type: ignore[operator]
    results: dict[str, Any] = {}
    try:
        results["send_cost"] = _send_cost(nameserver)
        loops: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {
            "asyncio": asyncio.new_event_loop
        }
        try:
            import uvloop

            loops["uvloop"] = uvloop.new_event_loop
        except ImportError:
            pass
        for loop_name, new_loop in loops.items():
            for name, make in (("ours", _ours), ("dnspython", _dnspython), ("aiodns", _aiodns)):
                n = args.queries // (4 if name == "dnspython" else 1)
                with asyncio.Runner(loop_factory=new_loop) as runner:
                    result = runner.run(_run(make, nameserver, n, args.concurrency))
                if result is not None:
                    results[f"{name}/{loop_name}"] = result
    finally:
        if unbound is not None:
            unbound.stop()
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    ipaddress.ip_address("127.0.0.1")
    main()
