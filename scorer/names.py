"""Hostname syntax and the public/non-public split, shared by the HELO and MAIL FROM checks.

Rules cite: RFC 1035 section 2.3.4 (63-octet labels, 255-octet names),
RFC 1123 section 2.1 (labels may start with a digit), RFC 5321 section 4.1.2
(``Domain = sub-domain *("." sub-domain)``, LDH only), RFC 6761 / RFC 2606 /
RFC 6762 / RFC 7686 / RFC 3172 / RFC 8375 / RFC 9476 / ICANN's ``.internal`` for
names that are never public.
"""

from __future__ import annotations

import functools
import ipaddress
import re
import socket
from collections.abc import Iterator

# idna.uts46data now, not where idna imports it, on the first non-ASCII name of a check:
# a module read from disk mid-check failed with EMFILE in a process out of file
# descriptors (a 500).
import idna
import idna.uts46data
from idna.intranges import intranges_contain
from publicsuffixlist import PSLFILE, PublicSuffixList

from scorer.memo import memoise
from scorer.text import JOINERS

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

MAX_NAME_OCTETS = 253  # RFC 1035 section 2.3.4: 255 on the wire, less a length octet and the root
MAX_LABEL_OCTETS = 63

# Special-use and private-use names that can never identify a public host
# (RFC 6761 section 6, RFC 2606 sections 2-3, RFC 6762 .local, RFC 7686 .onion,
# RFC 3172 .arpa, RFC 8375 home.arpa, RFC 9476 .alt, ICANN .internal), plus suffixes
# that routers and OS installers invent and that are not in the Public Suffix List.
NON_PUBLIC_SUFFIXES = frozenset(
    {
        "invalid",
        "test",
        "example",
        "example.com",
        "example.net",
        "example.org",
        "localhost",
        "local",
        "onion",
        "alt",
        "arpa",
        "home.arpa",
        "internal",
        "lan",
        "localdomain",
        "corp",
        "home",
        "intranet",
        "private",
    }
)

# RFC 6761 section 6.3 reserves "localhost." and the names under it for loopback; the
# rest are the names distributions put in /etc/hosts for loopback, which misconfigured
# MTAs greet with and some hosters write as the PTR of an address they have not given out.
_LOCALHOST_NAMES = frozenset(
    {"localhost", "localhost.localdomain", "localhost4", "localhost6", "ip6-localhost",
     "ip6-loopback", "localhost4.localdomain4", "localhost6.localdomain6"}
)  # fmt: skip


def is_localhost_name(ascii_name: str) -> bool:
    """Whether ``ascii_name`` names the loopback host (RFC 6761 section 6.3, hosts
    files) rather than a host of its own; ``localhost.example.net`` too, where RFC 1912
    section 4.1 has a zone give localhost.DOMAIN the address 127.0.0.1."""
    return (
        ascii_name in _LOCALHOST_NAMES
        or ascii_name.endswith(".localhost")
        or ascii_name.startswith("localhost.")
    )


# How many labels a NON_PUBLIC_SUFFIXES entry has, the most first.
_NON_PUBLIC_DEPTHS = range(max(suffix.count(".") for suffix in NON_PUBLIC_SUFFIXES) + 1, 0, -1)

# Letters, digits and inner hyphens (RFC 1123 section 2.1), plus the underscore
# anywhere, as Postfix's valid_hostname() allows: Windows hosts named "mail_1"
# greet with it. That is sloppy, not hostile, and the name still has to resolve.
# Ended by \Z, not "$", which also matches before a final newline.
_LABEL_CHARACTERS = r"[a-z0-9_](?:[a-z0-9_-]{inner}[a-z0-9_])?"
_HOST_LABEL = re.compile(_LABEL_CHARACTERS.format(inner="*") + r"\Z")
# A whole name of such labels, each of at most MAX_LABEL_OCTETS: what hostname_problem
# finds no problem with but the name's length, in one search instead of one per label.
_HOST_LABEL_BOUNDED = _LABEL_CHARACTERS.format(inner=f"{{0,{MAX_LABEL_OCTETS - 2}}}")
_HOST_NAME = re.compile(rf"{_HOST_LABEL_BOUNDED}(?:\.{_HOST_LABEL_BOUNDED})*\Z")


