"""Small helpers shared by the test modules."""

from __future__ import annotations

import ipaddress
import re
import time
from collections.abc import Callable, Mapping
from typing import TypeVar

import dns.rdatatype

from scorer.allowlist import Allowlist
from scorer.dns.cache import TtlCache, question_key
from scorer.dns.layer import DnsLayer, Nameserver, Outcome
from scorer.dns.outcomes import Answer
from scorer.dns.wire import relative_name
from scorer.lookups import Vouched
from scorer.names import IPAddress
from scorer.pipeline import Pipeline
from scorer.protocol import SymbolResult, parse_request
from tests.support.fakedns import dead_port

T = TypeVar("T")

# gather_facts's `vouched` for a service with no allowlist, as the pipeline passes it
# (Allowlist.applies_if_confirmed of an empty one): no PTR name goes before the cut.
NO_ALLOWLIST: Vouched = Allowlist().applies_if_confirmed

# One escape of scorer.text.escape: \xNN, \uNNNN or \UNNNNNNNN.
COMPLETE_ESCAPE = re.compile(r"\\(x[0-9a-f]{2}|u[0-9a-f]{4}|U[0-9a-f]{8})")


def only_complete_escapes(shown: str) -> bool:
    """Whether every backslash of ``shown`` starts a whole escape (none cut, none raw)."""
    return "\\" not in COMPLETE_ESCAPE.sub("", shown)


async def symbols_for(pipeline: Pipeline, ip: str, **fields: str) -> dict[str, SymbolResult]:
    """Run the whole pipeline for one client and index the reply's symbols by name."""
    reply = await pipeline.check(parse_request({"ip": ip, **fields}).request)
    names = [s.name for s in reply.symbols]
    assert len(names) == len(set(names)), f"a symbol appears twice: {names}"
    return {s.name: s for s in reply.symbols}


def rotated(addresses: str) -> tuple[Answer[IPAddress], Answer[IPAddress]]:
    """One answer of ``addresses`` (space-separated) in two orders, as a resolver rotating
    it (round robin) gives it on two messages."""
    records = tuple(map(ipaddress.ip_address, addresses.split()))
    return Answer(records, 300), Answer(records[::-1], 300)


def eventually(probe: Callable[[], T], ready: Callable[[T], object], timeout: float = 10.0) -> T:
    """``probe()`` once ``ready`` says (truthy) its value is what the test waits for (a line in a
    log, a counter the server moves after it answered), polled: a fixed sleep before
    one look fails on a loaded machine. On timeout, the last value, for the assertion
    that follows to show."""
    deadline = time.monotonic() + timeout
    value = probe()
    while not ready(value) and time.monotonic() < deadline:
        time.sleep(0.05)
        value = probe()
    return value


class KnownAnswers(DnsLayer):
    """A DNS layer that knows the outcomes it is given (as cached for an hour) and
    records each lookup asked of it, ``(name, type)``, and its deadline, cache hits
    included. A question it was not given goes to a loopback port where nothing
    listens: a NETWORK failure, not a hang. For outcomes unbound cannot serve (a
    repeated PTR name) and for which lookups a request makes."""

    def __init__(self, known: Mapping[tuple[str, dns.rdatatype.RdataType], Outcome]) -> None:
        cache: TtlCache[Outcome] = TtlCache(1000, 0.0, 3600.0)
        super().__init__([Nameserver("127.0.0.1", dead_port())], 0.5, cache)
        self.asked: list[tuple[str, str]] = []
        self.deadlines: list[float] = []  # the deadline each lookup was given
        for (name, rdtype), outcome in known.items():
            cache.put(question_key(relative_name(name.lower()), rdtype), outcome, 3600)

    async def lookup(self, name: str, rdtype: dns.rdatatype.RdataType, deadline: float) -> Outcome:
        self.asked.append((name, dns.rdatatype.to_text(rdtype)))
        self.deadlines.append(deadline)
        return await super().lookup(name, rdtype, deadline)
