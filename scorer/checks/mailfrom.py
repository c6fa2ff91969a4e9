"""MAIL FROM (envelope sender) checks.

The null sender ``<>`` skips everything: bounces must flow (RFC 5321 section
4.5.5). A domain receives mail if it has MX records, or else an A/AAAA record
(the implicit MX of RFC 5321 section 5.1); a lone ``0 .`` MX is RFC 7505's
declaration that it takes no mail.
"""

from __future__ import annotations

import enum
import re
from dataclasses import field
from typing import NamedTuple

import email_validator

from scorer.checks.addresses import (
    AddressFacts,
    has_public_host,
    only_non_public,
    unresolved,
)
from scorer.checks.hit import Hit
from scorer.dns.outcomes import (
    Answer,
    Lookup,
    MxRecord,
    NotFound,
    NotFoundKind,
    TempFail,
    describe,
)
from scorer.memo import memoise_short_arg
from scorer.names import (
    MAX_NAME_OCTETS,
    IPAddress,
    address_literal,
    address_named,
    hostname_problem,
    is_public_host,
    literal_address,
    non_public_suffix,
    plain_snums,
    shown_name,
    to_ascii,
    u_label_of,
    unmapped,
)
from scorer.records import record
from scorer.text import JOINERS, has_unsafe, option, option_naming, unsafe_reason


class SenderKind(enum.StrEnum):
    NULL = "null"
    BAD_SYNTAX = "bad-syntax"
    SPECIAL_USE = "special-use"
    LITERAL = "literal"  # user@[192.0.2.1]: valid syntax, nothing to resolve
    DOMAIN = "domain"  # a public domain: worth resolving


class Sender(NamedTuple):
    raw: str
    kind: SenderKind
    domain: str = ""  # A-label form; for LITERAL the bracketed literal, "[192.0.2.1]"
    problem: str = ""
    address: IPAddress | None = None  # for LITERAL, as email-validator read it


# The everyday sender, recognised without email-validator (~100 us a call, most of
# a never-seen sender's cost): an RFC 5321 section 4.1.2 Dot-string local part of
# RFC 5322 section 3.2.3 atext, "@", and two or more RFC 1123 section 2.1 LDH labels,
# the last ending in a letter (every TLD does). Anything else, including every
# "--" label (A-labels need IDNA checks), quoting and non-ASCII, takes the full path.
# tests/test_mailfrom_checks.py checks this agrees with email-validator.
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_TLD = r"(?:[A-Za-z0-9][A-Za-z0-9-]{0,61})?[A-Za-z]"
_PLAIN_ADDRESS = re.compile(rf"(?:{_ATOM}(?:\.{_ATOM})*)@((?:{_LABEL}\.)+{_TLD})\Z")
_MAX_PLAIN_LOCAL = 64  # RFC 5321 section 4.5.3.1.1
_MAX_ADDRESS = 254  # RFC 5321 section 4.5.3.1.3 (256 with the angle brackets)


def plain_sender_domain(address: str) -> str | None:
    """The lower-case domain of a plain ASCII ``local@domain`` address, or None when
    ``address`` needs email-validator to decide (or is invalid)."""
    if len(address) > _MAX_ADDRESS:
        return None
    match = _PLAIN_ADDRESS.match(address)
    if match is None:
        return None
    domain = match.group(1).lower()
    if (
        len(address) - len(domain) - 1 > _MAX_PLAIN_LOCAL
        or len(domain) > MAX_NAME_OCTETS
        or "--" in domain
        # Each of them a top-level label (arpa, invalid, local, localhost, onion, test:
        # tests/test_mailfrom_checks.py), so the domain's own is the one to look for.
        or domain.rpartition(".")[2] in email_validator.SPECIAL_USE_DOMAIN_NAMES
    ):
        return None
    return domain


def named_domain(address: str) -> str | None:
    """The name after the last "@" of ``address`` (a mailbox: ``envelope_address``) in
    lower-case A-labels, one final dot dropped (to_ascii), if it can be a hostname as it
    stands; None without an "@", for an address literal, or for what no hostname is.
    Syntax alone: whether the address around it is valid is parse_sender's to say."""
    _, at, domain_part = address.rpartition("@")
    domain = to_ascii(domain_part) if at else None
    return domain if domain is not None and hostname_problem(domain) is None else None