@functools.cache
def public_suffix_list() -> PublicSuffixList:
    """The bundled Public Suffix List (ICANN section only), built once for the process.

    Building it takes ~100 ms. Only the ICANN section: whether a name is under a
    public suffix at all is decided by the TLDs it lists, and the generic-name
    classifier needs the registered domain of ``ec2-3-4-5-6.compute-1.amazonaws.com``
    to be ``amazonaws.com`` (the private section would make ``compute-1.amazonaws.com``
    a suffix and hide the customer-assigned part). Nothing is fetched from the network.
    """
    return PublicSuffixList(only_icann=True)


def load_public_suffixes() -> None:
    """Build the list and its rule depths now (~0.1 s), not on the first message."""
    public_suffix_list()
    icann_rule_depths()


# The code points IDNA2008 allows only where a rule of RFC 5892 appendix A says.
_CONTEXTO = idna.idnadata.codepoint_classes["CONTEXTO"]


def _u_label_valid(u_label: str) -> bool:
    """Whether ``u_label`` (mapped by UTS46 already) is a label IDNA accepts: IDNA2008's
    rules (RFC 5891 section 5.4, RFC 5892: NFC, hyphens, no leading combining mark,
    code points, joiners in context, the Bidi rule of RFC 5893), except that a code point
    IDNA2008 disallows yet UTS46 calls valid with UseSTD3ASCIIRules (a symbol: an emoji,
    "NV8" in the UTS46 table, UTS #46 section 5) is let through, as UTS46 lets it: such
    names are registered and resolve (``xn--ls8h.la`` is the pile-of-poo emoji, .la), and
    browsers reach them; scoring them was scoring the sender's taste, and only when
    written in U-labels. STD3 keeps out what no hostname holds: a space, an underscore,
    other ASCII punctuation, or what UTS46 maps to one (a fullwidth low line).
    """
    try:
        idna.check_label(u_label)
        return True
    except idna.InvalidCodepoint:
        pass  # a DISALLOWED code point, after NFC, hyphens and the first mark passed
    except (idna.IDNAError, ValueError):
        return False
    try:
        if idna.uts46_remap(u_label, std3_rules=True) != u_label:
            return False
        # What check_label would have checked after that code point, for every code
        # point (it stops at the first disallowed one): the contextual rules of RFC 5892
        # appendix A, joiners (CONTEXTJ) and the others (CONTEXTO: a middle dot, a
        # katakana middle dot, a Greek keraia...), then Bidi.
        return all(
            idna.valid_contextj(u_label, pos)
            if char in JOINERS
            else idna.valid_contexto(u_label, pos)
            for pos, char in enumerate(u_label)
            if char in JOINERS or intranges_contain(ord(char), _CONTEXTO)
        ) and idna.check_bidi(u_label)
    except (idna.IDNAError, UnicodeError, ValueError):
        return False


def _a_label(u_label: str) -> str | None:
    """The A-label of ``u_label`` (not ASCII, mapped by UTS46), or None if IDNA refuses it."""
    try:
        return idna.alabel(u_label).decode("ascii")
    except idna.InvalidCodepoint:
        if not _u_label_valid(u_label):  # a symbol UTS46 allows (an emoji), or not
            return None
        a_label = "xn--" + u_label.encode("punycode").decode("ascii")
        return a_label if len(a_label) <= MAX_LABEL_OCTETS else None
    except (idna.IDNAError, UnicodeError, ValueError):
        return None


def _is_a_label(label: str) -> bool:
    """Whether ``label`` (ASCII, lower case, starting "xn--") is an A-label: the Punycode
    (RFC 3492) of a U-label IDNA accepts (RFC 5890 section 2.3.2.1), judged as that
    U-label would be (RFC 5891 section 5.4; ``_u_label_valid``), and written as IDNA
    writes it (RFC 5891 section 5.3: no other spelling of the same U-label).

    No A-label is "xn--zz" (no Punycode), "xn--ab" (C1 controls), "xn--1ug" (a ZWJ out
    of context), "xn--abc-" (all ASCII), one UTS46 would map (an upper-case letter, a
    default-ignorable code point it erases), or one longer than a label may be (as
    idna.alabel refuses the U-label of one; and decoding is quadratic in the length):
    in U-labels each is no name either.
    """
    return len(label) <= MAX_LABEL_OCTETS and u_label_of(label) is not None


