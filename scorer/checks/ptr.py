"""PTR checks: does the client have a PTR, is it forward-confirmed, is it generic?

Forward-confirmed reverse DNS is RFC 8601's ``iprev`` (section 3 of RFC 8601,
after RFC 5451): some PTR name of the IP must have an A (IPv4) or AAAA (IPv6)
record equal to that IP. A DNS failure anywhere in the chain is reported as
``RL_PTR_TEMPFAIL`` and never scored as missing or unverified.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field

from scorer.checks.addresses import listed_addresses
from scorer.checks.generic import generic_hit
from scorer.checks.hit import Hit
from scorer.dns.outcomes import Answer, Lookup, TempFail, describe
from scorer.names import (
    IPAddress,
    address_named,
    in_reverse_tree,
    is_localhost_name,
    shown_name,
)
from scorer.records import record
from scorer.text import option, option_naming


@record
class PtrFacts:
    ip: IPAddress
    ptr: Lookup[str]
    # PTR name -> its A (IPv4 client) or AAAA (IPv6 client) lookup, for at most
    # max_ptr_names names that name a host (ptr_names_a_host): the MTA's, then those an
    # allowlist entry would apply for, then the HELO's, then the rest, each in sorted
    # order (lookups._before_the_cut).
    forward: dict[str, Lookup[IPAddress]] = field(default_factory=dict)
    unchecked_names: int = 0  # PTR names beyond the bound, not resolved
    # What the MTA resolved for the client (its own FCrDNS view, e.g. Postfix's
    # client_name): shown beside our evidence so an admin sees any disagreement.
    mta_hostname: str | None = None

    def confirmed_names(self) -> list[str]:
        """PTR names whose forward lookup includes the client IP (RFC 8601 iprev pass)."""
        return [
            name
            for name, outcome in self.forward.items()
            if isinstance(outcome, Answer) and self.ip in outcome.records
        ]

    def failed_names(self) -> list[str]:
        """PTR names whose forward lookup failed: each might have confirmed."""
        return [name for name, outcome in self.forward.items() if isinstance(outcome, TempFail)]

    def names_not_looked_up(self) -> list[str]:
        """The PTR names that name a host but were not looked up (beyond max_ptr_names),
        sorted: ``unchecked_names`` of them."""
        if not isinstance(self.ptr, Answer) or not self.unchecked_names:
            return []
        return sorted({n for n in self.ptr.records if ptr_names_a_host(n)} - self.forward.keys())

    def names_judged(self) -> list[str]:
        """The PTR names a verdict is about: those that confirm, else every one looked
        up; sorted, since a PTR answer's order is the resolver's whim."""
        return sorted(self.confirmed_names() or self.forward)


def names_a_host(name: str) -> bool:
    """Whether a PTR record's name or an MX target (as the codec writes it) can name a
    host: not the root ("PTR .", the owner's way of saying there is none; "MX 0 .", RFC
    7505), nor an address ("PTR 192.0.2.7.", "MX 10 192.0.2.7.": RFC 1123 section 2.1,
    a host name is never dotted-decimal, its top label being alphabetic; Postfix reads
    such a PTR as no name too). Leading zeros
    ("192.0.2.010") still spell one: each number is decimal, as RFC 5321 section 4.1.3
    reads it, and to a resolver library that reads "010" as octal it is an address too;
    so does an address literal ("[192.0.2.7]", "[IPv6:2001:db8::25]", RFC 5321 section
    4.1.3)."""
    return bool(name) and address_named(name) is None


def ptr_names_a_host(name: str) -> bool:
    """Whether a PTR record's name can be the client's: one that names a host
    (names_a_host), and not the loopback host ("PTR localhost.", a hoster's default for
    an address it has not given out: RFC 6761 section 6.3 keeps the name for loopback,
    and no remote client is it)."""
    return names_a_host(name) and not is_localhost_name(name)


def address_record(ip: IPAddress) -> str:
    """The record type that confirms a PTR name for ``ip`` (RFC 8601 section 3)."""
    return "A" if ip.version == 4 else "AAAA"


def _forward_evidence(ip: IPAddress, name: str, outcome: Lookup[IPAddress]) -> str:
    """``name -> addresses`` (each once, in address order: a resolver rotates the answer,
    and the evidence must not follow it), or which record of the name was asked and why
    it is not there (``mail.example.net A: nodata``: it may well have the other
    family's)."""
    if isinstance(outcome, Answer):
        return option_naming(name, f" -> {listed_addresses(outcome.records)}")
    typo = (
        " (under the reverse tree: a PTR without its final dot?)" if in_reverse_tree(name) else ""
    )
    return option_naming(name, f" {address_record(ip)}: {describe(outcome)}{typo}")


def _generic(ip: IPAddress, names: dict[str, bool]) -> Hit | None:
    """RL_PTR_GENERIC when every one of ``names`` (name -> treat as confirmed) is generic,
    at the lowest confidence among them (with that name's evidence: the first in sorted
    order of those tied); else None.

    All of them, not the first: a PTR answer's order is random, and a relay with a
    custom name beside its provider's generic one must get the same verdict on every
    message. Sorted for the same reason: the evidence must not follow that order either.
    """
    lowest: Hit | None = None
    for name, confirmed in sorted(names.items()):
        hit = generic_hit("RL_PTR_GENERIC", ip, name, confirmed, "ptr")
        if hit is None:
            return None
        if lowest is None or hit.confidence < lowest.confidence:
            lowest = hit
    return lowest


def _judged_names(
    facts: PtrFacts, confirmed: list[str], failed: list[str]
) -> dict[str, bool] | None:
    """The names RL_PTR_GENERIC judges (name -> judge as confirmed), None for no verdict.

    The confirmed names when one confirms, else every name looked up. A name whose
    forward lookup failed (``failed``) might have confirmed: it is judged as if it
    had (so a big sender's exemption still applies). Names beyond max_ptr_names could
    be anything: no verdict. So neither a DNS failure nor the bound turns into a
    generic penalty.
    """
    if facts.unchecked_names:
        return None
    if confirmed:
        return dict.fromkeys([*confirmed, *failed], True)
    return {name: name in failed for name in facts.forward}


# How the evidence quotes the MTA's name for the client: the request's free text,
# which a report must not read as what a lookup said (scorer.report).
MTA_EVIDENCE = "MTA hostname: "


def helo_option(helo_name: str, ip: IPAddress) -> str:
    """The evidence of a PTR symbol naming the HELO that resolves to the client: the
    name its PTR should hold (check_ptr; the report's fix line names it too)."""
    return option_naming(f"helo={shown_name(helo_name)}", f" resolves to {ip}")


def _helo_evidence(helo_name: str | None, ip: IPAddress) -> tuple[str, ...]:
    """``helo_option``'s evidence when there is a HELO naming the client, else none.
    Worked out only for a hit that shows it: most checks have none."""
    return () if helo_name is None else (helo_option(helo_name, ip),)


def _mta_evidence(facts: PtrFacts) -> tuple[str, ...]:
    """The MTA's name for the client as evidence, when the request has one. Worked out
    only for a hit that shows it: the rspamd plugin sends one with every check."""
    return (option(f"{MTA_EVIDENCE}{facts.mta_hostname}"),) if facts.mta_hostname else ()


def check_ptr(facts: PtrFacts, helo_name: str | None = None) -> list[Hit]:
    """The PTR family's hits. ``helo_name``: the client's HELO when it resolves to the
    client (checks.helo.helo_naming), for the evidence of a PTR that does not name it
    forward-confirmed: the name the PTR should hold, the mark of a sender that left its
    PTR to its provider (or forgot it) rather than a hijacked PC."""
    ip = facts.ip
    if isinstance(facts.ptr, TempFail):
        # Not "PTR 2001:db8::1: timeout": a colon after an IPv6 address reads as one more
        # of its groups (RFC 5952 section 6 brackets an address before a port for that).
        lookup = option(f"PTR of {ip} failed: {describe(facts.ptr)}")
        return [Hit("RL_PTR_TEMPFAIL", (lookup, *_mta_evidence(facts)))]
    if not isinstance(facts.ptr, Answer):
        ptr = option(f"PTR: {describe(facts.ptr)}")
        named_by_others = (*_mta_evidence(facts), *_helo_evidence(helo_name, ip))
        return [Hit("RL_PTR_MISSING", (f"no PTR for {ip}", ptr, *named_by_others))]
    if not any(map(ptr_names_a_host, facts.ptr.records)):
        # No host named: the evidence says what the PTR names instead, each name once
        # and sorted (an answer's order is the resolver's whim: the evidence must not follow it).
        named = sorted({name for name in facts.ptr.records if name})
        loopback = [name for name in named if is_localhost_name(name)]
        addresses = [name for name in named if name not in loopback]
        spelled = " and ".join(
            f"{', '.join(names)} ({what}, not a host name)"
            for names, what in ((addresses, "an address"), (loopback, "loopback"))
            if names
        )
        shown = option(f"PTR: {spelled}") if named else "PTR: . (the root)"
        named_by_others = (*_mta_evidence(facts), *_helo_evidence(helo_name, ip))
        return [Hit("RL_PTR_MISSING", (f"no PTR name for {ip}", shown, *named_by_others))]
    confirmed = facts.confirmed_names()
    failed = facts.failed_names()
    judged = _judged_names(facts, confirmed, failed)
    generic = _generic(ip, judged) if judged else None
    if confirmed and generic is None:
        return []  # the usual case: no hit, so no evidence to word
    mta = _mta_evidence(facts)
    # A confirmed PTR name the HELO repeats says it already.
    extra = (*mta, *_helo_evidence(helo_name, ip)) if helo_name not in confirmed else mta
    if generic is not None and extra:
        generic = Hit(generic.symbol, (*generic.options, *extra), generic.confidence)
    if confirmed:
        return [generic] if generic else []
    evidence = [_forward_evidence(ip, name, o) for name, o in facts.forward.items()]
    if facts.unchecked_names:
        evidence.append(f"{facts.unchecked_names} more PTR names not checked (max_ptr_names)")
    evidence.extend(extra)
    # Unknown is not unverified: a failed or unchecked name might have confirmed.
    symbol = "RL_PTR_TEMPFAIL" if failed or facts.unchecked_names else "RL_PTR_UNVERIFIED"
    return [h for h in (Hit(symbol, (f"PTR {ip} not confirmed", *evidence)), generic) if h]


@dataclass(frozen=True, slots=True)
class PtrCounted:
    """The PTR names whose facts a PTR symbol already scored: ``unverified``, those of
    RL_PTR_UNVERIFIED (none resolves back to the client: whether each resolves at all
    is in its evidence), ``generic``, those of RL_PTR_GENERIC. Empty when the symbol
    did not fire: a TEMPFAIL, unchecked names or a verdict on other names counted
    nothing, and the HELO is judged in full."""

    unverified: Collection[str] = ()
    generic: Collection[str] = ()


NOTHING_COUNTED = PtrCounted()


def ptr_counted(facts: PtrFacts, hits: list[Hit]) -> PtrCounted:
    """What ``hits`` (check_ptr's for ``facts``) scored about which PTR names."""
    fired = {hit.symbol for hit in hits}
    if not fired & {"RL_PTR_UNVERIFIED", "RL_PTR_GENERIC"}:
        return NOTHING_COUNTED
    unverified = facts.names_judged() if "RL_PTR_UNVERIFIED" in fired else ()
    generic: Collection[str] = ()
    if "RL_PTR_GENERIC" in fired:
        # Every name RL_PTR_GENERIC judged, a failed one beside a confirmed one included
        # (judged as if it had confirmed): a HELO naming it is not judged generic again.
        generic = _judged_names(facts, facts.confirmed_names(), facts.failed_names()) or ()
    return PtrCounted(unverified=unverified, generic=generic)