# Local parts RFC 5321 refuses but real mail carries and Postfix accepts: dots
# anywhere (Japanese carriers issued taro..x@ and taro.@ addresses for years). And
# every Quoted-string RFC 5321 allows (section 4.1.2: Quoted-string = DQUOTE
# *QcontentSMTP DQUOTE, QcontentSMTP = qtextSMTP / quoted-pairSMTP, qtextSMTP =
# %d32-33 / %d35-91 / %d93-126, quoted-pairSMTP = "\" %d32-126; RFC 6531 section 3.3
# adds UTF8-non-ascii to qtextSMTP): the empty one, which email-validator refuses, and
# any other, so "john doe"@ is spared with a tolerated domain as john@ is. (Controls
# never get here: parse_sender refuses them first.)
_QUOTED_STRING = r'"(?:[ !#-\[\]-~\u0080-\U0010ffff]|\\[ -~])*"'
_LENIENT_LOCAL = re.compile(
    rf"(?:[A-Za-z0-9!#$%&'*+/=?^_`{{|}}~.\-\u0080-\U0010ffff]+|{_QUOTED_STRING})\Z"
)


def _tolerated_domain(address: str) -> str | None:
    """The domain of an address email-validator refused for what is sloppy rather than
    hostile, or None: such a local part (or any RFC 5321 Quoted-string), or a domain
    the HELO check tolerates too (an underscore, an "ab--" label IDNA reserves, a final
    dot, a symbol IDNA2008 disallows and UTS46 allows: an emoji, names.to_ascii),
    with a local part of either kind. The domain is still
    resolved and judged; only the syntax penalty (RL_MAILFROM_BAD_SYNTAX) is spared.

    Not the length: RFC 5321 section 4.5.3.1.3 counts octets, those of the UTF-8 an
    SMTPUTF8 client sends (RFC 6531 section 3.3) and, as email-validator counts them
    too, those of the address with its domain in A-labels (RFC 5890 section 2.3.2.1).
    """
    local, at, domain_part = address.rpartition("@")
    if not at or not _LENIENT_LOCAL.match(local):
        return None
    domain = named_domain(address)
    if domain is None:
        return None
    octets = len(local.encode()) + 1 + max(len(domain_part.encode()), len(domain))
    if octets > _MAX_ADDRESS:
        return None
    return None if non_public_suffix(domain) is not None else domain


def _holds_joiner(a_label: str) -> bool:
    """Whether the U-label that ``a_label`` (an "xn--" label ``to_ascii`` gave) stands for
    holds ZWNJ or ZWJ."""
    u_label = u_label_of(a_label)  # decoded once: to_ascii has judged it already
    return u_label is not None and any(joiner in u_label for joiner in JOINERS)


def _joiners_stood_in(address: str) -> tuple[str, str | None]:
    """``address`` as email-validator is to judge it, and its domain in A-labels when that
    holds a joiner (ZWNJ, ZWJ) IDNA allowed (``to_ascii``), else None.

    email-validator refuses every format character in a domain, in U-labels or decoded
    from A-labels ("unsafe characters"); RFC 5892 appendix A.1/A.2 allow these two in
    context, and they are how Persian and Sinhala names are spelt. IDNA has judged the
    labels that hold one: email-validator judges the rest of the address, with each such
    label written as ASCII letters as long as its A-label (RFC 5890 section 2.3.2.1).
    """
    local, at, domain_part = address.rpartition("@")
    if not at or not ("xn--" in domain_part.lower() or any(j in domain_part for j in JOINERS)):
        return address, None  # the common case, kept cheap
    domain = to_ascii(domain_part)
    if domain is None:
        return address, None  # IDNA refused it: so does email-validator, saying why
    labels = domain.split(".")
    joined = [label.startswith("xn--") and _holds_joiner(label) for label in labels]
    if not any(joined):
        return address, None
    stand_in = (
        "x" * len(label) if holds else label for label, holds in zip(labels, joined, strict=True)
    )
    return f"{local}@{'.'.join(stand_in)}", domain


# RFC 5321 section 4.1.2: Path = "<" [ A-d-l ":" ] Mailbox ">", where the source
# route A-d-l is At-domain *( "," At-domain ) and At-domain = "@" Domain: an ASCII
# name or an address literal of printable dcontent (section 4.1.3). Anything else
# (control characters included) is left in place, for the syntax check to refuse.
_AT_DOMAIN = r"@(?:\[[!-Z^-~]*\]|[A-Za-z0-9._-]+)"
_SOURCE_ROUTE = re.compile(rf"{_AT_DOMAIN}(?:,{_AT_DOMAIN})*:")


