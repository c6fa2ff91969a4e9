"""Decide whether a PTR name is a generic (provider-assigned, per-address) name.

Decision, in order:

1. Unusable hostname, or a name under in-addr.arpa/ip6.arpa (the reverse tree's own
   naming: a PTR written without its final dot) -> legit (nothing to judge; never raises).
2. Forward-confirmed name under a known large-sender suffix -> legit ("provider").
3. The client address spelled out in full (any encoding) -> generic, 0.85 (+ keywords);
   in an ambiguous form (unpadded concatenation, an EUI-64 id without its /64) only
   with a keyword, 0.8 (+).
4. Part of the address (two or three octets joined by separators, or the IPv6 /64)
   together with a strong keyword -> generic, 0.6-0.7; three octets with a digit-heavy
   shape and no keyword -> 0.5.
5. A strong keyword together with a digit-heavy shape -> generic, 0.45-0.5.
6. Anything else -> legit.

Weak keywords (``static``, ``users``...: keywords.WEAK_KEYWORDS) count only in step 3
next to an unambiguous form, and in step 4 when the partial match zero-pads an octet
(``tmo-097-69.customers``).

A keyword alone, a digit-heavy name alone, or two matching octets alone are all common in
legit server names (``dsl.example.net``, ``mail-db5eur01on2100``, ``a27-12.smtp-out``), so
none of them decides on its own. See docs/generic-ptr.md.
"""

from __future__ import annotations

import re
from ipaddress import IPv4Address, IPv6Address

from scorer.generic.encodings import EncodingMatch, Strength, find_encodings
from scorer.generic.hostparts import normalize_hostname, split_host, tokenise_labels
from scorer.generic.keywords import digit_shape, find_keywords
from scorer.generic.providers import PROVIDERS_VERSION, find_provider
from scorer.generic.verdict import GenericEvidence, GenericVerdict, not_generic
from scorer.memo import memoise_short_arg
from scorer.names import in_reverse_tree

#: The whole address is in the name: providers mint such names per address, and a person
#: naming a server essentially never does. Not 1.0 because a few operators do name relays
#: after their address (``smtp-192-0-2-10``); those are legit but indistinguishable here.
FULL_ENCODING_CONFIDENCE = 0.85
#: Whole address in an ambiguous form (unpadded digit concatenation, EUI-64 interface id,
#: which identifies the device rather than the address), with a keyword: without one,
#: ``mail20240115`` from 20.240.1.15 is a date as likely as an address.
WEAK_FULL_ENCODING_CONFIDENCE = 0.8
#: A keyword next to a full encoding removes most of the remaining doubt ...
KEYWORD_BONUS = 0.1
#: ... and a second distinct keyword (``dyn`` + ``pool``) removes the rest.
EXTRA_KEYWORD_BONUS = 0.05
#: Two octets plus a keyword: the two octets could be a coincidence, the keyword could be a
#: server role, but both together are the typical ISP pattern (``host25-171-dynamic``).
PARTIAL_WITH_KEYWORD_CONFIDENCE = 0.6
#: Three octets (or an IPv6 /64) instead of two make coincidence much less likely.
STRONG_PARTIAL_BONUS = 0.05
#: A digit-heavy name on top of partial + keyword.
SHAPE_BONUS = 0.05
#: Three octets plus a digit-heavy name but no keyword (OVH ``ns3181234.ip-51-75-12.eu``).
STRONG_PARTIAL_WITH_SHAPE_CONFIDENCE = 0.5
#: No address at all, but a keyword in a digit-heavy name (Virgin Media ``cpc123456-...``).
#: The weakest positive: just below one half so consumers can tell it from address matches.
KEYWORD_WITH_SHAPE_CONFIDENCE = 0.45