@functools.lru_cache(maxsize=1024)  # a few IDN domains send most of the mail that has one
def u_label_of(label: str) -> str | None:
    """The U-label that ``label`` (ASCII, lower case, starting "xn--", at most 63 octets)
    is the A-label of (``_is_a_label``), or None if it is none. One decoding, remembered,
    serves both the verdict and whoever then looks inside the U-label."""
    try:
        u_label = label[4:].encode("ascii").decode("punycode")
    except UnicodeError:
        return None
    if u_label.isascii() or "xn--" + u_label.encode("punycode").decode("ascii") != label:
        return None
    try:
        # UTS #46 section 4.1 step 6: every code point valid (or a deviation, kept by
        # nontransitional processing) as it stands, none that the mapping changes.
        if idna.uts46_remap(u_label, std3_rules=False) != u_label:
            return None
    except (idna.IDNAError, UnicodeError, ValueError):
        return None
    return u_label if _u_label_valid(u_label) else None


def shown_name(ascii_name: str) -> str:
    """``ascii_name`` (lower-case A-labels, as ``to_ascii`` gives it) as evidence shows it:
    as it stands, followed by its U-labels when it holds any (``mail.xn--bcher-kva.de
    (mail.bücher.de)``). The A-label is what was resolved and what the admin looks up;
    the U-labels are what the sender wrote or meant (RFC 5890 section 2.3.2.1: one name,
    two forms), and a reader who sees ``例子.广告`` sent knows it from
    ``xn--fsqu00a.xn--4rr70v`` by the U-labels only. The A-label comes first: a confusable
    (``xn--ypal-43d9g.com``, "paypal" spelt with Cyrillic er and a) reads as what it is."""
    if "xn--" not in ascii_name:
        return ascii_name
    labels = [u_label_of(label) or label for label in ascii_name.split(".")]
    unicode = ".".join(labels)
    return ascii_name if unicode == ascii_name else f"{ascii_name} ({unicode})"


def to_ascii(name: str) -> str | None:
    """Lower-case A-label form of ``name`` without a final dot, or None if IDNA rejects it.

    One final dot is the root label, implied. UTS46 (the IDNA2008 mapping, RFC 5895
    section 2) maps the ideographic and fullwidth full stops U+3002, U+FF0E and U+FF61
    to ".": a final one of those is that same root label. Only the labels that are not
    ASCII, and the "xn--" ones, are IDNA's to judge (RFC 5891 sections 4 and 5.4); any
    other ASCII label is left to ``hostname_problem``, as it is in an all-ASCII name:
    one name, in U-labels or in A-labels, gets one verdict (``_is_a_label``).
    """
    if name.isascii():
        ascii_name = (name[:-1] if name.endswith(".") else name).lower()
        if "xn--" in ascii_name and not all(
            _is_a_label(label) for label in ascii_name.split(".") if label.startswith("xn--")
        ):
            return None
        return ascii_name
    return _mapped_to_ascii(name)


# Names that are not ASCII whose A-labels are remembered, text of any length: two per
# check (its HELO and its sender's domain) for max_in_flight's default 256 checks. One
# check asks for the same text up to four times (the HELO by its check and its allowlist
# match, the sender's domain by its syntax check and its tolerated-domain one), which the
# memos of parse_helo and parse_sender keep nothing of past MAX_MEMO_CHARS: a hostile
# 1,024-character HELO and sender of fullwidth letters cost ~2.6 ms of the event loop a
# check, mapped four times over. An entry holds ~4 KB at most (1,024 four-byte
# characters, protocol.MAX_FIELD_CHARS), so ~2 MB in all.
NON_ASCII_NAMES_REMEMBERED = 512


