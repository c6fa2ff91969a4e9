"""What a name's A and AAAA lookups found, and how evidence words it: shared by the
HELO check (a HELO name, RFC 5321 section 4.1.1.1) and the MAIL FROM check (an MX
target, or a domain's implicit MX, section 5.1)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from scorer.dns.outcomes import Answer, Lookup, NotFound, Outcome, TempFail, describe
from scorer.names import IPAddress, address_text, is_public_host
from scorer.records import record


@record
class AddressFacts:
    # None: not asked, because the other family already gave what the checks need, or
    # said NXDOMAIN (RFC 8020 section 2: no records of any type, so none of this one).
    # Neither for an MX target spelling an address: it names no host.
    a: Lookup[IPAddress] | None
    aaaa: Lookup[IPAddress] | None

    @property
    def addresses(self) -> list[IPAddress]:
        return [
            address
            for outcome in (self.a, self.aaaa)
            if isinstance(outcome, Answer)
            for address in outcome.records
        ]

    @property
    def failed(self) -> bool:
        return isinstance(self.a, TempFail) or isinstance(self.aaaa, TempFail)

    def failures(self) -> list[str]:
        """``A: timeout: ...``-style evidence for each failed lookup."""
        return failed_lookups({"A": self.a, "AAAA": self.aaaa})


def unresolved(said: str, facts: AddressFacts) -> str:
    """``said`` of a name with no addresses, followed by where each CNAME chain that
    led to a "no" ended (``does not resolve (nxdomain at gone.example (CNAME target))``):
    RFC 2308 section 2.1 makes the "no" the chain's last name's, and that is the record
    the admin has to fix, not the name asked. Raw text (the target is as DNS wrote it):
    the caller escapes and caps it (``option``, ``option_naming``)."""
    chased = {
        describe(outcome)
        for outcome in (facts.a, facts.aaaa)
        if isinstance(outcome, NotFound) and outcome.alias_target is not None
    }
    return said + "".join(f" ({where})" for where in sorted(chased))


def has_public_host(addresses: Iterable[IPAddress]) -> bool:
    """Whether any of ``addresses`` is a public host's (names.is_public_host): one a
    reply can be delivered to, a greeting's name can stand for."""
    return any(map(is_public_host, addresses))


def only_non_public(addresses: Iterable[IPAddress]) -> str:
    """The evidence for a name whose addresses name no public host: the first four."""
    return f"only non-public addresses {listed_addresses(addresses, most=4)}"


def failed_lookups(outcomes: Mapping[str, Outcome | None]) -> list[str]:
    """``A: servfail``-style evidence for each failed lookup, by its record type."""
    return [f"{rdtype}: {describe(o)}" for rdtype, o in outcomes.items() if isinstance(o, TempFail)]


def listed_addresses(addresses: Iterable[IPAddress], most: int | None = None) -> str:
    """``addresses`` as evidence: each once, in address order (IPv4 before IPv6), the
    first ``most`` of them. A resolver rotates its answers (round robin), and which
    addresses evidence shows, and in which order, must not change from message to
    message with them."""
    ordered = sorted(set(addresses), key=lambda address: (address.version, address))
    return ", ".join(map(address_text, ordered[:most]))
