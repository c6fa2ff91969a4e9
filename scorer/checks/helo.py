"""HELO/EHLO checks (RFC 5321 sections 2.3.5, 4.1.1.1, 4.1.3).

``parse_helo`` classifies the greeting's syntax (pure, no DNS) so the lookup
stage knows whether there is a name to resolve; ``check_helo`` turns the
syntax plus the resolved addresses into hits.
"""

from __future__ import annotations

import enum
import ipaddress
from collections.abc import Collection
from typing import NamedTuple

from scorer.checks.addresses import AddressFacts, has_public_host, only_non_public
from scorer.checks.generic import generic_hit
from scorer.checks.hit import Hit
from scorer.checks.ptr import NOTHING_COUNTED, PtrCounted
from scorer.dns.outcomes import (
    Answer,
    Lookup,
    NotFound,
    TempFail,
    describe,
)
from scorer.memo import memoise_short_arg
from scorer.names import (
    IPAddress,
    address_literal,
    hostname_problem,
    ipv4_literal,
    is_internal,
    is_localhost_name,
    literal_address,
    non_public_suffix,
    shown_name,
    to_ascii,
    unmapped,
    unscoped,
)
from scorer.records import record
from scorer.text import has_unsafe, option, option_naming, unsafe_reason


class HeloKind(enum.StrEnum):
    LITERAL = "literal"  # [192.0.2.1] or [IPv6:2001:db8::1] (RFC 5321 section 4.1.3)
    BARE_IP = "bare-ip"
    LOCALHOST = "localhost"
    NOT_FQDN = "not-fqdn"
    INVALID = "invalid"
    NAME = "name"  # a syntactically valid FQDN under a public suffix: worth resolving


class HeloName(NamedTuple):
    raw: str
    kind: HeloKind
    ascii: str = ""  # the A-label form, for NAME/LOCALHOST/NOT_FQDN
    address: IPAddress | None = None  # for LITERAL/BARE_IP
    problem: str = ""  # why INVALID/NOT_FQDN


def _literal(raw: str, inner: str) -> HeloName:
    tagged = inner[:5].lower() == "ipv6:"
    address = literal_address(inner[5:] if tagged else inner)
    if address is None:
        malformed = HeloName(raw, HeloKind.INVALID, problem="malformed address literal")
        # Only characters IDNA maps can disguise an address: in ASCII, all to_ascii would
        # change is a final dot, and [192.0.2.1.] is no literal (section 4.1.3), nor in
        # other characters than ASCII digits and dots.
        disguised = None if inner.isascii() else _address_in_disguise(raw, to_ascii(inner))
        return disguised or malformed
    plain = unscoped(address)
    if plain != address:
        # RFC 5321 section 4.1.3 literals have no zone. The address is kept, unscoped,
        # so a greeting with one of our own addresses is still a forgery.
        return HeloName(
            raw, HeloKind.INVALID, address=unmapped(plain), problem="address literal with a %zone"
        )
    if (address.version == 6) != tagged:
        # RFC 5321 section 4.1.3: IPv6 literals carry the "IPv6:" tag, IPv4 ones don't.
        # The address is kept, so one of our own is still a forgery, and another host's
        # still a mismatch (_syntax_hits). The fix shown is the literal as written, with
        # the tag put right: an untagged ::ffff:a.b.c.d keeps its form.
        fixed = address_literal(address)
        wrong = "with an IPv6: tag" if tagged else "without the IPv6: tag"
        problem = (
            f"IPv{address.version} address literal {wrong}"
            f" (RFC 5321 section 4.1.3: the literal is {fixed})"
        )
        return HeloName(raw, HeloKind.INVALID, address=unmapped(address), problem=problem)
    # [IPv6:::ffff:192.0.2.1] is the IPv4 client of a dual-stack socket, as which the
    # request's ip is read too (protocol.parse_ip).
    return HeloName(raw, HeloKind.LITERAL, address=unmapped(address))


def _address_in_disguise(raw: str, mapped: str | None) -> HeloName | None:
    """INVALID for an IPv4 address spelled in characters IDNA's UTS46 mapping turns into
    ASCII digits and dots (fullwidth digits U+FF10-U+FF19, the full stops U+3002, U+FF0E,
    U+FF61), given that mapping; else None.

    Neither a literal (RFC 5321 section 4.1.3: Snum is ASCII DIGIT) nor a name (RFC 1123
    section 2.1: no host name is dotted-decimal). The address is kept, so one of our own
    in disguise is still a forgery.
    """
    address = ipv4_literal(mapped) if mapped else None
    if address is None:
        return None
    problem = f"an IPv4 address ({address}) in characters other than ASCII digits and dots"
    return HeloName(raw, HeloKind.INVALID, address=address, problem=problem)