@functools.lru_cache(maxsize=NON_ASCII_NAMES_REMEMBERED)
def _mapped_to_ascii(name: str) -> str | None:
    """``to_ascii`` of a name that is not ASCII: mapped by UTS46, then label by label."""
    try:
        # Lower-cases too. Nontransitional, the only processing UTS46 keeps ("ß" stays).
        mapped = idna.uts46_remap(name, std3_rules=False)
    except (idna.IDNAError, UnicodeError, ValueError):
        return None
    mapped = mapped[:-1] if mapped.endswith(".") else mapped
    if len(mapped) > MAX_NAME_OCTETS:
        # Its A-labels are longer still (a label that is not ASCII gains "xn--" and
        # more): no name (UTS46 ToASCII refuses it, VerifyDnsLength). Each label encoded
        # first, a HELO of 1,024 characters of one-letter labels ("ü.ü.") took ~3 ms, its
        # sender ~6 ms more, on every message of a client that sends them.
        return None
    labels: list[str] = []
    for label in mapped.split("."):
        if label.isascii():
            if label.startswith("xn--") and not _is_a_label(label):
                return None
            labels.append(label)
            continue
        a_label = _a_label(label)
        if a_label is None:
            return None
        labels.append(a_label)
    return ".".join(labels)


def hostname_problem(ascii_name: str) -> str | None:
    """Why ``ascii_name`` cannot be a hostname, or None if it can (RFC 1035/1123/5321)."""
    if not ascii_name:
        return "empty name"
    if len(ascii_name) > MAX_NAME_OCTETS:
        return f"name is {len(ascii_name)} octets, more than {MAX_NAME_OCTETS}"
    if _HOST_NAME.match(ascii_name):
        return None  # the usual case: every label fine, no need to say which is not
    for label in ascii_name.split("."):
        if not label:
            return "empty label"
        if len(label) > MAX_LABEL_OCTETS:
            return f"label of {len(label)} octets, more than {MAX_LABEL_OCTETS}"
        if not _HOST_LABEL.match(label):
            # Quoted by hand, not with !r: the text becomes evidence, which
            # scorer.text escapes once (repr would double every backslash).
            return f"label '{label[:40]}' is not letters, digits, inner hyphens, underscores"
    return None


@functools.cache
def _both_sections() -> PublicSuffixList:
    """The bundled list with its private section too, built on first use (at config
    load, ~60 ms): where providers list the domains their customers get names under."""
    return PublicSuffixList(only_icann=False)


def is_public_suffix(ascii_name: str, *, private: bool = False) -> bool:
    """Whether ``ascii_name`` is itself a public suffix (``com``, ``co.uk``); with
    ``private``, one of the list's private section counts too (``members.linode.com``,
    any child of ``*.hosting.ovh.net``)."""
    suffixes = _both_sections() if private else public_suffix_list()
    return bool(suffixes.is_public(ascii_name, accept_unknown=False))


# The lines around the list's ICANN section, as publicsuffixlist looks for them.
_ICANN_MARKERS = {"// ===BEGIN ICANN DOMAINS===": True, "// ===END ICANN DOMAINS===": False}


def _list_rules(*, only_icann: bool) -> Iterator[str]:
    """The rules of the bundled list file as written there ("*." and "!" kept, IDN rules
    in U-labels): of its ICANN section only, as ``public_suffix_list`` reads it, or of
    both. Read from the file itself: publicsuffixlist answers questions about one name,
    it does not enumerate rules."""
    in_icann = False
    with open(PSLFILE, encoding="utf-8") as lines:
        for line in lines:
            text = line.strip()
            if text in _ICANN_MARKERS:
                in_icann = _ICANN_MARKERS[text]
                continue
            rule = text.partition(" ")[0]
            if rule and not rule.startswith("//") and (in_icann or not only_icann):
                yield rule


@functools.cache
def icann_rule_depths() -> dict[str, int]:
    """Each top-level label (IDN ones in A-labels, as names are compared) -> how many
    labels the deepest ICANN rule under it has, written as in the list (``*.kawasaki.jp``
    and ``!city.kawasaki.jp``: 3). Built before the first message (load_public_suffixes, ~35 ms).

    No rule matches more labels of a name than that, so ``public_suffix_list`` gives
    every name the suffix it gives that many of its last labels
    (``c-73-1-2-3.hsd1.ca.comcast.net``: ``comcast.net``): what generic.hostparts keys
    its memo on. A TLD the list does not have is its own suffix: 1.
    """
    depths: dict[str, int] = {}
    for rule in _list_rules(only_icann=True):
        top = rule.rpartition(".")[2].lower()
        if not top.isascii():
            top = top.encode("idna").decode("ascii")  # as publicsuffixlist encodes rules
        depths[top] = max(depths.get(top, 1), rule.count(".") + 1)
    return depths


