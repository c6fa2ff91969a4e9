"""The human-readable report of ``rdns-scorer check``: symbols, evidence, and fix hints."""

from __future__ import annotations

from collections.abc import Mapping

from scorer.checks.helo import HeloKind, parse_helo
from scorer.checks.mailfrom import parse_sender
from scorer.checks.ptr import MTA_EVIDENCE, address_record, helo_option
from scorer.dns.outcomes import FailureKind
from scorer.generic import classify
from scorer.names import address_literal
from scorer.protocol import CheckReply, CheckRequest, SymbolResult
from scorer.symbols import SYMBOLS, reports_a_failure
from scorer.text import option

# How a lookup judged through a resolver that says the root does not exist shows in
# evidence (the failure kind's name, then its detail: "untrusted: the resolver says ...").
UNTRUSTED_EVIDENCE = f"{FailureKind.UNTRUSTED}: "
UNTRUSTED_HINT = (
    "nothing on the sender's side: this host's resolver says the root has no SOA, so its "
    '"no such name" answers cannot be trusted; point [dns] nameservers (or '
    "/etc/resolv.conf) at a working recursive resolver (docs/monitoring.md, "
    "RdnsScorerResolverBroken)"
)


SILENT_HINT = (
    "nothing on the sender's side, as far as this shows: this host's resolver does not "
    "answer (not even for the root), so no lookup could be made; point [dns] "
    "nameservers (or /etc/resolv.conf) at a running recursive resolver "
    "(docs/monitoring.md, RdnsScorerResolverBroken)"
)


# How a lookup our resolver refused, or could not answer as it does not recurse (a
# referral, a CNAME chain it did not follow: scorer.dns.wire), shows in evidence. A
# recursive resolver turns an authoritative server's refusal into SERVFAIL: a REFUSED
# that reaches us is our resolver's own (its access control, or no recursion for us).
REFUSED_EVIDENCE = (f": {FailureKind.REFUSED}: ", f": {FailureKind.REFUSED}")
REFUSED_HINT = (
    "nothing on the sender's side, as far as this shows: this host's resolver refused "
    "the lookup or does not recurse for it; let it serve this host (its access control) "
    "or point [dns] nameservers (or /etc/resolv.conf) at a recursive resolver that does"
)


# RL_MAILFROM_BOGUS_MX's hint for an address-literal sender (user@[10.0.0.1]), which has
# no MX to publish: RFC 5321 section 4.1.3, a reply goes to the address itself.
LITERAL_SENDER_HINT = (
    "the sender writes an address literal, {domain}, which is not a public address: a "
    "reply goes to that address itself (no MX); send from a domain whose mail hosts have "
    "public addresses, or a public address of the sender's own mail host"
)


# The PTR symbols whose evidence may name the HELO that resolves to the client
# (checks.ptr.check_ptr): the name their fix asks for.
_PTR_FIXED_BY_NAMING = frozenset({"RL_PTR_MISSING", "RL_PTR_UNVERIFIED", "RL_PTR_GENERIC"})


def _helo_to_name(request: CheckRequest, result: SymbolResult) -> str | None:
    """The HELO (A-labels) when ``result``, a PTR symbol, gives as evidence that it
    resolves to the client and is no confirmed PTR name: a PTR naming it is the fix,
    unless it is a generic name itself (a PTR naming it would be RL_PTR_GENERIC)."""
    if result.name not in _PTR_FIXED_BY_NAMING or not request.helo:
        return None
    helo = parse_helo(request.helo)
    if helo.kind is not HeloKind.NAME or helo_option(helo.ascii, request.ip) not in result.options:
        return None
    return None if classify(request.ip, helo.ascii, True).generic else helo.ascii


def hint_fields(request: CheckRequest, ptr_name: str | None) -> Mapping[str, str]:
    mail_from = request.mail_from or ""
    # Escaped and capped like options: a HELO can carry terminal escape sequences, and
    # a field runs to 1,024 characters.
    return dict(
        ip=str(request.ip),
        literal=address_literal(request.ip),  # [IPv6:...] for an IPv6 client
        helo=option(request.helo or ""),
        mail_from=option(mail_from),
        # The name the MAIL FROM checks resolved (lower-case A-label), so the hint
        # names what to fix in DNS; "" when there is none (null sender, bad syntax).
        domain=option(parse_sender(mail_from).domain),
        ptr=option(ptr_name) if ptr_name else "its PTR name",
        # The record that confirms a PTR name for this client: A, or AAAA for IPv6.
        address_record=address_record(request.ip),
    )