@memoise_short_arg(maxsize=8192, index=0)  # IDNA and the PSL are slow next to a dict lookup
def parse_helo(raw: str) -> HeloName:
    """Classify a HELO/EHLO argument by syntax alone."""
    text = raw.strip(" ")
    # A joiner (ZWNJ, ZWJ) is let through: IDNA allows it where RFC 5892 appendix A puts
    # it, and to_ascii refuses it elsewhere ("not a valid IDNA name").
    if has_unsafe(text, name=True):
        return HeloName(raw, HeloKind.INVALID, problem=unsafe_reason(text, name=True))
    if " " in text:
        return HeloName(raw, HeloKind.INVALID, problem="a space inside")
    if text.startswith("[") and text.endswith("]"):
        return _literal(raw, text[1:-1])
    # Read as a literal's inside: leading zeros (203.0.113.010, ::ffff:203.0.113.010)
    # still spell an address, as they do inside brackets; read as a name they would only
    # be NOT_FQDN. So does one with a final dot (192.0.2.1.): that dot only roots a name.
    bare = text[:-1] if text.endswith(".") else text
    address = literal_address(bare)
    if address is not None:
        # Unmapped as a literal is: ::ffff:192.0.2.1 is the IPv4 address 192.0.2.1.
        return HeloName(raw, HeloKind.BARE_IP, address=unmapped(unscoped(address)))
    name = to_ascii(text)
    if name is None:
        return HeloName(raw, HeloKind.INVALID, problem="not a valid IDNA name")
    disguised = _address_in_disguise(raw, name)
    if disguised is not None:
        return disguised
    problem = hostname_problem(name)
    if problem is not None:
        return HeloName(raw, HeloKind.INVALID, problem=problem)
    # "localhost.example.net" too: a host claiming the loopback name in its own domain.
    if is_localhost_name(name):
        return HeloName(raw, HeloKind.LOCALHOST, ascii=name)
    suffix = non_public_suffix(name)
    if suffix is not None:
        return HeloName(raw, HeloKind.NOT_FQDN, ascii=name, problem=suffix)
    return HeloName(raw, HeloKind.NAME, ascii=name)


@record
class HeloFacts:
    helo: HeloName
    # Resolved only for HeloKind.NAME; None for a family not asked (lookups._address_facts:
    # the other one was enough, or said NXDOMAIN).
    a: Lookup[IPAddress] | None = None
    aaaa: Lookup[IPAddress] | None = None

    @property
    def found(self) -> AddressFacts:
        return AddressFacts(self.a, self.aaaa)


def helo_naming(facts: HeloFacts | None, ip: IPAddress) -> str | None:
    """The HELO's name (A-labels) when it resolves to ``ip``, else None: a client that
    gives its own host name, as RFC 5321 section 4.1.1.1 asks. The PTR checks' evidence
    names it when no confirmed PTR name does (check_ptr)."""
    if facts is None or facts.helo.kind is not HeloKind.NAME:
        return None
    return facts.helo.ascii if ip in facts.found.addresses else None


def _forged_local(
    helo: HeloName, local_names: frozenset[str], local_ips: frozenset[IPAddress]
) -> Hit | None:
    """Our identity in someone else's greeting. Only what is ours alone: a name of the
    internet (a short "mail" or "localhost" in local_names is every other host's too,
    and judged as such), and an address no other network has (an internal one, such as
    our NAT'd interface's 192.168.1.10, is the inside address of many a remote host)."""
    if helo.kind is HeloKind.NAME and helo.ascii in local_names:
        evidence = option_naming(f"helo={shown_name(helo.ascii)}", " is our own name")
        return Hit("RL_HELO_FORGED_LOCAL", (evidence,))
    if helo.address is not None and helo.address in local_ips and not is_internal(helo.address):
        return Hit(
            "RL_HELO_FORGED_LOCAL", (option_naming(f"helo={helo.raw}", " is our own address"),)
        )
    return None


# The share of RL_HELO_LITERAL_MISMATCH's weight an internal literal scores: 1.5 -> 0.5.
NAT_SLIP_CONFIDENCE = 1 / 3