def envelope_address(raw: str) -> str:
    """The mailbox of a MAIL FROM argument: without surrounding spaces, its angle
    brackets and a source route.

    Only spaces, as for HELO: str.strip() would also take CR/LF, \x1c or U+2028 off
    the ends, so "user@x.com\r\n" would pass as clean and "\r\n" as the null sender.
    A source route (``<@relay.example:user@example.org>``) is obsolete, but servers
    "MUST continue to accept" it and may ignore it (RFC 5321 appendix C): we do.
    """
    address = raw.strip(" ")
    if address.startswith("<") and address.endswith(">"):
        address = address[1:-1]
    if address.startswith("@"):
        route = _SOURCE_ROUTE.match(address)
        if route is not None and route.end() < len(address):  # a route alone is no sender
            return address[route.end() :]
    return address


# qmail sends a double bounce (a bounce that bounced) from "#@[]" (qmail-send(8)): its
# spelling of the null sender, with no address to reply to either, so a bounce as well.
QMAIL_NULL_SENDER = "#@[]"


@memoise_short_arg(maxsize=8192, index=0)  # senders repeat
def parse_sender(raw: str) -> Sender:
    """Classify an envelope sender by syntax alone (email-validator, IDNA, PSL)."""
    address = envelope_address(raw)
    if not address or address == QMAIL_NULL_SENDER:
        return Sender(raw, SenderKind.NULL)
    plain = plain_sender_domain(address)
    if plain is not None:
        # The everyday sender, read at once: printable ASCII, and a domain that is a
        # hostname (named_domain's own) and spells no address (a TLD ends in a letter),
        # so of the checks below only the special-use one can say anything of it.
        special = non_public_suffix(plain)
        if special is not None:
            return Sender(raw, SenderKind.SPECIAL_USE, domain=plain, problem=special)
        return Sender(raw, SenderKind.DOMAIN, domain=plain)
    local, _, domain_part = address.rpartition("@")
    if has_unsafe(local):
        return Sender(raw, SenderKind.BAD_SYNTAX, problem=unsafe_reason(local))
    # A joiner in the domain is IDNA's to judge (scorer.text.JOINERS), in a local part
    # not: no IDNA rule allows it there, and email-validator refuses it.
    if has_unsafe(domain_part, name=True):
        return Sender(raw, SenderKind.BAD_SYNTAX, problem=unsafe_reason(domain_part, name=True))
    if domain_part.startswith("[") and domain_part.endswith("]"):
        # email-validator reads the octets as ipaddress does, refusing "010": hand it
        # the literal (IPv4, or IPv6 ending in IPv4) as RFC 5321 means it.
        address = f"{local}@[{plain_snums(domain_part[1:-1])}]"
    domain = named_domain(address)  # None for a literal: "[" is in no hostname
    if domain is not None:
        # RFC 5321 section 4.1.3: literals are bracketed, and their Snums decimal (a
        # bare 192.0.2.010 is an address too, as a HELO of it is: checks.helo).
        if literal_address(domain) is not None:
            problem = f"a bare address, not a domain (a literal is written [{domain}])"
            return Sender(raw, SenderKind.BAD_SYNTAX, problem=problem)
        special = non_public_suffix(domain)
        if special is not None:
            return Sender(raw, SenderKind.SPECIAL_USE, domain=domain, problem=special)
    return validated_sender(raw, address)


def _validate_email(address: str) -> email_validator.ValidatedEmail:
    """email-validator's verdict on ``address``, with the syntax RFC 5321/6531 allow."""
    return email_validator.validate_email(
        address,
        check_deliverability=False,  # DNS is the lookup stage's job, under our deadline
        allow_smtputf8=True,  # RFC 6531
        allow_quoted_local=True,  # RFC 5321 section 4.1.2 Quoted-string
        allow_domain_literal=True,  # RFC 5321 section 4.1.3
    )


def validated_sender(raw: str, address: str) -> Sender:
    """``address`` judged by email-validator: any syntax RFC 5321/6531 allow."""
    judged, joined_domain = _joiners_stood_in(address)
    try:
        valid = _validate_email(judged)
    except email_validator.EmailNotValidError as error:
        tolerated = _tolerated_domain(address)
        if tolerated is not None:
            return Sender(raw, SenderKind.DOMAIN, domain=tolerated)
        return Sender(raw, SenderKind.BAD_SYNTAX, problem=str(error))
    if joined_domain is not None:
        # The stand-in counted the domain in A-labels; RFC 5321 section 4.5.3.1.3 counts
        # the octets sent too, the UTF-8 of RFC 6531 section 3.3 (as _tolerated_domain).
        excess = len(address.encode()) - _MAX_ADDRESS
        if excess > 0:
            problem = f"The email address is too long ({excess} octets too many in UTF-8)."
            return Sender(raw, SenderKind.BAD_SYNTAX, problem=problem)
        return Sender(raw, SenderKind.DOMAIN, domain=joined_domain)
    literal: IPAddress | None = getattr(valid, "domain_address", None)  # only for [literal]s
    if literal is not None:
        # Written by us, not by ipaddress as email-validator does: the same on every Python.
        return Sender(raw, SenderKind.LITERAL, domain=address_literal(literal), address=literal)
    return Sender(raw, SenderKind.DOMAIN, domain=valid.ascii_domain.lower())