# Pure and frozen in, frozen out; the same clients come back. A PTR name longer than a
# memo key may be (scorer.memo: \DDD escapes, ~1,000 characters) is classified afresh:
# a hostile zone's 8,192 such names held ~11 MB here.
@memoise_short_arg(maxsize=8192, index=1)
def classify(ip: IPv4Address | IPv6Address, hostname: str, confirmed: bool) -> GenericVerdict:
    """Classify ``hostname`` as the PTR name of ``ip``.

    ``confirmed`` tells whether ``hostname`` resolves back to ``ip`` (forward-confirmed);
    only then can the known-provider exemption apply. Garbage input never raises: it yields
    a legit verdict with an ``invalid`` evidence item.
    """
    if not isinstance(ip, (IPv4Address, IPv6Address)):
        return not_generic(GenericEvidence("invalid", f"not an IP address: {ip!r:.80}"))
    name = normalize_hostname(hostname)
    if name is None:
        return not_generic(GenericEvidence("invalid", f"not a usable hostname: {hostname!r:.80}"))

    if in_reverse_tree(name):
        # The address spelled there is the reverse tree's own naming, no provider's: the
        # PTR checks say what is wrong with such a name (a missing final dot).
        return not_generic(GenericEvidence("reverse-tree", "under in-addr.arpa/ip6.arpa"))

    provider = find_provider(name)
    if provider is not None and confirmed:
        detail = (
            f"confirmed name under {provider.suffix} ({provider.operator}), "
            f"providers {PROVIDERS_VERSION}"
        )
        return not_generic(GenericEvidence("provider", detail))

    parts = split_host(name)
    encodings = find_encodings(ip, parts.address_region)
    tokenised = tokenise_labels(parts.labels)
    found = find_keywords(tokenised)
    # Weak keywords count only next to the whole address in an unambiguous form
    # (keywords.WEAK_KEYWORDS; not an ambiguous one: "mail20240115.users" is a date as
    # likely as 20.240.1.15), or next to part of it written by an address generator:
    # T-Mobile DE's mobile names tmo-097-69.customers.d1-online.com are two octets, the
    # first as %03d, beside the weak "customers"; a relay numbered after its octets
    # (m28-100.customers) pads none.
    full = any(match.strength.is_full for match in encodings)
    generated = any(match.strength is Strength.FULL or match.zero_padded for match in encodings)
    keywords = found.found if generated else found.strong
    shape = digit_shape(tokenised)
    if shape is not None and not keywords:
        shape = _shape_besides_partial(parts.ascii_host, encodings, shape)
    confidence = _confidence(encodings, keywords, shape)

    evidence = [match.evidence for match in encodings] + keywords
    if shape is not None and not full:
        evidence.append(shape)  # with a full encoding the digits are just the address
    if provider is not None:
        detail = f"{provider.suffix} ({provider.operator}) not exempt: name not forward-confirmed"
        evidence.append(GenericEvidence("provider-unconfirmed", detail))
    return GenericVerdict(generic=confidence > 0.0, confidence=confidence, evidence=tuple(evidence))


def _shape_besides_partial(
    host: str, encodings: list[EncodingMatch], shape: GenericEvidence
) -> GenericEvidence | None:
    """The digit shape of ``host`` once the text of partial matches is taken out.

    Without a keyword, "three octets + digit-heavy" must mean digits *besides* the octets:
    otherwise ``2a02-8108-1234-5600.mail`` or ``mail-51-75-12`` would support themselves.
    The text is taken out only where it is whole numbers: in ``vps-151-75-123`` the
    ``51-75-12`` is part of other numbers, whose digits count.
    """
    partial = [match.matched for match in encodings if not match.strength.is_full]
    if not partial:
        return shape
    for text in partial:
        host = re.sub(rf"(?<![0-9]){re.escape(text)}(?![0-9])", ".", host)
    return digit_shape(tokenise_labels(host.split(".")))


def _keyword_bonus(keywords: list[GenericEvidence]) -> float:
    """Bonus for keywords next to an address encoding."""
    if not keywords:
        return 0.0
    return KEYWORD_BONUS + (EXTRA_KEYWORD_BONUS if len(keywords) > 1 else 0.0)


def _confidence(
    encodings: list[EncodingMatch],
    keywords: list[GenericEvidence],
    shape: GenericEvidence | None,
) -> float:
    """Combine the evidence into a confidence; 0.0 means not generic."""
    strengths = {match.strength for match in encodings}
    if Strength.FULL in strengths:
        score = FULL_ENCODING_CONFIDENCE + _keyword_bonus(keywords)
    elif Strength.WEAK_FULL in strengths and keywords:
        score = WEAK_FULL_ENCODING_CONFIDENCE + _keyword_bonus(keywords)
    elif strengths and keywords:
        score = PARTIAL_WITH_KEYWORD_CONFIDENCE
        score += STRONG_PARTIAL_BONUS if Strength.PARTIAL_STRONG in strengths else 0.0
        score += SHAPE_BONUS if shape is not None else 0.0
    elif Strength.PARTIAL_STRONG in strengths and shape is not None:
        score = STRONG_PARTIAL_WITH_SHAPE_CONFIDENCE
    elif keywords and shape is not None:
        score = KEYWORD_WITH_SHAPE_CONFIDENCE
        score += EXTRA_KEYWORD_BONUS if len(keywords) > 1 else 0.0
    else:
        return 0.0
    # Rounded so sums like 0.85 + 0.1 + 0.05 print and compare as 1.0.
    return min(1.0, round(score, 4))
