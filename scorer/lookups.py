"""The lookup stage: ask the DNS layer for every fact the checks need, concurrently.

The PTR chain, the HELO name and the MAIL FROM domain are resolved side by side
under one request deadline. Fan-out is bounded (PTR names, MX hosts) so a
hostile zone cannot make one message cost unbounded work.
"""

from __future__ import annotations

from collections.abc import Callable

import dns.rdatatype

from scorer.checks.addresses import AddressFacts
from scorer.checks.helo import HeloFacts, HeloKind, parse_helo, resolves_to_a_host
from scorer.checks.mailfrom import (
    MailFromFacts,
    SenderKind,
    has_global_address,
    is_null_mx,
    mail_hosts,
    parse_sender,
)
from scorer.checks.ptr import PtrFacts, names_a_host, ptr_names_a_host
from scorer.dns.layer import DnsLayer
from scorer.dns.outcomes import Answer, FailureKind, Lookup, NotFound, NotFoundKind, TempFail
from scorer.dns.wire import relative_name
from scorer.eager import eager_gather
from scorer.names import IPAddress, to_ascii
from scorer.protocol import CheckRequest
from scorer.records import record


@record
class Limits:
    max_ptr_names: int
    max_mx_hosts: int


@record
class Facts:
    ptr: PtrFacts
    helo: HeloFacts | None
    mail_from: MailFromFacts | None


def _forward_type(ip: IPAddress) -> dns.rdatatype.RdataType:
    return dns.rdatatype.A if ip.version == 4 else dns.rdatatype.AAAA


# Whether an allowlist entry would apply were a PTR name (first) forward-confirmed, the
# HELO read as the HELO checks read it (second; "" for none): the pipeline's
# (Allowlist.applies_if_confirmed), so this stage orders the names without knowing
# any entry.
Vouched = Callable[[str, str], bool]


async def _ptr_facts(
    dns_layer: DnsLayer, request: CheckRequest, limits: Limits, deadline: float, vouched: Vouched
) -> PtrFacts:
    ip = request.ip
    ptr = await dns_layer.ptr(ip, deadline)
    if not isinstance(ptr, Answer):
        return PtrFacts(ip, ptr, mta_hostname=request.hostname)
    # A zone may repeat a name: checked once. The root ("PTR ."), an address ("PTR
    # 192.0.2.7.") and loopback ("PTR localhost.") name no host: not resolved, nor
    # given a place of max_ptr_names.
    # Sorted before the max_ptr_names cut: an answer's order is the resolver's whim (round
    # robin), and the names checked, so the verdict, must not change with it.
    names = sorted({name for name in ptr.records if ptr_names_a_host(name)})
    if len(names) > limits.max_ptr_names:  # only then: nothing to choose below the cut
        names = _before_the_cut(names, request, vouched)
    checked = names[: limits.max_ptr_names]
    rdtype = _forward_type(ip)
    outcomes = await eager_gather(*(dns_layer.addresses(n, rdtype, deadline) for n in checked))
    forward = dict(zip(checked, outcomes, strict=True))
    return PtrFacts(ip, ptr, forward, len(names) - len(checked), request.hostname)


def _before_the_cut(names: list[str], request: CheckRequest, vouched: Vouched) -> list[str]:
    """``names`` (sorted) in the order the max_ptr_names cut takes them: the names whose
    confirmation decides something go first, so none falls beyond the cut for how it
    sorts. The name the MTA resolved (written as the codec writes names): we resolve it
    ourselves all the same. Then the names an allowlist entry would apply for
    (``vouched``): a ``ptr`` entry, or a ``helo`` entry that is the HELO, needs the name
    forward-confirmed, and the operator wrote it for this very relay (a shared host with
    many PTR names). Then the HELO's name, the one the HELO checks' FCrDNS evidence is
    about. Then the rest. Each group in sorted order (a stable sort of sorted names), so
    the verdict still does not follow the answer's order."""
    mta_name = _as_ptr_name(request.hostname) if request.hostname else None
    # As the HELO checks and the allowlist's helo entries read it; "" (no name) never is
    # a PTR name.
    helo_name = parse_helo(request.helo).ascii if request.helo else ""

    def place(name: str) -> int:
        if name == mta_name:
            return 0
        if vouched(name, helo_name):
            return 1
        return 2 if name == helo_name else 3

    return sorted(names, key=place)


def _as_ptr_name(mta_hostname: str) -> str | None:
    """The MTA's name for the client as the codec writes a PTR name: lower case, no final
    dot, and in A-labels (RFC 5890 section 2.3.2.1: DNS holds those) when the MTA wrote
    U-labels (``MX.Bücher.de``), read as a HELO is (names.to_ascii)."""
    if mta_hostname.isascii():  # as it stands: an escaped final dot ("odd\\.") stays
        return relative_name(mta_hostname).lower()
    return to_ascii(mta_hostname)


def _other_family(rdtype: dns.rdatatype.RdataType) -> dns.rdatatype.RdataType:
    return dns.rdatatype.AAAA if rdtype == dns.rdatatype.A else dns.rdatatype.A