@record
class MailFromFacts:
    sender: Sender
    mx: Lookup[MxRecord] | None = None
    implicit_mx: AddressFacts | None = None  # resolved only when there is no MX
    # By preference: at most max_mx_hosts that name a host, and every one spelling an address.
    targets: dict[str, AddressFacts] = field(default_factory=dict)
    unchecked_hosts: int = 0  # MX targets naming a host beyond max_mx_hosts, never looked up


def mail_hosts(mx: Answer[MxRecord]) -> list[str]:
    """The MX targets, by preference (the order RFC 5321 section 5.1 tries them in), once
    each; the caller bounds how many it resolves, so a hostile zone can't fan us out."""
    records = sorted(mx.records, key=lambda r: (r.preference, r.exchange))
    return list(dict.fromkeys(r.exchange for r in records if not r.is_null))


def is_null_mx(mx: Answer[MxRecord]) -> bool:
    """RFC 7505 section 3: a single MX of preference 0 with the root as exchange. Or
    several that all name the root: no host to deliver to either."""
    return all(record.is_null for record in mx.records)


def has_global_address(outcome: Answer[IPAddress]) -> bool:
    """An MX host is usable only at a public address (not loopback/private/reserved, nor
    multicast: names.is_public_host)."""
    return has_public_host(outcome.records)


def _bogus_reason(target: str, facts: AddressFacts) -> str | None:
    """Why an MX target cannot receive mail, or None if it can (or we can't tell)."""
    # RFC 5321 section 5.1: an MX names a host; an address there (its Snums decimal,
    # section 4.1.3: 192.0.2.010 is one too) names none, whatever a lookup of it says.
    if address_named(target) is not None:
        return "IP literal as MX"
    if facts.failed:
        return None
    addresses = facts.addresses
    if not addresses:
        return unresolved("does not resolve", facts)
    if not has_public_host(addresses):
        return only_non_public(addresses)
    return None


# What the evidence says of root MX records other than RFC 7505 section 3's lone "0 .".
NOT_NULL_MX_TO_THE_LETTER = "names no host, RFC 7505's null MX is a lone MX 0 ."


def _subject(domain: str) -> str:
    """The evidence every hit on a domain leads with: the domain resolved, and its
    U-labels if any. Worked out only for a hit: most senders have none."""
    return option(f"domain={shown_name(domain)}")


def _check_mx(
    domain: str, mx: Answer[MxRecord], targets: dict[str, AddressFacts], unchecked: int
) -> Hit | None:
    if is_null_mx(mx):
        # The records as published: "MX 10 ." is no null MX to the letter of RFC 7505
        # section 3 (preference 0), but names no host either, and says why.
        # By preference, as RFC 5321 section 5.1 orders them (as numbers: 9 before 10).
        by_preference = sorted(record.preference for record in mx.records)
        published = ", ".join(f"MX {preference} ." for preference in by_preference)
        why = "RFC 7505" if by_preference == [0] else NOT_NULL_MX_TO_THE_LETTER
        return Hit("RL_MAILFROM_NULL_MX", (_subject(domain), f"{published} ({why})"))
    reasons = {name: _bogus_reason(name, facts) for name, facts in targets.items()}
    # Usable: a public address, whatever the other family's lookup did (an A that timed
    # out beside a public AAAA still leaves a host to deliver to). No reason for a host
    # whose lookups did not fail is a public address found (_bogus_reason).
    usable = (
        r is None and (not targets[n].failed or has_public_host(targets[n].addresses))
        for n, r in reasons.items()
    )
    if not reasons or any(usable):
        return None  # at least one usable mail host (or none to judge)
    subject = _subject(domain)
    evidence = [option_naming(f"MX {name}", f": {r}") for name, r in reasons.items() if r]
    # Hosts whose lookups failed might have been usable: named, with what failed.
    evidence += [
        option_naming(f"MX {name}", f" {failure}")
        for name, facts in targets.items()
        if reasons[name] is None
        for failure in facts.failures()
    ]
    if unchecked:
        # A host never looked up may take the bounce (it is tried next): unknown is not
        # bogus, as a PTR name beyond max_ptr_names is not unconfirmed (checks.ptr).
        more = f"{unchecked} more MX targets not checked (max_mx_hosts)"
        return Hit("RL_MAILFROM_TEMPFAIL", (subject, *evidence, more))
    if all(reasons.values()):
        return Hit("RL_MAILFROM_BOGUS_MX", (subject, *evidence))
    return Hit("RL_MAILFROM_TEMPFAIL", (subject, *evidence))