def _syntax_hits(helo: HeloName, ip: IPAddress, also_its: frozenset[IPAddress]) -> list[Hit]:
    """The hits for the greeting's form; ``also_its``: addresses besides ``ip`` that are
    the client's own (ours, when the client is one of our addresses)."""
    if helo.kind is HeloKind.NAME:
        return []  # the usual case: nothing wrong with its form, no evidence to word
    evidence = option(f"helo={helo.raw}")
    match helo.kind:
        case HeloKind.INVALID:
            invalid = Hit("RL_HELO_INVALID", (evidence, option(helo.problem)))
            return _and_mismatch(invalid, evidence, helo.address, ip, also_its)
        case HeloKind.LOCALHOST:
            return [Hit("RL_HELO_LOCALHOST", (evidence,))]
        case HeloKind.NOT_FQDN:
            return [Hit("RL_HELO_NOT_FQDN", (evidence, option(helo.problem)))]
        case HeloKind.BARE_IP:
            bare = Hit("RL_HELO_BARE_IP", (evidence, "address without [brackets]"))
            return _and_mismatch(bare, evidence, helo.address, ip, also_its)
        case HeloKind.LITERAL:
            mismatch = _mismatch_hit(evidence, helo.address, ip, also_its)
            return [] if mismatch is None else [mismatch]
    return []


def _and_mismatch(
    hit: Hit,
    evidence: str,
    address: IPAddress | None,
    ip: IPAddress,
    also_its: frozenset[IPAddress],
) -> list[Hit]:
    """``hit`` for a greeting's wrong form, and RL_HELO_LITERAL_MISMATCH beside it when
    the ``address`` it still names is another host's: the well-formed literal alone
    would score that, and getting the form wrong (no brackets, a missing or misplaced
    "IPv6:" tag, a zone, fullwidth digits) must not score less."""
    mismatch = _mismatch_hit(evidence, address, ip, also_its)
    return [hit] if mismatch is None else [hit, mismatch]


def _mismatch_hit(
    evidence: str, address: IPAddress | None, ip: IPAddress, also_its: frozenset[IPAddress]
) -> Hit | None:
    """RL_HELO_LITERAL_MISMATCH for a greeting's ``address`` that is not the client's
    ``ip`` (nor one of ``also_its``), or None.

    An internal address is a host behind NAT naming its inside address: the fix is the
    MTA's config, not a sign of someone else's identity, and it scores as gently as
    RL_HELO_NOT_FQDN (a third). Loopback is no inside address a NAT'd host has:
    "[127.0.0.1]" claims to be localhost, as bots do. Nor is the unspecified address,
    which no host has (RFC 4291 section 2.5.2, RFC 1122 section 3.2.1.3): "[0.0.0.0]"
    names nobody.
    """
    if address is None or address == ip or address in also_its:
        return None
    if is_internal(address) and not (address.is_loopback or address.is_unspecified):
        why = f"client is {ip} (the address is internal: NAT?)"
        return Hit("RL_HELO_LITERAL_MISMATCH", (evidence, why), NAT_SLIP_CONFIDENCE)
    if _same_ipv6_subnet(address, ip):
        # A host has several addresses in its /64 (RFC 8981 temporary ones, a hosting
        # panel's), and the kernel's choice of source address need not be the one the
        # MTA writes: the same slip, not someone else's identity.
        why = f"client is {ip} (the same /64: another address of its own?)"
        return Hit("RL_HELO_LITERAL_MISMATCH", (evidence, why), NAT_SLIP_CONFIDENCE)
    return Hit("RL_HELO_LITERAL_MISMATCH", (evidence, f"client is {ip}"))


def _same_ipv6_subnet(address: IPAddress | None, ip: IPAddress) -> bool:
    """Whether ``address`` and ``ip`` are IPv6 addresses in one /64, the subnet size of
    an IPv6 host's link (RFC 4291 section 2.5.1)."""
    return (
        isinstance(address, ipaddress.IPv6Address)
        and isinstance(ip, ipaddress.IPv6Address)
        and int(address) >> 64 == int(ip) >> 64
    )


def _at_client(addresses: Collection[IPAddress], ip: IPAddress) -> bool:
    """Whether ``ip`` is among ``addresses``, also as the IPv4-mapped (RFC 4291 section
    2.5.5.2) or NAT64 (RFC 6052) AAAA that names it: the request's ip is read unmapped
    (protocol.parse_ip), so such an AAAA of the client's own name is the client too."""
    return any(unmapped(address) == ip for address in addresses)


def resolves_to_a_host(addresses: Collection[IPAddress], ip: IPAddress) -> bool:
    """Whether a HELO name at ``addresses`` names a host: the client's own address, or a
    public host's (names.is_public_host). At none of them, the name is no client's (RFC
    5321 section 4.1.1.1: the argument is the client's FQDN) and names no reachable host
    either: loopback, RFC 1918, multicast, reserved or documentation addresses only, as
    an MX host there is RL_MAILFROM_BOGUS_MX."""
    return _at_client(addresses, ip) or has_public_host(addresses)


