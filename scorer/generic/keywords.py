"""Keywords and name shape that mark provider-assigned (generic) host parts.

Keywords are matched as whole tokens of the host part's labels (see
:func:`scorer.generic.hostparts.tokenise_labels`), never as substrings and never in the
registered domain: ``mail.dynamic-solutions.com`` and ``mx.cablelabs.com`` stay legit.
A keyword on its own is weak evidence (``dsl.example.net`` may be a real server); the
classifier only combines it with an address encoding or a digit-heavy shape.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import NamedTuple

from scorer.generic.hostparts import tokenise_labels
from scorer.generic.verdict import GenericEvidence

#: A host-part label with its tokens, as produced by
#: :func:`scorer.generic.hostparts.tokenise_labels` (tokenised once per classification).
TokenisedLabel = tuple[str, list[str]]

#: Tokens that access and hosting providers put in names they assign to whole ranges.
#: Sources: rspamd hfilter's dynamic-name patterns, SpamAssassin's RDNS_DYNAMIC/HELO_DYNAMIC
#: rules, and the naming schemes of the providers listed in tests/data/generic_ptr.tsv.
KEYWORDS: frozenset[str] = frozenset(
    {
        # dynamic assignment
        "dyn", "dynamic", "dynamicip", "dynip", "dhcp", "pool", "pools", "dip",
        # access technologies
        "dsl", "adsl", "vdsl", "xdsl", "sdsl", "hdsl", "dslb", "cable", "modemcable",
        "ppp", "pppoe", "pppoa", "dial", "dialup", "dialin", "ftth", "fttx", "fttb", "fttc",
        "fttp", "broadband", "broad", "hsd", "fios", "bb", "ipoe",
        # mobile data: carriers name their subscribers' (often carrier-NAT) addresses so
        "mobile", "wireless", "gprs", "umts", "lte", "hsdpa", "hspa", "wimax",
        # subscriber / customer equipment
        "cpe", "cpc", "client", "clients", "customer", "customers", "cust", "subscriber",
        "user", "users", "res", "resid", "residential", "retail", "abo",
        # static customer addresses: "static-ip", "ip-static", "static.1.2.3.4.clients"
        "static", "staticip", "ipstatic",
    }
)  # fmt: skip

#: Keywords that also name static or business lines, or are everyday words in server
#: names (``mx-2-25.users.example.org``, ``smtp-7f3a9c2e.static.example.net``): they add
#: to the whole address spelled out, but support neither part of it nor a digit-heavy
#: shape. (No row of tests/data/generic_ptr.tsv needs them to.)
WEAK_KEYWORDS: frozenset[str] = frozenset(
    {
        "static", "staticip", "ipstatic", "client", "clients", "customer", "customers",
        "cust", "subscriber", "user", "users", "res", "resid", "retail", "bb", "broad",
    }
)  # fmt: skip


class Keywords(NamedTuple):
    """The keywords of a host part: all of them, and those not in WEAK_KEYWORDS."""

    found: list[GenericEvidence]
    strong: list[GenericEvidence]


#: Digit-heavy shape thresholds. Per-address names carry octets, line ids or counters
#: (``cpc123456-live18-2-0-cust123``); named servers rarely carry more than a short index
#: (``mx2``, ``smtp10``, ``mail-sor-f41``). Six digits or four separate digit runs in the
#: host part is where the two populations in the corpus separate.
SHAPE_MIN_DIGITS = 6
SHAPE_MIN_DIGIT_RUNS = 4


def find_keywords(labels: Sequence[TokenisedLabel]) -> Keywords:
    """One evidence item per distinct keyword found in the host-part ``labels``."""
    found: dict[str, GenericEvidence] = {}
    for label, tokens in labels:
        for token in tokens:
            if token in KEYWORDS and token not in found:
                detail = f"keyword '{token}' in label '{label}'"
                found[token] = GenericEvidence("keyword", detail)
    strong = [evidence for token, evidence in found.items() if token not in WEAK_KEYWORDS]
    return Keywords(list(found.values()), strong)


#: A random id between separators (``mta-7f3a9c2e``, a MAC address's ``0a1b2c3d4e5f``):
#: eight or more hex digits, letters and digits mixed. Its digit runs are no octets, line
#: ids or counters, yet split at every letter they made four "digit groups" or more in 41 %
#: of 8-digit ids and 93 % of 12-digit ones: with a strong keyword beside them
#: (``mta-7f3a9c2e.pool.example-esp.com``) a named server scored generic.
_HEX_ID = re.compile(r"(?=[0-9a-f]*[a-f])(?=[0-9a-f]*[0-9])[0-9a-f]{8,}")
_HEX_ID_IN = re.compile(rf"(?:^|[-_])(?:{_HEX_ID.pattern})(?:$|[-_])")
_SEPARATORS = re.compile(r"[-_]")


def _counted_tokens(label: str, tokens: list[str]) -> list[str]:
    """``tokens`` of ``label`` but those of its hex ids."""
    if not _HEX_ID_IN.search(label):
        return tokens
    chunks = [chunk for chunk in _SEPARATORS.split(label) if not _HEX_ID.fullmatch(chunk)]
    return [token for _chunk, chunk_tokens in tokenise_labels(chunks) for token in chunk_tokens]


def digit_shape(labels: Sequence[TokenisedLabel]) -> GenericEvidence | None:
    """Return shape evidence if the host part is digit-heavy, else None."""
    digits = 0
    runs = 0
    for label, tokens in labels:
        for token in _counted_tokens(label, tokens):
            if token.isdigit():
                digits += len(token)
                runs += 1
    if digits >= SHAPE_MIN_DIGITS or runs >= SHAPE_MIN_DIGIT_RUNS:
        detail = f"digit-heavy host part: {digits} digits, {runs} digit groups"
        return GenericEvidence("shape", detail)
    return None