def _check_implicit(
    domain: str, mx: Lookup[MxRecord] | None, implicit: AddressFacts | None
) -> Hit | None:
    if implicit is None or mx is None:  # implicit: asked only after an MX NODATA (lookups)
        return None
    addresses = implicit.addresses
    # RFC 5321 section 5.1: the domain's own address is then its mail host, judged
    # like any MX target (10.0.0.5 or 127.0.0.1 cannot receive a reply).
    reason = _bogus_reason(domain, implicit) if addresses else None
    if reason is None and has_public_host(addresses):
        return None  # a usable mail host: the usual case
    subject = _subject(domain)
    # The CNAME target a "no" can name comes from DNS: escaped and capped like any evidence.
    no_mx = option(f"no MX ({describe(mx)})")
    if reason:
        return Hit("RL_MAILFROM_BOGUS_MX", (subject, no_mx, f"implicit MX: {reason}"))
    if implicit.failed:
        # Only internal addresses so far (named, so the admin sees why the failure
        # mattered), and the other family's lookup failed: it might have been public.
        # Unknown, and said so rather than nothing.
        found = [only_non_public(addresses)] if addresses else []
        failures = map(option, implicit.failures())
        return Hit("RL_MAILFROM_TEMPFAIL", (subject, no_mx, *found, *failures))
    # Escaped and capped as no_mx: the CNAME target a "no" ends at is the DNS's words.
    no_address = option(unresolved("no A/AAAA", implicit))
    return Hit("RL_MAILFROM_NO_MAIL_HOST", (subject, no_mx, no_address))


def _literal_hit(subject: str, literal: IPAddress | None) -> Hit | None:
    """RFC 5321 section 4.1.3: a reply to user@[address] goes to that address itself, so
    one that is not public (loopback, private, reserved, multicast) cannot receive it, as the
    same address behind an MX could not (``_bogus_reason``)."""
    if literal is None:
        return None
    address = unmapped(literal)
    if is_public_host(address):
        return None
    return Hit("RL_MAILFROM_BOGUS_MX", (subject, f"address literal: non-public address {address}"))


def _special_use(sender: Sender) -> str:
    """Why a special-use sender domain is one (``names.non_public_suffix``'s word for it):
    ``domain under .local``, or, for ``user@localhost``, a name under no TLD at all."""
    if sender.problem.startswith("."):
        return f"domain under {sender.problem}"
    return f"a domain of a {sender.problem}, under no top-level domain"


def _sender_hits(sender: Sender) -> list[Hit]:
    """The hits of a sender with no domain to resolve: by its syntax alone."""
    match sender.kind:
        case SenderKind.BAD_SYNTAX:
            evidence = option(f"from={sender.raw}")
            return [Hit("RL_MAILFROM_BAD_SYNTAX", (evidence, option(sender.problem)))]
        case SenderKind.SPECIAL_USE:
            evidence = option(f"from={sender.raw}")
            return [Hit("RL_MAILFROM_SPECIAL_USE", (evidence, option(_special_use(sender))))]
        case SenderKind.LITERAL:
            literal = _literal_hit(option(f"domain={sender.domain}"), sender.address)
            return [literal] if literal else []
    return []  # the null sender


def check_mail_from(facts: MailFromFacts) -> list[Hit]:
    sender = facts.sender
    if sender.kind is not SenderKind.DOMAIN:
        return _sender_hits(sender)
    domain, mx = sender.domain, facts.mx
    if isinstance(mx, TempFail):
        return [Hit("RL_MAILFROM_TEMPFAIL", (_subject(domain), option(f"MX: {describe(mx)}")))]
    if isinstance(mx, NotFound) and mx.kind is NotFoundKind.NXDOMAIN:
        return [Hit("RL_MAILFROM_NXDOMAIN", (_subject(domain), option(f"MX: {describe(mx)}")))]
    hit = (
        _check_mx(domain, mx, facts.targets, facts.unchecked_hosts)
        if isinstance(mx, Answer)
        else None
    )
    hit = hit or _check_implicit(domain, mx, facts.implicit_mx)
    return [hit] if hit else []