@functools.cache
def _public_suffixes_below() -> dict[str, str]:
    """Each name that has a public suffix strictly below it -> the shortest such rule.

    Both sections of the bundled list: the private one is where providers list the
    domains under which their customers get names (``compute-1.amazonaws.com``,
    ``members.linode.com``). Built on first use, at config load, ~20 ms.
    """
    below: dict[str, str] = {}
    for rule in _list_rules(only_icann=False):
        if rule.startswith("!"):  # exceptions are no rules
            continue
        wildcard = rule.startswith("*.")  # "*.x": every child of x is a suffix
        name = to_ascii(rule[2:] if wildcard else rule)
        if name is None:
            continue
        rule = "*." + name if wildcard else name  # A-labels, as entries are compared
        labels = name.split(".")
        for start in range(0 if wildcard else 1, len(labels)):
            above = ".".join(labels[start:])
            if len(rule) < len(below.get(above, rule + ".")):  # the shortest: clearest
                below[above] = rule
    return below


# Where internal hosts live: RFC 1918 and RFC 6598 (CGNAT) space, IPv6 unique-local
# addresses (RFC 4193). With loopback, link-local and unspecified, the addresses only
# an internal host has. (Not is_private: it also holds the documentation ranges.)
_INTERNAL_NETWORKS = tuple(
    ipaddress.ip_network(network)
    for network in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "fc00::/7")
)


_IPV4_BROADCAST = ipaddress.IPv4Address("255.255.255.255")
# "This host on this network" (RFC 1122 section 3.2.1.3): a source only while a host
# learns its own address (DHCP), never a TCP peer's.
THIS_NETWORK = ipaddress.IPv4Network("0.0.0.0/8")


def _is_group(address: IPAddress) -> bool:
    return address.is_multicast or address == _IPV4_BROADCAST


def is_multicast_or_broadcast(address: IPAddress) -> bool:
    """Whether ``address`` names a group, never one host: no TCP client connects from
    it, and no resolver answers from it. Judged by the IPv4 address it carries, if any
    (``unmapped``): ``::ffff:224.0.0.251`` is mDNS's group, which ipaddress's
    ``is_multicast`` (ff00::/8 only, for an IPv6 address) does not see."""
    return _is_group(unmapped(address))


# Memoised: the same MX hosts and relays come back, and each address is judged several
# times a check (the lookups ask whether an answer is enough, the checks judge it): five
# ipaddress properties in Python, against one hash.
@memoise(maxsize=4096)
def is_public_host(address: IPAddress) -> bool:
    """Whether ``address`` is a public host's, one a reply can be delivered to: global, and
    no group's (ipaddress calls 224.0.0.1 and ff0e::1 global, yet no TCP connection, so
    no SMTP session, RFC 5321 section 5.1, can be opened to a multicast address), nor
    reserved: Python 3.11's ipaddress calls ``4000::1`` and ``::7f00:1`` global too, yet
    only 2000::/3 is allocated as Global Unicast (RFC 4291 section 2.4; 4000::/3 is
    "Reserved by IETF" in the IANA IPv6 Address Space registry), and ``::7f00:1`` is the
    deprecated IPv4-compatible form, inside ::/8 (RFC 4291 section 2.5.5.1): no host is
    reachable at either.

    Judged, as ``is_internal``, by the IPv4 address it carries, if any (``unmapped``):
    ipaddress calls ``64:ff9b::7f00:1`` and ``64:ff9b::a00:1`` global, yet the NAT64
    well-known prefix never carries a non-global IPv4 address (RFC 6052 section 3.1:
    no translator reaches 127.0.0.1 or 10.0.0.1 through it), and ``::ffff:224.0.0.1``
    is a group's as 224.0.0.1 is.
    """
    address = unmapped(address)
    return address.is_global and not (_is_group(address) or address.is_reserved)


