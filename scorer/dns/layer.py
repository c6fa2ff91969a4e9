"""The one DNS layer: typed lookups with a cache, coalescing and a per-request deadline.

Checks never call DNS; the pipeline asks this layer for facts and hands the
outcomes (``Answer``/``NotFound``/``TempFail``) to pure check functions. The
layer knows nothing about scores.
"""

from __future__ import annotations

import asyncio
import ipaddress
import time
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import dns.asyncresolver
import dns.exception
import dns.message
import dns.name
import dns.nameserver
import dns.rcode
import dns.rdatatype
import dns.resolver
import dns.reversename

from scorer.dns.cache import TtlCache
from scorer.dns.outcomes import (
    Answer,
    FailureKind,
    Lookup,
    MxRecord,
    NotFound,
    NotFoundKind,
    TempFail,
)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
T = TypeVar("T")

Outcome = Answer[Any] | NotFound | TempFail
QueryObserver = Callable[[str, str, float], None]  # (rdtype, result, seconds)

_RESULT_NAMES = {
    FailureKind.TIMEOUT: "timeout",
    FailureKind.SERVFAIL: "servfail",
}


def result_name(outcome: Outcome) -> str:
    """answer / nxdomain / nodata / timeout / servfail / other, for metrics and logs."""
    if isinstance(outcome, Answer):
        return "answer"
    if isinstance(outcome, NotFound):
        return str(outcome.kind)
    return _RESULT_NAMES.get(outcome.kind, "other")


@dataclass(frozen=True, slots=True)
class Nameserver:
    host: str
    port: int = 53

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


def parse_nameserver(text: str) -> Nameserver:
    """Parse ``HOST``, ``HOST:PORT``, ``[V6]:PORT`` or a bare IPv6 address."""
    text = text.strip()
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise ValueError(f"bad nameserver {text!r}: expected [IPv6]:PORT")
        port = rest[1:] or "53"
    elif text.count(":") == 1:
        host, port = text.split(":")
    else:
        host, port = text, "53"
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"bad nameserver {text!r}: {host!r} is not an IP address") from None
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"bad nameserver {text!r}: port must be 1-65535")
    return Nameserver(host, int(port))


def _text(name: dns.name.Name) -> str:
    text: str = name.to_text(omit_final_dot=True).lower()
    return "" if text == "." else text


_PARSERS: dict[dns.rdatatype.RdataType, Callable[[Any], object]] = {
    dns.rdatatype.PTR: lambda rr: _text(rr.target),
    dns.rdatatype.A: lambda rr: ipaddress.IPv4Address(rr.address),
    dns.rdatatype.AAAA: lambda rr: ipaddress.IPv6Address(rr.address),
    dns.rdatatype.MX: lambda rr: MxRecord(int(rr.preference), _text(rr.exchange)),
}


def _negative_ttl(response: dns.message.Message | None, fallback: int) -> int:
    """TTL of a negative answer: the SOA's TTL capped by its MINIMUM (RFC 2308 section 5)."""
    if response is not None:
        for rrset in response.authority:
            if rrset.rdtype == dns.rdatatype.SOA:
                return int(min(rrset.ttl, rrset[0].minimum))
    return fallback


def _failure_from(error: dns.resolver.NoNameservers) -> TempFail:
    """Map "every server failed" to SERVFAIL/REFUSED/network, from the per-server errors."""
    errors = error.kwargs.get("errors", [])
    for _server, _tcp, _port, _err, response in errors:
        if isinstance(response, dns.message.Message):
            rcode = response.rcode()
            if rcode == dns.rcode.REFUSED:
                return TempFail(FailureKind.REFUSED, "REFUSED")
            if rcode == dns.rcode.SERVFAIL:
                return TempFail(FailureKind.SERVFAIL, "SERVFAIL")
    detail = "; ".join(str(err) for _s, _t, _p, err, _r in errors)[:200]
    return TempFail(FailureKind.NETWORK, detail or "no nameserver answered")


