"""The service as issue 7's "straightforward dnspython resolver" would build it.

    python bench/straightforward.py serve [serve's options]

Runs ``rdns-scorer`` with every DNS query sent by ``dns.asyncresolver`` (a task, a
new socket and full ``dns.message`` objects per query) in place of our transport
(scorer/dns/transport.py); the rest of the service, its cache and coalescing
included, is the same. The issue sets its cold target against this build: about
1,000 cold checks/s for it, 5,000 for ours, on the box it was measured on. Run in
the same bench round as ours, the pair gives that ratio on whatever box this is
(bench/run.py's ``cold_straightforward``). A bench reference only: the service
never loads this module.
"""

from __future__ import annotations

import asyncio
import ipaddress
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import dns.asyncresolver  # noqa: E402
import dns.exception  # noqa: E402
import dns.name  # noqa: E402
import dns.nameserver  # noqa: E402
import dns.rdatatype  # noqa: E402
import dns.resolver  # noqa: E402

from scorer.dns import layer  # noqa: E402
from scorer.dns.outcomes import (  # noqa: E402
    Answer,
    FailureKind,
    MxRecord,
    NotFound,
    NotFoundKind,
    TempFail,
    network_failure,
)

Outcome = Answer[Any] | NotFound | TempFail


def _host(name: dns.name.Name) -> str:
    """A name as our codec gives it: lower case, no final dot, "" for the root."""
    return name.to_text(omit_final_dot=True).lower() if name != dns.name.root else ""


def _value(record: Any) -> object:
    if record.rdtype == dns.rdatatype.PTR:
        return _host(record.target)
    if record.rdtype == dns.rdatatype.MX:
        return MxRecord(record.preference, _host(record.exchange))
    if record.rdtype == dns.rdatatype.SOA:  # the root's, which the service asks for
        return _host(record.mname)
    return ipaddress.ip_address(record.address)


def _negative_ttl(response: dns.message.Message | None, default: int) -> int:
    """RFC 2308 section 5, as our codec reads it: the SOA's TTL capped by its MINIMUM."""
    for rrset in response.authority if response is not None else ():
        if rrset.rdtype == dns.rdatatype.SOA:
            return min(rrset.ttl, rrset[0].minimum)
    return default


class DnspythonTransport:
    """scorer.dns.transport.UdpTransport's interface over ``dns.asyncresolver``."""

    def __init__(
        self, nameservers: Sequence[layer.Nameserver], timeout: float, negative_ttl: int
    ) -> None:
        self._resolver = dns.asyncresolver.Resolver(configure=False)
        self._resolver.nameservers = [
            dns.nameserver.Do53Nameserver(str(server.host), server.port) for server in nameservers
        ]
        self._resolver.timeout = self._resolver.lifetime = timeout
        self._resolver.cache = None  # the layer above caches, as it does for ours
        self._negative_ttl = negative_ttl
        self._tasks: set[asyncio.Task[None]] = set()

    def set_timeout(self, timeout: float) -> None:
        self._resolver.timeout = self._resolver.lifetime = timeout

    @property
    def silent(self) -> list[layer.Nameserver]:
        """None known: dnspython's resolver keeps no record of which server answered."""
        return []

    def send(self, name_wire: bytes, rdtype: int, on_done: Callable[[Outcome], None]) -> None:
        name = dns.name.from_wire(name_wire, 0)[0]
        task = asyncio.get_running_loop().create_task(self._resolve(name, rdtype, on_done))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _resolve(
        self, name: dns.name.Name, rdtype: int, on_done: Callable[[Outcome], None]
    ) -> None:
        on_done(await self._outcome(name, rdtype))

    async def _outcome(self, name: dns.name.Name, rdtype: int) -> Outcome:
        try:
            answer = await self._resolver.resolve(
                name, dns.rdatatype.RdataType(rdtype), raise_on_no_answer=False, search=False
            )
        except dns.resolver.NXDOMAIN as error:
            response = error.responses().get(name)
            return NotFound(NotFoundKind.NXDOMAIN, _negative_ttl(response, self._negative_ttl))
        except dns.resolver.LifetimeTimeout:
            return TempFail(FailureKind.TIMEOUT)
        except dns.resolver.NoNameservers:
            return TempFail(FailureKind.SERVFAIL)
        except dns.exception.DNSException as error:
            return network_failure(error)
        if answer.rrset is None:
            ttl = _negative_ttl(answer.response, self._negative_ttl)
            return NotFound(NotFoundKind.NODATA, ttl)
        return Answer(tuple(_value(record) for record in answer.rrset), answer.rrset.ttl)


def main() -> int:
    layer.UdpTransport = DnspythonTransport  # type: ignore[misc, assignment]
    from scorer.launch import main as serve

    return serve()


if __name__ == "__main__":
    sys.exit(main())