def host_port(host: str, port: int) -> str:
    """``HOST:PORT``, an IPv6 address in brackets (``[::1]:11340``), as ``listen`` and
    ``nameservers`` are written: without them the port reads as part of the address
    (``::1:11340``)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def lacks_its_zone(address: IPAddress | None) -> bool:
    """Whether ``address`` is a link-local IPv6 address written without its zone
    (``fe80::1``, not ``fe80::1%eth0``): it means nothing without one (RFC 4007 section
    6), and a socket can neither bind it nor send to it (EINVAL)."""
    return (
        isinstance(address, ipaddress.IPv6Address)
        and address.is_link_local
        and not address.scope_id
    )


def is_internal(address: IPAddress) -> bool:
    """Whether ``address`` can only be an internal host's (loopback, link-local, private)."""
    address = unmapped(address)
    return (
        address.is_loopback
        or address.is_link_local
        or address.is_unspecified
        or any(address in network for network in _INTERNAL_NETWORKS)
    )


def public_suffix_below(ascii_name: str) -> str | None:
    """A public suffix strictly under ``ascii_name`` (a rule of the list), or None."""
    return _public_suffixes_below().get(ascii_name)


def non_public_suffix(ascii_name: str) -> str | None:
    """The special-use suffix ``ascii_name`` sits under, or None.

    A single label is non-public by definition (no TLD); so is a name under one of the
    special-use suffixes above. A top-level domain the bundled Public Suffix List does
    not know is not: the list is a snapshot, and a TLD delegated since (ICANN's next
    round) would make every sender under it "special-use" without a lookup. DNS judges
    such a name, and one that is not delegated gets its NXDOMAIN.
    """
    labels = ascii_name.split(".")
    if len(labels) < 2:
        return "single label"
    for depth in _NON_PUBLIC_DEPTHS:  # the longest first: home.arpa, not the arpa under it
        suffix = ".".join(labels[-depth:])
        if suffix in NON_PUBLIC_SUFFIXES:
            return f".{suffix}"
    return None


# What an address literal can be made of (RFC 4291 section 2.2 text forms, and
# RFC 4007 section 11 for a zone after "%"). A name with any other character is
# not one: ipaddress would take ~8 us to say so, raising two exceptions.
_ADDRESS_CHARACTERS = "0-9A-Fa-f.:%"
_NOT_ADDRESS_CHARACTER = re.compile(f"[^{_ADDRESS_CHARACTERS}]")
# The same, with what an SMTP address literal adds around one: its brackets and
# the "IPv6:" tag (RFC 5321 section 4.1.3).
_NOT_LITERAL_CHARACTER = re.compile(rf"[^{_ADDRESS_CHARACTERS}\[\]IiPpVv]")


# RFC 6052 section 2.1: the well-known prefix of IPv4-embedded addresses. A client in it
# is an IPv4 host that reached an IPv6-only MX through a translator (SIIT-DC, RFC 7755);
# its PTR and its HELO literal are the IPv4 host's, not the translator's.
NAT64_WELL_KNOWN = ipaddress.IPv6Network("64:ff9b::/96")


# RFC 4291 section 2.5.5.1: the deprecated IPv4-compatible addresses (::192.0.2.1), read
# as the IPv4 host they carry (ipv4_compatible_unwrapped), but for
# ::/104: ``::`` and ``::1`` are no IPv4 host's (0.0.0.0/8 carries none).
IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")
NO_IPV4_HOST = ipaddress.IPv6Network("::/104")


# RFC 6052 section 2.2: the lengths a prefix of IPv4-embedded addresses may have.
NAT64_PREFIX_LENGTHS = (32, 40, 48, 56, 64, 96)
# Bits 64 to 71 of such an address (the "u" octet, RFC 6052 section 2.2), which never
# carry IPv4 bits: the 9th octet of its 16.
_U_OCTET = 8