class DnsLayer:
    """Typed lookups over dnspython's async resolver."""

    def __init__(
        self,
        nameservers: Sequence[Nameserver],
        timeout: float,
        cache: TtlCache[Outcome],
        negative_ttl: int = 300,
        observer: QueryObserver | None = None,
    ) -> None:
        if nameservers:
            resolver = dns.asyncresolver.Resolver(configure=False)
            resolver.nameservers = [
                dns.nameserver.Do53Nameserver(n.host, n.port) for n in nameservers
            ]
        else:
            resolver = dns.asyncresolver.Resolver()  # the system's /etc/resolv.conf
        resolver.timeout = timeout
        resolver.lifetime = timeout
        resolver.cache = None  # we cache ourselves, with bounds and negative entries
        self._resolver = resolver
        self._timeout = timeout
        self.cache = cache
        self._negative_ttl = negative_ttl
        self._inflight: dict[Hashable, asyncio.Task[Outcome]] = {}
        self.observer = observer

    async def ptr(self, ip: IPAddress, deadline: float) -> Lookup[str]:
        return await self.lookup(dns.reversename.from_address(str(ip)), dns.rdatatype.PTR, deadline)

    async def addresses(
        self, name: str, rdtype: dns.rdatatype.RdataType, deadline: float
    ) -> Lookup[IPAddress]:
        return await self.lookup_text(name, rdtype, deadline)

    async def mx(self, name: str, deadline: float) -> Lookup[MxRecord]:
        return await self.lookup_text(name, dns.rdatatype.MX, deadline)

    async def lookup_text(
        self, name: str, rdtype: dns.rdatatype.RdataType, deadline: float
    ) -> Outcome:
        try:
            qname = dns.name.from_text(name)
        except (dns.exception.DNSException, UnicodeError, ValueError) as error:
            return TempFail(FailureKind.MALFORMED, f"bad query name: {error}")
        return await self.lookup(qname, rdtype, deadline)

    async def lookup(
        self, qname: dns.name.Name, rdtype: dns.rdatatype.RdataType, deadline: float
    ) -> Outcome:
        """One cached, coalesced lookup that never raises and never outlives ``deadline``."""
        key = (qname, rdtype)
        cached = self.cache.get(key)
        if cached is not None:
            return cached
        remaining = deadline - asyncio.get_running_loop().time()
        if remaining <= 0:
            return TempFail(FailureKind.DEADLINE, "request deadline passed")
        task = self._inflight.get(key)
        if task is None:
            # Concurrent requests for the same name share one query.
            task = asyncio.ensure_future(self._resolve_and_cache(key, qname, rdtype))
            self._inflight[key] = task
            task.add_done_callback(lambda _t: self._inflight.pop(key, None))
        try:
            # shield: one request's deadline must not cancel a query others wait on.
            return await asyncio.wait_for(asyncio.shield(task), remaining)
        except TimeoutError:
            return TempFail(FailureKind.DEADLINE, "request deadline passed")

    async def _resolve_and_cache(
        self, key: Hashable, qname: dns.name.Name, rdtype: dns.rdatatype.RdataType
    ) -> Outcome:
        outcome = await self.query(qname, rdtype)
        if not isinstance(outcome, TempFail):  # failures are retried on the next message
            self.cache.put(key, outcome, outcome.ttl)
        return outcome

    async def query(self, qname: dns.name.Name, rdtype: dns.rdatatype.RdataType) -> Outcome:
        """Ask the resolver, bypassing the cache; report the result to the observer."""
        started = time.perf_counter()
        outcome = await self._classified_query(qname, rdtype)
        if self.observer is not None:
            self.observer(rdtype.name, result_name(outcome), time.perf_counter() - started)
        return outcome

    async def _classified_query(
        self, qname: dns.name.Name, rdtype: dns.rdatatype.RdataType
    ) -> Outcome:
        try:
            answer = await self._resolver.resolve(
                qname, rdtype, raise_on_no_answer=False, search=False
            )
        except dns.resolver.NXDOMAIN as error:
            response = error.response(qname) if qname in error.qnames() else None
            return NotFound(NotFoundKind.NXDOMAIN, _negative_ttl(response, self._negative_ttl))
        except dns.resolver.NoNameservers as error:
            return _failure_from(error)
        except dns.exception.Timeout:
            return TempFail(FailureKind.TIMEOUT, f"no answer within {self._timeout:g}s")
        except dns.resolver.YXDOMAIN:
            return TempFail(FailureKind.MALFORMED, "YXDOMAIN")
        except (dns.exception.DNSException, OSError, ValueError, UnicodeError) as error:
            return TempFail(FailureKind.MALFORMED, f"{type(error).__name__}: {error}"[:200])
        if answer.rrset is None:
            if any(r.rdtype != dns.rdatatype.CNAME for r in answer.response.answer):
                # Records, but not for what we asked: a broken or spoofed answer is a
                # failure, never a "does not exist" that would be scored.
                return TempFail(FailureKind.MALFORMED, "answer does not match the question")
            ttl = _negative_ttl(answer.response, self._negative_ttl)
            return NotFound(NotFoundKind.NODATA, ttl)
        parse = _PARSERS[rdtype]
        try:
            records = tuple(parse(rr) for rr in answer.rrset)
        except (ValueError, AttributeError) as error:
            return TempFail(FailureKind.MALFORMED, f"unparsable {rdtype.name}: {error}"[:200])
        return Answer(records, int(answer.rrset.ttl))

    async def ready(self) -> bool:
        """Does the resolver answer at all? Any definite outcome counts, failures don't."""
        probe = dns.reversename.from_address("127.0.0.1")
        outcome = await self.query(probe, dns.rdatatype.PTR)
        return not isinstance(outcome, TempFail)
