"""Instructions per check, counted by callgrind: figures that do not move with the neighbours.

    python bench/instructions.py [--nameserver HOST:PORT]

Requests/s and CPU µs on this shared 2-core box drift by tens of percent from one
run to the next. ``valgrind --tool=callgrind`` counts the instructions the process
executes instead: the same code and input give the same count whatever else the
machine is doing, so a change to the hot path shows up as a difference of a few
percent that timing could never resolve. Each figure is the difference between
two runs with different numbers of checks, divided by the difference, which
cancels start-up (imports, the Public Suffix List, config).

Scenarios, in process through ``Service.answer`` (a msgpack body in, the reply body
out: parsing, the pipeline, metrics, encoding; everything /v1/check does but HTTP),
on uvloop as served:

- ``cold``: every check a new client and a new sender domain, as in bench/post.lua;
- ``cold_dns_cached``: the same new requests, with every DNS answer they need
  already cached (an earlier pass) but nothing else remembered (no reply, no
  validation or parsing memo): what a cold check costs besides its DNS misses;
- ``warm``: reply-cache hits over 64 senders;
- ``dns_lookup``: one lookup that misses the cache (the cache is off), start to
  finish, including the asyncio task each lookup of the batch runs in (~30k).

User space only: the kernel's share of a syscall (a datagram sent to unbound,
the HTTP socket) is not counted, and neither is aiohttp, which the ceiling in
bench/run.py measures. Prints one JSON object; bench/run.py includes it.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import zones  # noqa: E402

SCENARIOS = {
    "cold": (100, 400),
    "cold_dns_cached": (100, 400),
    "warm": (2_000, 12_000),
    "dns_lookup": (200, 1_000),
}
BATCH = 64  # concurrent checks, like the connections wrk keeps busy
HOT = 64
# The DNS timeout and request deadline the service gets here (seconds). Under callgrind
# the process runs ~50-100x slower than served: with the defaults (0.5 and 0.8) a batch
# of 64 cold checks outlived both, so a third of them ended in a deadline TEMPFAIL and
# queries were sent again, and the count followed how slow the box was that minute
# (1.33M against 1.45M per cold check for the same tree). With these, never reached
# under callgrind, every check takes the path it takes served: a reply before any
# retransmission, and no lookup needing a timer of its own (deadline - timeout is far
# above the time a check takes under callgrind). Outside the config's bounds on purpose.
TIMEOUT = 60.0
REQUEST_DEADLINE = 600.0


async def _run(scenario: str, count: int, nameserver: str) -> None:
    import dns.rdatatype
    import dns.reversename

    from scorer.app import Service
    from scorer.config import config_from_mapping
    from scorer.pipeline import Pipeline

    dns_settings: dict[str, Any] = {"nameservers": [nameserver]}
    if scenario == "dns_lookup":
        dns_settings["cache_max_entries"] = 0  # every lookup a miss
    config = config_from_mapping({"dns": dns_settings})
    dns_config = dataclasses.replace(config.dns, timeout=TIMEOUT, request_deadline=REQUEST_DEADLINE)
    service = Service(dataclasses.replace(config, dns=dns_config))
    pipeline = service.pipeline

    async def answer(body: bytes) -> tuple[bytes, str]:
        return await service.answer(pipeline, body, "application/msgpack", False)

    await answer(zones.request_body(0, "warm-up.example"))  # sockets, lazy imports
    # Both runs build the inputs of the larger one and use the first ``count``, so
    # building them (dnspython's reverse names, msgpack bodies) cancels out of the
    # difference: it once counted as 152k of a "341k" DNS lookup.
    built = SCENARIOS[scenario][1]
    if scenario == "dns_lookup":
        loop = asyncio.get_running_loop()
        names = [dns.reversename.from_address(zones.client_ip(i)).to_text() for i in range(built)]
        for start in range(0, count, BATCH):
            deadline = loop.time() + REQUEST_DEADLINE
            await asyncio.gather(
                *(
                    pipeline.dns.lookup(name, dns.rdatatype.PTR, deadline)
                    for name in names[start : start + BATCH]
                )
            )
        return
    if scenario.startswith("cold"):
        bodies = [zones.request_body(1_000 + i, f"d{i}.cold-senders.net") for i in range(built)]
        if scenario == "cold_dns_cached":
            for start in range(0, built, BATCH):
                await asyncio.gather(*(answer(body) for body in bodies[start : start + BATCH]))
            pipeline = Pipeline(service.config, pipeline.dns)  # its DNS cache, no replies
            _forget_memos()
    else:
        hot = [zones.request_body(i, f"s{i}.bench-mail.org") for i in range(HOT)]
        await asyncio.gather(*(answer(body) for body in hot))
        bodies = [hot[i % HOT] for i in range(built)]
    for start in range(0, count, BATCH):
        await asyncio.gather(*(answer(body) for body in bodies[start : start + BATCH]))


def _forget_memos() -> None:
    """Empty the memos of validation and parsing, as if no request had been seen."""
    from scorer import names, protocol
    from scorer.checks.helo import parse_helo
    from scorer.checks.mailfrom import parse_sender
    from scorer.generic.classifier import classify
    from scorer.generic.hostparts import _public_suffix

    protocol._parsed.clear()
    memos = (
        protocol.parse_ip,
        names.is_public_host,
        parse_helo,
        parse_sender,
        classify,
        _public_suffix,
    )
    for memoised in memos:
        memoised.cache_clear()


def _instructions(scenario: str, count: int, nameserver: str) -> int:
    command = [
        "valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null",
        sys.executable, __file__, "--child", scenario, str(count), "--nameserver", nameserver,
    ]  # fmt: skip
    # A fixed hash seed: string hashing otherwise varies the count by a few percent.
    environment = {**os.environ, "PYTHONHASHSEED": "0"}
    result = subprocess.run(command, capture_output=True, text=True, check=True, env=environment)
    found = re.search(r"Collected : (\d+)", result.stderr)
    if found is None:
        raise RuntimeError(f"callgrind printed no total:\n{result.stderr[-2000:]}")
    return int(found.group(1))


def measure(nameserver: str) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    for scenario, (small, large) in SCENARIOS.items():
        difference = _instructions(scenario, large, nameserver) - _instructions(
            scenario, small, nameserver
        )
        figures[f"{scenario}_instructions_per_call"] = round(difference / (large - small))
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nameserver", help="the bench unbound (started here when absent)")
    parser.add_argument("--child", nargs=2, metavar=("SCENARIO", "COUNT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        import uvloop

        uvloop.run(_run(args.child[0], int(args.child[1]), args.nameserver))
        return
    if args.nameserver:
        print(json.dumps(measure(args.nameserver), indent=2))
        return
    unbound = zones.start()
    try:
        print(json.dumps(measure(unbound.nameserver), indent=2))
    finally:
        unbound.stop()


if __name__ == "__main__":
    main()