def ipv4_embedded(address: ipaddress.IPv6Address, prefix_length: int) -> ipaddress.IPv4Address:
    """The IPv4 address ``address`` carries behind a NAT64 prefix of ``prefix_length``
    bits (one of NAT64_PREFIX_LENGTHS): its 32 bits follow the prefix, skipping the u
    octet (RFC 6052 section 2.2; ``2001:db8:122:c000:2:2100::`` behind
    ``2001:db8:122::/48`` is 192.0.2.33)."""
    packed = address.packed
    octets = [i for i in range(prefix_length // 8, 16) if i != _U_OCTET][:4]
    return ipaddress.IPv4Address(bytes(packed[i] for i in octets))


def unmapped(
    address: IPAddress,
) -> IPAddress:
    """``address``, or the IPv4 address it carries: IPv4-mapped (``::ffff:192.0.2.1``,
    RFC 4291 section 2.5.5.2), how a dual-stack socket shows an IPv4 peer, or in the
    NAT64 well-known prefix (``64:ff9b::c000:201``); how clients are read and compared."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        if address in NAT64_WELL_KNOWN:
            return ipv4_embedded(address, NAT64_WELL_KNOWN.prefixlen)
    return address


def ipv4_compatible_unwrapped(ip: IPAddress) -> IPAddress:
    """``ip``, or the IPv4 host an IPv4-compatible address (``::192.0.2.1``) carries.

    RFC 4291 section 2.5.5.1 deprecates the form, and ::/96 lies in ::/8, which IANA's
    IPv6 address space keeps "Reserved by IETF" (only 2000::/3 is global unicast, RFC
    4291 section 2.4): no IPv6 peer connects from one across the internet. An MTA that
    writes it names the IPv4 host, as the form always meant (the host itself, reached
    by automatic tunnelling: RFC 2893, dropped by RFC 4213), whose reverse DNS is under
    in-addr.arpa. Read as IPv6, its ip6.arpa name, which no one delegates, was a sure
    RL_PTR_MISSING.
    ``::`` and ``::1`` (and the rest of ::/104, 0.0.0.0/8 carrying no host) are not it."""
    if ip in IPV4_COMPATIBLE and ip not in NO_IPV4_HOST:
        return ipaddress.IPv4Address(int(ip))
    return ip


def unscoped(
    address: IPAddress,
) -> IPAddress:
    """``address`` without its IPv6 zone, if any ("fe80::1%eth0", RFC 4007 section 11).

    A zone names an interface on the host of whoever wrote it, never part of who a
    client is; and ipaddress counts it in equality: ``2001:db8::25%x`` is not
    ``2001:db8::25``, so a zone would slip past every comparison with our addresses.
    """
    if isinstance(address, ipaddress.IPv6Address) and address.scope_id is not None:
        return ipaddress.IPv6Address(int(address))
    return address


def ip_address(text: str) -> IPAddress:
    """``ipaddress.ip_address(text)``, a dotted quad read by the C library's inet_pton in a
    quarter of the instructions ipaddress's Python takes (~21k, 2.5 % of a cold check with
    its DNS answers cached). As strict: four decimal numbers up to 255, none with a leading
    zero, nothing around them (tests/test_hardening.py compares the two); what it refuses
    is ipaddress's to read, or to refuse with its own words."""
    try:
        return ipaddress.IPv4Address(socket.inet_pton(socket.AF_INET, text))
    except (OSError, ValueError):  # ValueError: a NUL, or a lone surrogate
        return ipaddress.ip_address(text)


def address_in(text: str) -> IPAddress | None:
    """The IPv4 or IPv6 address ``text`` spells, or None when it spells none."""
    if "%" not in text and _NOT_ADDRESS_CHARACTER.search(text):
        return None
    try:
        return ip_address(text)
    except ValueError:
        return None


# RFC 5321 section 4.1.3: IPv4-address-literal = Snum 3("." Snum), Snum = 1*3DIGIT
# "representing a decimal integer value in the range 0 through 255": "010" is 10.
# Python's ipaddress refuses leading zeros (they once meant octal), Postfix does not.
_DOTTED_QUAD = re.compile(r"([0-9]{1,3})\.([0-9]{1,3})\.([0-9]{1,3})\.([0-9]{1,3})\Z")


def ipv4_literal(text: str) -> ipaddress.IPv4Address | None:
    """The address of the IPv4 part of an SMTP address literal (no brackets), or None."""
    octets = _DOTTED_QUAD.match(text)
    if octets is None or any(int(octet) > 255 for octet in octets.groups()):
        return None
    return ipaddress.IPv4Address(".".join(str(int(octet)) for octet in octets.groups()))


def literal_address(text: str) -> IPAddress | None:
    """The address ``text`` spells as the inside of an SMTP address literal (no brackets,
    no "IPv6:" tag), or None.

    As ``address_in``, but every Snum is decimal, leading zeros and all (RFC 5321 section
    4.1.3): an IPv4-address-literal's, and the one ending an IPv6v4-full or IPv6v4-comp
    (``::ffff:192.0.2.010``), which is an IPv4-address-literal too.
    """
    if "%" not in text and _NOT_ADDRESS_CHARACTER.search(text):
        return None  # a name, as most HELOs and sender domains are: no Snums to rewrite
    return address_in(plain_snums(text))


# The reverse trees, where every PTR is asked (RFC 1035 section 3.5, RFC 3596 section
# 2.5): a recursive resolver reaches them as it reaches the root.
REVERSE_TREES = ("in-addr.arpa", "ip6.arpa")
_UNDER_REVERSE_TREES = tuple(f".{tree}" for tree in REVERSE_TREES)


def in_reverse_tree(name: str) -> bool:
    """Whether ``name`` (lower case, no final dot) is under in-addr.arpa or ip6.arpa. No
    host is named there, and a name there spells an address by construction: as a PTR
    name it is most often one written in a zone file without its final dot, which the
    zone's own name completed (``mail.example.net.25.2.0.192.in-addr.arpa``)."""
    return name.endswith(_UNDER_REVERSE_TREES)


def address_literal(address: IPAddress) -> str:
    """``address`` as an SMTP address literal: ``[192.0.2.1]``, ``[IPv6:2001:db8::1]``
    (RFC 5321 section 4.1.3: an IPv6 literal carries the tag), written by
    ``address_text``."""
    text = address_text(address)
    return f"[IPv6:{text}]" if address.version == 6 else f"[{text}]"


def address_text(address: IPAddress) -> str:
    """``address`` as RFC 4291 section 2.2 writes it; an IPv4-mapped one with its IPv4
    address dotted (``::ffff:10.0.0.1``), as Python 3.13 writes it and 3.11 did not
    (``::ffff:a00:1``): evidence reads the same on every Python, and names the address."""
    mapped = address.ipv4_mapped if isinstance(address, ipaddress.IPv6Address) else None
    return f"::ffff:{mapped}" if mapped is not None else str(address)


def address_named(text: str) -> IPAddress | None:
    """The address a name from a DNS record (a PTR name, an MX target) spells instead of a
    host, bare or as an SMTP address literal (``192.0.2.010``, ``[192.0.2.10]``,
    ``[IPv6:2001:db8::25]``: RFC 5321 section 4.1.3, every Snum decimal, the tag in any
    case as ABNF strings are), or None."""
    if "%" not in text and _NOT_LITERAL_CHARACTER.search(text):
        return None  # a host name, as most are: nothing to take apart
    inside = text.strip("[]")
    return literal_address(inside[5:] if inside[:5].lower() == "ipv6:" else inside)


def plain_snums(text: str) -> str:
    """``text`` (the inside of an SMTP address literal) with the numbers of its IPv4 part,
    if it ends in one, written as ipaddress reads them: ``192.0.2.010`` is 192.0.2.10
    (RFC 5321 section 4.1.3: every Snum is decimal), which ipaddress (and so
    email-validator) refuses, or, in other places, would read as octal."""
    head, colon, tail = text.rpartition(":")
    ipv4 = ipv4_literal(tail)
    return text if ipv4 is None else f"{head}{colon}{ipv4}"


def decimal_in(text: str, low: int, high: int) -> int | None:
    """``text`` as a number from ``low`` to ``high`` written in ASCII digits, or None.

    ASCII: ``str.isdigit()`` also takes "²" (which ``int()`` refuses) and "٢٥" (which it
    reads as 25), neither of which anyone means as a port or a count.
    """
    if not (text.isascii() and text.isdigit()):
        return None
    number = int(text)
    return number if low <= number <= high else None