def _resolution_hit(facts: HeloFacts, resolved: AddressFacts, ip: IPAddress) -> Hit | None:
    """NO_ADDRESS when both A and AAAA are definitely absent (an NXDOMAIN for one says so
    of both, RFC 8020 section 2: the other is then not asked), or when the name's
    addresses name no host (``resolves_to_a_host``); a failure leaves the question open
    (TEMPFAIL), unless the other family already named a host."""
    outcomes = [o for o in (facts.a, facts.aaaa) if o is not None]
    if not outcomes:
        return None
    answered = any(isinstance(o, Answer) for o in outcomes)
    addresses = resolved.addresses
    if answered and resolves_to_a_host(addresses, ip):
        return None  # the usual case: nothing more to work out
    evidence = option(f"helo={shown_name(facts.helo.ascii)}")
    failures = tuple(map(option, resolved.failures()))
    if answered:
        found = only_non_public(addresses)
        if failures:
            # The failed family might have held a public address: unknown, and said so
            # (as an implicit MX's is) rather than nothing or a verdict.
            return Hit("RL_HELO_TEMPFAIL", (evidence, found, *failures))
        return Hit("RL_HELO_NO_ADDRESS", (evidence, found))
    if failures:
        return Hit("RL_HELO_TEMPFAIL", (evidence, *failures))
    said = {
        rdtype: describe(o)
        for rdtype, o in (("A", facts.a), ("AAAA", facts.aaaa))
        if isinstance(o, NotFound)
    }
    if len(set(said.values())) == 1:
        # One "no" for both (or an NXDOMAIN to A, which says so of AAAA: RFC 8020).
        shown = f"A/AAAA: {next(iter(said.values()))}"
    else:  # each family's own: "A: nxdomain, AAAA: nodata", never the other's word
        shown = ", ".join(f"{rdtype}: {word}" for rdtype, word in said.items())
    return Hit("RL_HELO_NO_ADDRESS", (evidence, option(shown)))


def check_helo(
    facts: HeloFacts,
    ip: IPAddress,
    local_names: frozenset[str],
    local_ips: frozenset[IPAddress],
    counted_by_ptr: PtrCounted = NOTHING_COUNTED,
) -> list[Hit]:
    """All HELO hits for one greeting; a forgery of our identity outranks the rest.

    A greeting with a PTR name (what RFC 5321 section 4.1.1.1 asks for, and what an
    MTA does by default) is not judged again for what the PTR family scored about that
    name (``counted_by_ptr``): the sender who names itself consistently would otherwise
    pay twice for one fact.
    """
    # A client at one of our own addresses is us (a web app, a peer relaying over the
    # public address): greeting with our name is then the truth, not a forgery. So is a
    # client our name resolves to (a node of a cluster sharing it): a forger cannot make
    # our zone point at it.
    # Our addresses are then all its own: a multi-homed host greets with whichever.
    found = facts.found  # built once per check (a frozen dataclass each time)
    ours = ip in local_ips
    forged = None if ours else _forged_local(facts.helo, local_names, local_ips)
    same_family = facts.a if ip.version == 4 else facts.aaaa
    if forged is not None and not _at_client(found.addresses, ip):
        if facts.helo.kind is HeloKind.NAME and isinstance(same_family, TempFail):
            # Our name's lookup of the client's family failed: it may put the client at
            # the name (a node sharing it), which is no forgery. Unknown, not forged.
            why = "a client our name resolves to is ours, not a forger"
            failures = tuple(map(option, found.failures()))
            return [Hit("RL_HELO_TEMPFAIL", (*forged.options, *failures, why))]
        return [forged]
    syntax = _syntax_hits(facts.helo, ip, local_ips if ours else frozenset())
    if syntax:
        return syntax
    name = facts.helo.ascii
    # Asked once for both checks below. A name at the client's own address resolves to a
    # host: _resolution_hit would find nothing to say (the usual case).
    at_client = _at_client(found.addresses, ip)
    said_already = at_client or name in counted_by_ptr.unverified
    hits = [None if said_already else _resolution_hit(facts, found, ip)]
    if facts.helo.kind is HeloKind.NAME and name not in counted_by_ptr.generic:
        # A failed lookup of the client's family might have confirmed the name: judged
        # as if it had, so a big sender keeps its exemption (as a PTR name does) and a
        # DNS failure does not turn into a generic penalty.
        confirmed = at_client or isinstance(same_family, TempFail)
        hits.append(generic_hit("RL_HELO_GENERIC", ip, name, confirmed, "helo"))
    return [h for h in hits if h is not None]