def _lookup_evidence(result: SymbolResult) -> list[str]:
    """What ``result`` says of its failed lookups: only the *_TEMPFAIL symbols report
    them, and not in the MTA's name for the client, the request's own text (other
    evidence quotes what the client sent: an RL_HELO_INVALID's HELO may read
    "untrusted: ...", an MTA hostname "x: refused")."""
    if not reports_a_failure(result.name):
        return []
    return [evidence for evidence in result.options if not evidence.startswith(MTA_EVIDENCE)]


def _judged_by_an_untrusted_resolver(result: SymbolResult) -> bool:
    """Whether a failed lookup behind ``result`` was one our resolver cannot be trusted on."""
    return any(UNTRUSTED_EVIDENCE in evidence for evidence in _lookup_evidence(result))


def _refused_by_our_resolver(result: SymbolResult) -> bool:
    """Whether a failed lookup behind ``result`` was refused by our resolver."""
    return any(
        REFUSED_EVIDENCE[0] in evidence or evidence.endswith(REFUSED_EVIDENCE[1])
        for evidence in _lookup_evidence(result)
    )


def _checked(request: CheckRequest) -> str:
    """What a reply without symbols vouches for: what the request gave to check."""
    parts = ["reverse DNS"]
    if request.helo:  # an empty one is no HELO: nothing checks it (scorer.lookups)
        parts.append("HELO")
    if request.mail_from:  # not for the null sender, which has no domain to check
        parts.append("MAIL FROM")
    if len(parts) == 1:
        return "reverse DNS looks fine"
    return f"{', '.join(parts[:-1])} and {parts[-1]} look fine"


def render_report(
    request: CheckRequest,
    reply: CheckReply,
    elapsed_ms: float,
    ptr_name: str | None,
    resolver_silent: bool = False,
) -> str:
    """The report of one check; ``resolver_silent``: our resolver answered nothing, so
    every failed lookup is its fault, not the sender's zones'."""
    fields = hint_fields(request, ptr_name)
    mail_from = "<>" if request.mail_from == "" else fields["mail_from"] or "-"
    lines = [
        f"client {request.ip}  helo={fields['helo'] or '-'}  from={mail_from}",
        f"total score {reply.score:+.2f}  ({elapsed_ms:.1f} ms)",
    ]
    if not reply.symbols:
        lines.append(f"no symbols: {_checked(request)}")
    for result in reply.symbols:
        symbol = SYMBOLS.get(result.name)
        lines.append("")
        lines.append(f"{result.name:<28} {result.score:+.2f}")
        if symbol is not None:
            lines.append(f"  what:     {symbol.description}")
        for evidence in result.options:
            lines.append(f"  evidence: {evidence}")
        # Where our own resolver is at fault, not the sender's zones its hint would name.
        if resolver_silent and reports_a_failure(result.name):
            lines.append(f"  fix:      {SILENT_HINT}")
        elif _judged_by_an_untrusted_resolver(result):
            lines.append(f"  fix:      {UNTRUSTED_HINT}")
        elif _refused_by_our_resolver(result):
            lines.append(f"  fix:      {REFUSED_HINT}")
        elif result.name == "RL_MAILFROM_BOGUS_MX" and fields["domain"].startswith("["):
            lines.append(f"  fix:      {LITERAL_SENDER_HINT.format_map(fields)}")
        elif symbol is not None:
            hint = symbol.hint.format_map(fields)
            named = _helo_to_name(request, result)
            if named is not None:
                # The evidence names it: the name the PTR should hold, already pointing
                # at the client, so the fix is one PTR record, not a new name.
                hint += (
                    f"; its HELO name {option(named)} already resolves to {request.ip}: "
                    f"a PTR of {request.ip} naming it would be confirmed"
                )
            lines.append(f"  fix:      {hint}")
    return "\n".join(lines) + "\n"
