"""The single table of symbols: name, family, default weight, description, reason and fix hint.

Everything else derives from this table: the default weights in the config, the
``docs/symbols.md`` table, the rspamd plugin's symbol list (``rdns-scorer rspamd
symbols``), the SpamAssassin describe lines in rdns_scorer.cf (``rdns-scorer
spamassassin describe``), each of those three checked by a test, and the hints in
``rdns-scorer check``'s report.

Default weights follow the postmaster article that motivates the project: a
missing PTR is strong evidence, an unverified PTR moderate, most HELO problems
gentle ("keep a close eye on the logs"; a HELO forging our own identity is strong,
and one naming another host's address literal moderate), invalid MAIL FROM domains
are scored fairly hard, and a DNS failure is never scored at all (weight 0).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from types import MappingProxyType


class Family(enum.StrEnum):
    """Which check family a symbol belongs to; also the metrics label."""

    PTR = "ptr"
    HELO = "helo"
    MAILFROM = "mailfrom"
    POLICY = "policy"
    PLUGIN = "plugin"  # inserted by the rspamd/SpamAssassin plugins, never by the service


@dataclass(frozen=True, slots=True)
class Symbol:
    name: str
    family: Family
    weight: float
    description: str
    reason: str  # why the default weight is what it is
    # How the *sender* fixes it; str.format fields (scorer.report.hint_fields): ip, helo,
    # mail_from, domain, ptr, address_record.
    hint: str


# An allowlisted sender has nothing to fix, for the operator's entry's sake.
_ALLOWLIST_HINT = (
    "nothing to fix while the entry stays; remove it once the sender has fixed their DNS"
)

_TABLE: tuple[Symbol, ...] = (
    Symbol(
        "RL_PTR_MISSING",
        Family.PTR,
        5.0,
        "The client IP has no PTR record (or only ones naming the root, '.', an IP address "
        "or loopback, 'localhost').",
        "Strong: the article recommends refusing mail from IPs without PTR, as Google, "
        "Microsoft and Yahoo do; hijacked PCs almost never have one.",
        "ask the owner of {ip} (ISP or hosting provider) for a PTR record naming your mail "
        "server, and make that name resolve back to {ip}",
    ),
    Symbol(
        "RL_PTR_UNVERIFIED",
        Family.PTR,
        3.0,
        "PTR names exist, but none resolves back to the client IP (FCrDNS / iprev fails).",
        "Moderate: a PTR anyone can write is weak evidence until the forward zone agrees "
        "(RFC 8601 iprev); misconfigured but genuine servers exist.",
        "make the PTR name of {ip} ({ptr}) have an {address_record} record pointing back to {ip}",
    ),
    Symbol(
        "RL_PTR_GENERIC",
        Family.PTR,
        2.5,
        "The PTR name is an ISP-assigned generic name: it encodes the client IP, or "
        "carries access keywords in a digit-heavy name (score is weight x confidence).",
        "Moderate, scaled by confidence: generic names mark dynamic or unmanaged hosts, "
        "but some small genuine servers still sit behind them.",
        "ask the owner of {ip} to replace the generic PTR {ptr} with a name of your own "
        "mail server that resolves back to {ip}",
    ),
    Symbol(
        "RL_PTR_TEMPFAIL",
        Family.PTR,
        0.0,
        "The PTR or its forward confirmation could not be checked "
        "(DNS timeout/SERVFAIL, or more PTR names than max_ptr_names).",
        "Zero: a DNS failure says nothing about the sender and must never look like a missing PTR.",
        "for a failed lookup the evidence names (timeout, servfail, ...): make that zone (the "
        "reverse zone of {ip}, or a PTR name's own) answer from reachable, working "
        "nameservers (a CNAME loop, or a chain too long: correct those records); for PTR "
        "names not checked (max_ptr_names), nothing failed: this "
        "service resolves only the first [dns] max_ptr_names of them (raise it here to judge "
        "more), or the sender publishes fewer",
    ),
    Symbol(
        "RL_SKIPPED_LOCAL",
        Family.POLICY,
        0.0,
        "The client is in a skipped (local/private) network; no checks were run.",
        "Zero: informational. Many of these mean a proxy or NAT hides real client IPs.",
        "nothing to fix for the sender; if this is unexpected, your MTA passes an "
        "internal address instead of the real client's",
    ),
    Symbol(
        "RL_ALLOWLISTED",
        Family.POLICY,
        0.0,
        "An ip, ptr or helo allowlist entry matched (the client's address, or a "
        "forward-confirmed PTR); the checks it covers were not scored.",
        "Zero by default: the entry already exempts the sender; set it negative to "
        "also vouch for them in the total score (only the client's address or its "
        "confirmed PTR earns it, which a forger cannot give itself).",
        _ALLOWLIST_HINT,
    ),
    Symbol(
        "RL_ALLOWLISTED_FROM",
        Family.POLICY,
        0.0,
        "A from allowlist entry matched the envelope sender's domain; the MAIL FROM "
        "checks were not scored.",
        "Zero: anyone may write any MAIL FROM (RFC 5321 section 4.1.1.2 has no proof of "
        "it), so the entry exempts the sender domain's checks but vouches for nobody; a "
        "negative weight would be a bonus for every forger of the domain.",
        _ALLOWLIST_HINT,
    ),
    Symbol(
        "RL_HELO_LOCALHOST",
        Family.HELO,
        1.0,
        "HELO/EHLO claims to be localhost.",
        "Gentle: common on badly set-up genuine servers, but never correct for mail from "
        "another host (RFC 5321 section 4.1.1.1).",
        "configure the mail server at {ip} to greet with its fully-qualified name, one that "
        "resolves to {ip} (the name the PTR of {ip} should hold, not a generic one)",
    ),
    Symbol(
        "RL_HELO_NOT_FQDN",
        Family.HELO,
        0.5,
        "HELO/EHLO is a single label or under a non-public suffix (.local, .lan, ...).",
        "Gentle: RFC 5321 section 4.1.1.1 requires a FQDN, yet many genuine servers "
        "send 'Mail-Server' (the article's advice: watch, don't refuse).",
        "configure the mail server at {ip} to greet with a fully-qualified public name "
        "instead of '{helo}'",
    ),
    Symbol(
        "RL_HELO_BARE_IP",
        Family.HELO,
        1.0,
        "HELO/EHLO is an IP address without brackets, which is not valid syntax (another "
        "host's address also scores RL_HELO_LITERAL_MISMATCH, as in brackets).",
        "Gentle to moderate: RFC 5321 section 4.1.3 requires address literals in "
        "brackets; bots often send bare IPs.",
        "greet with a hostname, or with the address literal {literal}",
    ),
    Symbol(
        "RL_HELO_LITERAL_MISMATCH",
        Family.HELO,
        1.5,
        "HELO/EHLO names an address that is not the client's own: an address literal, or a "
        "bare or malformed one, which also scores RL_HELO_BARE_IP or RL_HELO_INVALID (weight "
        "x 1/3 for an internal one: RFC 1918, CGNAT, ULA, link-local; or another address in "
        "an IPv6 client's own /64).",
        "Moderate: a literal naming another public address is a false identity, not a "
        "configuration slip; an internal one is a host behind NAT naming its inside "
        "address, a slip scored as gently as RL_HELO_NOT_FQDN.",
        "greet with {literal} (the address the connection comes from) or with a hostname",
    ),
    Symbol(
        "RL_HELO_INVALID",
        Family.HELO,
        1.5,
        "HELO/EHLO has characters or label lengths no hostname can have, or is a "
        "malformed address literal (one without its IPv6: tag, too; another host's "
        "address also scores RL_HELO_LITERAL_MISMATCH).",
        "Moderate: control characters, spaces or 64+ character labels come from broken "
        "or hostile software (RFC 1035 section 2.3.4, RFC 5321 section 4.1.2).",
        "configure the mail server at {ip} to greet with a valid hostname",
    ),
    Symbol(
        "RL_HELO_NO_ADDRESS",
        Family.HELO,
        0.5,
        "HELO/EHLO is a FQDN with no A or AAAA record, or only non-public ones (loopback, "
        "RFC 1918, CGNAT, ULA, multicast, reserved, documentation) that are not the client's.",
        "Gentle: RFC 5321 section 4.1.1.1 asks for a name that resolves to an address, "
        "but section 2.3.5 counts one with only an MX (a bare domain) as resolvable too, "
        "and many genuine servers greet with internal names that have no public record.",
        "give '{helo}' a public A/AAAA record (a non-public address does not count), or "
        "greet with a name that has one",
    ),
    Symbol(
        "RL_HELO_FORGED_LOCAL",
        Family.HELO,
        3.0,
        "The client greets with one of our own names or addresses.",
        "Strong: a remote client claiming to be the receiving server is a forgery.",
        "greet with your own server's name, not the receiver's",
    ),
    Symbol(
        "RL_HELO_GENERIC",
        Family.HELO,
        0.5,
        "HELO/EHLO is a generic ISP-style name for the client IP (weight x confidence).",
        "Gentle: usually a dynamic host greeting with its own generic PTR.",
        "greet with the name of your mail server instead of the ISP-assigned '{helo}'",
    ),
    Symbol(
        "RL_HELO_TEMPFAIL",
        Family.HELO,
        0.0,
        "The HELO name could not be resolved because of a DNS failure.",
        "Zero: a DNS failure is never evidence against the sender.",
        "make the zone of '{helo}' (or of the CNAME target the evidence names) answer "
        "from reachable, working nameservers (a CNAME loop, or a chain too long: correct "
        "those records)",
    ),
    Symbol(
        "RL_MAILFROM_BAD_SYNTAX",
        Family.MAILFROM,
        3.0,
        "The envelope sender (MAIL FROM) is not a valid address.",
        "Fairly hard: the article recommends being strict with MAIL FROM; no genuine "
        "sender needs an unparsable address. What Postfix accepts and real mail carries "
        "is spared: dots anywhere in the local part, an underscore or 'ab--' label or a "
        "final dot in the domain (which is still resolved and judged).",
        "send with a valid envelope sender address instead of '{mail_from}'",
    ),
    Symbol(
        "RL_MAILFROM_SPECIAL_USE",
        Family.MAILFROM,
        4.0,
        "The MAIL FROM domain is special-use "
        "(.invalid, .test, .example, .local, single label, ...).",
        "Hard: such domains can never receive replies or bounces (RFC 6761, RFC 2606).",
        "send with an envelope sender under a real, registered domain instead of '{domain}'",
    ),
    Symbol(
        "RL_MAILFROM_NXDOMAIN",
        Family.MAILFROM,
        4.0,
        "The MAIL FROM domain does not exist.",
        "Hard: the article's strongest MAIL FROM signal; bounces to it are impossible.",
        "use an envelope sender domain that exists in DNS (not '{domain}'), or point its "
        "CNAME at a name that does",
    ),
    Symbol(
        "RL_MAILFROM_NO_MAIL_HOST",
        Family.MAILFROM,
        3.0,
        "The MAIL FROM domain exists but has neither MX nor A/AAAA (RFC 5321 section 5.1).",
        "Fairly hard: with no MX and no implicit MX, no reply can be delivered.",
        "publish an MX record (or at least an A record) for '{domain}'",
    ),
    Symbol(
        "RL_MAILFROM_NULL_MX",
        Family.MAILFROM,
        3.0,
        "The MAIL FROM domain publishes a null MX (RFC 7505): it accepts no mail.",
        "Fairly hard: RFC 7505 section 4.2 says a domain that takes no mail should not "
        "be used as a sender; bounces cannot reach it. MX records that all name the root "
        "at other preferences (MX 10 .) count too; the evidence quotes them.",
        "remove the null MX from '{domain}' or send from a domain that receives mail",
    ),
    Symbol(
        "RL_MAILFROM_BOGUS_MX",
        Family.MAILFROM,
        2.5,
        "Every MX target of the MAIL FROM domain (without MX: the domain itself) is an IP "
        "literal, unresolvable, or resolves only to loopback/private/reserved addresses; "
        "or the sender is at such an address literal (user@[10.0.0.1]).",
        "Moderate to hard: replies cannot be delivered, a common mark of throwaway domains.",
        "give '{domain}' mail hosts at public addresses: MX records naming hosts with "
        "public A/AAAA records (without MX, the domain's own A/AAAA is its mail host)",
    ),
    Symbol(
        "RL_MAILFROM_TEMPFAIL",
        Family.MAILFROM,
        0.0,
        "The MAIL FROM domain could not be checked because of a DNS failure "
        "(or every MX target looked up is unusable but more than max_mx_hosts exist).",
        "Zero: a DNS failure is never evidence against the sender.",
        "for a failed lookup the evidence names (timeout, servfail, ...): make that zone "
        "('{domain}', or an MX host's) answer from reachable, working nameservers (a CNAME "
        "loop, or a chain too long: correct those records); for MX "
        "targets not checked (max_mx_hosts), nothing failed: this service resolves only the "
        "first [dns] max_mx_hosts of them (raise it here to judge more), or the sender "
        "publishes fewer",
    ),
    Symbol(
        "RL_SCORER_FAIL",
        Family.PLUGIN,
        0.0,
        "The plugin could not get an answer from the scorer service (fail-open).",
        "Zero: our failure must never cost a message anything.",
        "nothing for the sender; check the scorer service and its logs",
    ),
    Symbol(
        "RL_SCORER_UNKNOWN",
        Family.PLUGIN,
        0.0,
        "The service returned a symbol the plugin cannot score: in rspamd one it does not "
        "know (version skew), in SpamAssassin a malformed or reserved name.",
        "Zero: such names are reported as evidence, never scored. (SpamAssassin scores a "
        "well-formed new RL_* name at the service's weight; rspamd cannot.)",
        "nothing for the sender; update the plugin to match the service",
    ),
)

SYMBOLS: MappingProxyType[str, Symbol] = MappingProxyType({s.name: s for s in _TABLE})
"""All symbols by name, in table order."""


def reports_a_failure(name: str) -> bool:
    """Whether symbol ``name`` says that a check could not be made (a DNS failure, a
    limit reached: the ``*_TEMPFAIL`` symbols), which says nothing about the sender."""
    return name.endswith("_TEMPFAIL")


def default_weights() -> dict[str, float]:
    return {s.name: s.weight for s in SYMBOLS.values() if s.family is not Family.PLUGIN}


def markdown_table() -> str:
    """The symbol table as Markdown; docs/symbols.md embeds exactly this (a test checks)."""
    rows = [
        "| Symbol | Family | Default weight | Meaning | Why this weight |",
        "|---|---|---:|---|---|",
    ]
    rows += [
        f"| `{s.name}` | {s.family} | {s.weight:g} | {s.description} | {s.reason} |"
        for s in SYMBOLS.values()
    ]
    return "\n".join(rows) + "\n"