# Failures after which a second question about the same name would only wait again.
_NO_TIME_LEFT = frozenset({FailureKind.TIMEOUT, FailureKind.DEADLINE})


async def _address_facts(
    dns_layer: DnsLayer,
    name: str,
    deadline: float,
    enough: Callable[[Answer[IPAddress]], bool],
    first: dns.rdatatype.RdataType = dns.rdatatype.A,
) -> AddressFacts:
    """A/AAAA of ``name``, asking the second family only when the first is not ``enough``.

    Every check needs just one usable address (a HELO that resolves, an MX host
    with a public address), so the common case costs one query instead of two;
    the rare name without one pays a second round trip. Not after an NXDOMAIN to an A
    query: the name has no records of any type (RFC 8020 section 2), and a failure of
    the second query would only turn that verdict into a TEMPFAIL. An NXDOMAIN to AAAA
    is checked with A all the same: answering NXDOMAIN to AAAA for a name that has an
    A record is a known misbehaviour of some authoritative servers (RFC 4074 section
    4.2), and it must not make a host's name count as one that does not exist. (The
    DNS layer reports an NXDOMAIN it does not trust as a failure, never as one.)
    """
    outcome = await dns_layer.addresses(name, first, deadline)
    other: Lookup[IPAddress] | None = None
    absent = (
        first == dns.rdatatype.A
        and isinstance(outcome, NotFound)
        and outcome.kind is NotFoundKind.NXDOMAIN
    )
    # Nor after a timeout: the name's servers, which did not answer, would be asked again,
    # and the check would wait out its request deadline for a second failure.
    timed_out = isinstance(outcome, TempFail) and outcome.kind in _NO_TIME_LEFT
    if not (absent or timed_out) and not (isinstance(outcome, Answer) and enough(outcome)):
        other = await dns_layer.addresses(name, _other_family(first), deadline)
    if first == dns.rdatatype.A:
        return AddressFacts(outcome, other)
    return AddressFacts(other, outcome)


async def _helo_facts(dns_layer: DnsLayer, helo: str, ip: IPAddress, deadline: float) -> HeloFacts:
    name = parse_helo(helo)
    if name.kind is not HeloKind.NAME:
        return HeloFacts(name)
    # The client's own family first: that is the answer the generic check needs too.
    # The other only when that one has no public address, nor the client's own
    # (RL_HELO_NO_ADDRESS judges the name by all its addresses then).
    addresses = await _address_facts(
        dns_layer,
        name.ascii,
        deadline,
        first=_forward_type(ip),
        enough=lambda answer: resolves_to_a_host(answer.records, ip),
    )
    return HeloFacts(name, addresses.a, addresses.aaaa)


async def _mail_from_facts(
    dns_layer: DnsLayer, mail_from: str, limits: Limits, deadline: float
) -> MailFromFacts:
    sender = parse_sender(mail_from)
    if sender.kind is not SenderKind.DOMAIN:
        return MailFromFacts(sender)
    mx = await dns_layer.mx(sender.domain, deadline)
    if isinstance(mx, NotFound) and mx.kind is NotFoundKind.NODATA:
        # RFC 5321 section 5.1: no MX means the domain itself is the mail host.
        implicit = await _address_facts(
            dns_layer, sender.domain, deadline, enough=has_global_address
        )
        return MailFromFacts(sender, mx, implicit_mx=implicit)
    if not isinstance(mx, Answer) or is_null_mx(mx):
        return MailFromFacts(sender, mx)
    hosts = mail_hosts(mx)
    # A target spelling an address names no host ("IP literal as MX", whatever a lookup of
    # it says): not resolved, nor given a place of max_mx_hosts; judged with nothing asked.
    named = [host for host in hosts if names_a_host(host)]
    checked, unchecked = named[: limits.max_mx_hosts], set(named[limits.max_mx_hosts :])
    resolved = await eager_gather(
        *(_address_facts(dns_layer, h, deadline, enough=has_global_address) for h in checked)
    )
    looked_up = dict(zip(checked, resolved, strict=True))
    nothing_asked = AddressFacts(None, None)
    targets = {host: looked_up.get(host, nothing_asked) for host in hosts if host not in unchecked}
    return MailFromFacts(sender, mx, targets=targets, unchecked_hosts=len(unchecked))


async def _none() -> None:
    return None


async def gather_facts(
    request: CheckRequest,
    dns_layer: DnsLayer,
    limits: Limits,
    deadline: float,
    vouched: Vouched,
) -> Facts:
    """The facts every check needs. ``vouched``: the PTR names to resolve first when
    there are more than max_ptr_names (_before_the_cut)."""
    ptr, helo, mail_from = await eager_gather(
        _ptr_facts(dns_layer, request, limits, deadline, vouched),
        _helo_facts(dns_layer, request.helo, request.ip, deadline) if request.helo else _none(),
        _mail_from_facts(dns_layer, request.mail_from, limits, deadline)
        if request.mail_from is not None
        else _none(),
    )
    return Facts(ptr, helo, mail_from)
