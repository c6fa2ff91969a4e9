"""HELO/EHLO family: syntax classes (pure) and resolution against the real unbound."""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress

import dns.rdatatype
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from scorer.checks.helo import HeloFacts, HeloKind, check_helo, parse_helo
from scorer.checks.hit import Hit
from scorer.checks.ptr import PtrCounted, PtrFacts, check_ptr, ptr_counted
from scorer.config import Config
from scorer.dns.outcomes import (
    Answer,
    FailureKind,
    Lookup,
    NotFound,
    NotFoundKind,
    TempFail,
    describe,
)
from scorer.dns.wire import reverse_name
from scorer.lookups import Limits, gather_facts
from scorer.names import (
    IPAddress,
    address_in,
    address_named,
    hostname_problem,
    ipv4_literal,
    is_internal,
    is_multicast_or_broadcast,
    is_public_host,
    literal_address,
    non_public_suffix,
    to_ascii,
    unmapped,
)
from scorer.pipeline import Pipeline
from scorer.protocol import parse_request
from scorer.report import hint_fields
from scorer.symbols import SYMBOLS
from scorer.text import DEFAULT_IGNORABLE_RANGES, escape
from tests import world
from tests.helpers import NO_ALLOWLIST, KnownAnswers, rotated, symbols_for


def _ip_address_or_none(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


@pytest.mark.parametrize(
    "text",
    ["192.0.2.1", "2001:db8::1", "::ffff:192.0.2.1", "fe80::1%eth0", "fe80::1%2", "deadbeef.cafe",
     "mx1.good-sender.net", "1.2.3", "", "::", "1.2.3.4 ", "DEAD:BEEF::"],
)  # fmt: skip
def test_address_in_is_ipaddress_without_the_exceptions(text: str) -> None:
    assert address_in(text) == _ip_address_or_none(text)


# Real addresses in the forms ipaddress accepts: random text is almost never one
# (review: 8 in 3,000), so a pre-check that refused valid addresses went unnoticed
# about half the time.
_ADDRESS_FORMS = st.builds(
    lambda address, form, zone: {
        "text": str(address),
        "upper": str(address).upper(),
        "exploded": address.exploded,
        "zoned": f"{address}%{zone}" if address.version == 6 else str(address),
    }[form],
    st.ip_addresses(),
    st.sampled_from(["text", "upper", "exploded", "zoned"]),
    st.sampled_from(["eth0", "2", "lo", "a%b"]),
)


@settings(max_examples=3000, deadline=None)
@given(st.text(alphabet="0123456789abcdefABCDEFxyz.:%-[] ", max_size=45) | _ADDRESS_FORMS)
def test_address_in_agrees_with_ipaddress(text: str) -> None:
    # The character pre-check may only ever say "no" where ipaddress says no too.
    assert address_in(text) == _ip_address_or_none(text)


# Address literals in the forms a PTR name or an MX target may spell one (RFC 5321
# section 4.1.3): bare, bracketed, with the tag in any case, Snums with leading zeros.
_LITERAL_FORMS = st.builds(
    lambda text, bracketed, tag: f"[{tag}{text}]" if bracketed else f"{tag}{text}",
    _ADDRESS_FORMS | st.from_regex(r"[0-9]{1,3}(\.[0-9]{1,3}){3}", fullmatch=True),
    st.booleans(),
    st.sampled_from(["", "IPv6:", "ipv6:", "IPV6:"]),
)


@settings(max_examples=3000, deadline=None)
@given(st.text(alphabet="0123456789abcdefIPVipvxyz.:%-[] ", max_size=45) | _LITERAL_FORMS)
def test_address_named_says_no_early_only_where_taking_the_name_apart_does(text: str) -> None:
    # address_named's character pre-check (host names, most of what it sees) against the
    # full reading: brackets and tag stripped, every Snum decimal (literal_address).
    inside = text.strip("[]")
    full = literal_address(inside[5:] if inside[:5].lower() == "ipv6:" else inside)
    assert address_named(text) == full


# Labels near every edge of the rule: empty, 63 and 64 characters, a hyphen or an
# underscore at either end, upper case and a newline (never a hostname's).
_LABELS = st.text(alphabet="az09_-Z\n", max_size=8) | st.builds(
    lambda char, length, end: char * length + end,
    st.sampled_from("a-_"),
    st.integers(0, 64),
    st.sampled_from(["", "-", "b", "\n"]),
)


@settings(max_examples=3000, deadline=None)
@given(st.lists(_LABELS, min_size=1, max_size=5).map(".".join))
def test_hostname_problem_reads_a_name_as_its_labels_one_by_one(name: str) -> None:
    # Its one search of the whole name against RFC 1123 section 2.1's rule label by label
    # (letters, digits, inner hyphens, the underscore anywhere; 1-63 octets each).
    def fine(label: str) -> bool:
        allowed = set("abcdefghijklmnopqrstuvwxyz0123456789_-")
        inner = 0 < len(label) <= 63 and not label.startswith("-") and not label.endswith("-")
        return inner and set(label) <= allowed

    assume(len(name) <= 253)
    assert (hostname_problem(name) is None) == all(map(fine, name.split(".")))


@settings(max_examples=500, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 255), st.integers(0, 2)), min_size=4, max_size=4))
def test_ipv4_literal_reads_snum_as_decimal(octets: list[tuple[int, int]]) -> None:
    # RFC 5321 section 4.1.3: Snum = 1*3DIGIT, a decimal value: "010" is 10, never octal.
    text = ".".join(str(value).zfill(min(3, len(str(value)) + pad)) for value, pad in octets)
    expected = ipaddress.IPv4Address(".".join(str(value) for value, _ in octets))
    assert ipv4_literal(text) == expected


@pytest.mark.parametrize(
    "text",
    ["192.0.2.256", "0192.0.2.1", "1.2.3", "1.2.3.4.5", "1.2.3.4 ", "1.2.3.4\n", "\u0661.2.3.4"],
)
def test_ipv4_literal_refuses_what_is_no_snum(text: str) -> None:
    assert ipv4_literal(text) is None


@pytest.mark.parametrize(
    ("text", "address"),
    [("192.0.2.010", "192.0.2.10"), ("::ffff:192.0.2.010", "::ffff:192.0.2.10"),
     ("2001:db8::192.000.002.001", "2001:db8::c000:201"),
     ("1:2:3:4:5:6:010.0.0.1", "1:2:3:4:5:6:a00:1"), ("2001:db8::1", "2001:db8::1"),
     ("fe80::1%eth0", "fe80::1%eth0")],
)  # fmt: skip
def test_literal_address_reads_every_snum_as_decimal(text: str, address: str) -> None:
    # Regression: RFC 5321 section 4.1.3's IPv6v4-full and IPv6v4-comp end in an
    # IPv4-address-literal, whose Snum is decimal with any leading zeros, as in
    # [192.0.2.010]; ipaddress refused "::ffff:192.0.2.010", so the literal was invalid.
    assert literal_address(text) == ipaddress.ip_address(address)


@pytest.mark.parametrize(
    "text", ["::ffff:192.0.2.256", "::ffff:0192.0.2.1", ":192.0.2.1", "x:192.0.2.1", "1.2.3.4:5"]
)
def test_literal_address_refuses_what_is_no_address(text: str) -> None:
    assert literal_address(text) is None


@pytest.mark.parametrize("name", ["mx.example.net\n", "mx\n.example.net", "\n"])
def test_a_newline_is_no_part_of_a_hostname(name: str) -> None:
    # Regression: the label pattern ended in "$", which also matches before a final
    # newline, so "net\n" passed as a label. HELO and MAIL FROM refuse control
    # characters before they ask, but hostname_problem is what config and allowlist
    # entries are judged by too.
    assert hostname_problem(name) is not None


@pytest.mark.parametrize(
    ("helo", "kind"),
    [
        ("mx1.good-sender.net", HeloKind.NAME),
        ("MX1.Good-Sender.NET.", HeloKind.NAME),
        ("mail.bücher-versand.de", HeloKind.NAME),
        ("localhost", HeloKind.LOCALHOST),
        ("localhost.localdomain", HeloKind.LOCALHOST),
        ("LOCALHOST", HeloKind.LOCALHOST),
        ("x.localhost", HeloKind.LOCALHOST),  # RFC 6761 section 6.3: all of .localhost
        ("MX1.Mail.LocalHost.", HeloKind.LOCALHOST),
        ("notlocalhost", HeloKind.NOT_FQDN),  # a label ending in "localhost" is not under it
        ("Mail-Server", HeloKind.NOT_FQDN),
        ("DESKTOP-2459326", HeloKind.NOT_FQDN),
        ("server.local", HeloKind.NOT_FQDN),
        ("nas.lan", HeloKind.NOT_FQDN),
        ("box.home.arpa", HeloKind.NOT_FQDN),
        ("mx.corp.internal", HeloKind.NOT_FQDN),
        ("192.0.2.1", HeloKind.BARE_IP),
        ("2001:db8::1", HeloKind.BARE_IP),
        ("[192.0.2.1]", HeloKind.LITERAL),
        ("[IPv6:2001:db8::1]", HeloKind.LITERAL),
        # RFC 5321 section 4.1.3's "IPv6:" is an ABNF string: case-insensitive (RFC 5234
        # section 2.3), so these are the same literal, not malformed ones.
        ("[ipv6:2001:db8::1]", HeloKind.LITERAL),
        ("[IPV6:2001:db8::1]", HeloKind.LITERAL),
        ("[ipv6:192.0.2.1]", HeloKind.INVALID),
        ("[2001:db8::1]", HeloKind.INVALID),
        ("[IPv6:192.0.2.1]", HeloKind.INVALID),
        ("[not-an-ip]", HeloKind.INVALID),
        ("mail_server.good-sender.net", HeloKind.NAME),  # tolerated, as by Postfix
        ("_mail.good-sender.net", HeloKind.NAME),
        ("mail_1", HeloKind.NOT_FQDN),
        ("mail_.good-sender.net", HeloKind.NAME),  # anywhere, as Postfix allows it
        ("mail-.example.net", HeloKind.INVALID),
        ("[IPv6:::ffff:192.0.2.1]", HeloKind.LITERAL),
        ("[192.0.2.010]", HeloKind.LITERAL),  # Regression: was INVALID
        ("192.0.2.010", HeloKind.BARE_IP),  # Regression: was NOT_FQDN, at half the weight
        ("192.0.2.1.", HeloKind.BARE_IP),  # Regression (review): was NOT_FQDN too
        ("[IPv6:::ffff:192.0.2.010]", HeloKind.LITERAL),  # Regression: was INVALID
        ("::ffff:192.0.2.010", HeloKind.BARE_IP),  # Regression: was INVALID
        ("mx1.good-sender.net..", HeloKind.INVALID),  # one final dot roots it, not two
        ("-mx.example.net", HeloKind.INVALID),
        ("mx..example.net", HeloKind.INVALID),
        ("a" * 64 + ".example.net", HeloKind.INVALID),
        ("a" * 63 + ".good-sender.net", HeloKind.NAME),  # RFC 1035 2.3.4: 63-octet labels
        (".".join(["a" * 63] * 3 + ["b" * 57]) + ".net", HeloKind.NAME),  # 253: the most
        (".".join(["a" * 63] * 3 + ["b" * 58]) + ".net", HeloKind.INVALID),  # 254
        (".".join(["abcdefghi"] * 26) + ".net", HeloKind.INVALID),
        ("mx.example.net\r\nX-Injected: yes", HeloKind.INVALID),
        ("mx\x1b[31m.example.net", HeloKind.INVALID),
        ("mx.example\u202e.net", HeloKind.INVALID),
        ("two words", HeloKind.INVALID),
        (" mx1.good-sender.net  ", HeloKind.NAME),  # spaces around are no part of it
        # ... but only spaces: str.strip() would take a CR/LF or tab off the ends as well.
        ("mx1.good-sender.net\r\n", HeloKind.INVALID),
        ("\tmx1.good-sender.net", HeloKind.INVALID),
    ],
)
def test_helo_syntax_classes(helo: str, kind: HeloKind) -> None:
    assert parse_helo(helo).kind is kind


def test_idna2008_keeps_what_idna2003_mapped_away() -> None:
    # Nontransitional UTS46 processing (RFC 5891, UTS46 section 4): "ß" is a letter of
    # its own, as the registries of .de and others register it, not "ss".
    assert to_ascii("faß.de") == "xn--fa-hia.de"
    assert to_ascii("Straße.de") == "xn--strae-oqa.de"


@pytest.mark.parametrize("stop", [".", "\u3002", "\uff0e", "\uff61"])
def test_a_final_full_stop_of_any_width_is_the_root_label(stop: str) -> None:
    # Regression: UTS46 maps the ideographic and fullwidth full stops to "." and
    # idna.encode kept a final one, so "mail.bücher.de\u3002" was RL_HELO_INVALID
    # ("empty label") where "mail.bücher.de." is a name.
    for name in ("mail.bücher.de", "mx1.good-sender.net", "localhost"):
        assert to_ascii(name + stop) == to_ascii(name), name
        assert parse_helo(name + stop).kind is parse_helo(name).kind, name
        assert parse_helo(name + stop + stop).kind is HeloKind.INVALID, name  # empty label


@pytest.mark.parametrize(
    "label", ["mail_1", "ab--cd", "xn--zz", "-mx", "mx-", "a" * 64, "", "a/b", "MX"]
)
def test_a_name_gets_one_verdict_in_u_labels_and_in_a_labels(label: str) -> None:
    # Regression: one U-label sent the whole name through idna.encode, which judged its
    # ASCII labels by IDNA2008 too, so the underscore and "ab--" labels tolerated in
    # "mail_1.xn--bcher-kva.de" made "mail_1.bücher.de" RL_HELO_INVALID, and the labels
    # refused either way were only "not a valid IDNA name", not what is wrong with them.
    u_labels, a_labels = (parse_helo(f"{label}.{idn}.de") for idn in ("bücher", "xn--bcher-kva"))
    assert u_labels[1:] == a_labels[1:]  # all but raw


# Words spelt with a joiner, and their A-labels: Persian "nameh-ha" (letters), ZWNJ
# between a dual-joining heh and a heh (RFC 5892 appendix A.1), written in escapes (as
# ruff asks of letters that look like Latin ones); Sinhala "Sri", ZWJ after the virama
# (appendix A.2).
PERSIAN = "\u0646\u0627\u0645\u0647\u200c\u0647\u0627"
JOINED_NAMES = [(PERSIAN, "xn--mgba3gcha2927b"), ("ශ්\u200dරී", "xn--10cl1a0b660p")]


@pytest.mark.parametrize(("u_label", "a_label"), JOINED_NAMES)
def test_a_joiner_idna_allows_in_context_makes_a_valid_helo(u_label: str, a_label: str) -> None:
    # Regression (review): ZWNJ and ZWJ are format characters (Cf), refused before IDNA
    # was asked: "mail.<PERSIAN>.ir" was RL_HELO_INVALID ("control or format
    # characters") where its A-labels scored nothing.
    u_labels, a_labels = parse_helo(f"mail.{u_label}.ir"), parse_helo(f"mail.{a_label}.ir")
    assert (u_labels.kind, u_labels.ascii) == (HeloKind.NAME, f"mail.{a_label}.ir")
    assert u_labels[1:] == a_labels[1:]


@pytest.mark.parametrize(
    "helo", ["\u200d.good-sender.net", "mail\u200c.good-sender.net", "ma\u200dil.good-sender.net",
             f"mail.\u200c{PERSIAN.replace(chr(0x200C), '')}.ir", f"mail.{PERSIAN}\u200c.ir"],
)  # fmt: skip
async def test_a_joiner_out_of_context_is_still_an_invalid_helo(
    pipeline: Pipeline, helo: str
) -> None:
    # IDNA's CONTEXTJ rules (RFC 5892 appendix A) refuse a joiner after a Latin letter,
    # alone, or where no joining letters stand on both sides: still RL_HELO_INVALID, and
    # shown escaped (an invisible character in a log line hides what it says).
    symbols = await symbols_for(pipeline, world.CONFIRMED_IP, helo=helo)
    assert set(symbols) == {"RL_HELO_INVALID"}
    shown, why = symbols["RL_HELO_INVALID"].options
    assert why == "not a valid IDNA name"
    assert shown == escape(f"helo={helo}") and "\u200c" not in shown and "\u200d" not in shown


@pytest.mark.parametrize(
    "a_label",
    ["xn--zz",  # no Punycode at all
     "xn--ab", "xn--a",  # C1 controls (U+0081 U+0080, U+0080)
     "xn--1ug",  # a lone ZWJ, out of the context RFC 5892 appendix A.2 allows it in
     "xn--abc-", "xn--",  # all ASCII, or nothing: no U-label (RFC 5890 section 2.3.2.1)
     "xn--wca",  # "\u00dc": UTS46 maps it to "\u00fc", so no U-label holds it
     "xn--ab-x0b", "xn--ab-4da", "xn--tda610n"],  # CGJ, soft hyphen, ZWSP: UTS46 erases them
)  # fmt: skip
def test_an_xn_label_that_is_no_a_label_is_an_invalid_helo(a_label: str) -> None:
    # Regression (review): an all-ASCII name skipped IDNA, so "mail.xn--zz.net" and
    # "xn--1ug.sender-host.net" were names to resolve, where the same labels in Unicode
    # (a lone ZWJ, controls) are RL_HELO_INVALID (RFC 5891 section 5.4: an A-label is
    # checked as its U-label is).
    for helo in (
        f"mail.{a_label}.good-sender.net",
        f"{a_label.upper()}.de",
        f"{a_label}.bücher.de",
    ):
        parsed = parse_helo(helo)
        assert (parsed.kind, parsed.problem) == (HeloKind.INVALID, "not a valid IDNA name"), helo


@pytest.mark.parametrize(
    ("a_label", "u_label"),
    [("xn--ls8h", "\U0001f4a9"), ("xn--i-7iq", "i\u2764"),  # symbols UTS46 allows
     ("xn--bcher-kva", "bücher"), ("xn--fa-hia", "faß"), ("xn--mgba3gcha2927b", PERSIAN),
     ("xn--1ug", "\u200d"), ("xn--zz", "\U0001f4a9\u200d")],  # out of context
)  # fmt: skip
def test_an_idn_gets_one_verdict_in_a_labels_and_in_u_labels(a_label: str, u_label: str) -> None:
    # Regression (review): "xn--ls8h.la" (an emoji, which IDNA2008 disallows and UTS46
    # allows) scored nothing, "\U0001f4a9.la" RL_HELO_INVALID. One verdict for both: the
    # name is registered and resolves, so UTS46's, as browsers reach it.
    a_labels, u_labels = parse_helo(f"mx.{a_label}.la"), parse_helo(f"mx.{u_label}.la")
    assert a_labels[1:] == u_labels[1:]


@pytest.mark.parametrize("contexto", ["\u00b7", "\u30fb", "\u0375"])
def test_a_contextual_code_point_after_an_emoji_is_judged_as_after_a_letter(contexto: str) -> None:
    # Regression (review): idna.check_label stops at the first disallowed code point (the
    # emoji), and only the joiners and Bidi were checked after it: a middle dot, katakana
    # middle dot or Greek keraia out of context (RFC 5892 appendix A.3, A.7, A.4) passed
    # after an emoji and was refused after a letter.
    after_a_letter = parse_helo(f"mx.a{contexto}.example")
    after_an_emoji = parse_helo(f"mx.\U0001f4a9{contexto}.example")
    assert after_a_letter.kind is after_an_emoji.kind is HeloKind.INVALID
    # In context, after an emoji too: "l\u00b7l" is Catalan's ela geminada.
    assert parse_helo("mx.\U0001f4a9l\u00b7l.cat").kind is HeloKind.NAME


async def test_resolving_helo_scores_nothing(pipeline: Pipeline) -> None:
    assert await symbols_for(pipeline, world.CONFIRMED_IP, helo=world.CONFIRMED_NAME) == {}


@pytest.mark.parametrize(
    ("helo", "symbol"),
    [
        ("localhost", "RL_HELO_LOCALHOST"),
        ("Mail-Server", "RL_HELO_NOT_FQDN"),
        ("exchange.corp.local", "RL_HELO_NOT_FQDN"),
        ("203.0.113.10", "RL_HELO_BARE_IP"),
        ("[198.51.100.1]", "RL_HELO_LITERAL_MISMATCH"),
        ("[IPv6:2001:db8::99]", "RL_HELO_LITERAL_MISMATCH"),
        ("bad/name.example.net", "RL_HELO_INVALID"),
        ("no_address.good-sender.net", "RL_HELO_NO_ADDRESS"),
        (world.HELO_NO_ADDRESS, "RL_HELO_NO_ADDRESS"),
        (world.HELO_TIMEOUT, "RL_HELO_TEMPFAIL"),
        (world.HELO_SERVFAIL, "RL_HELO_TEMPFAIL"),
    ],
)
async def test_helo_symbols(pipeline: Pipeline, helo: str, symbol: str) -> None:
    symbols = await symbols_for(pipeline, world.CONFIRMED_IP, helo=helo)
    assert set(symbols) == {symbol}
    assert symbols[symbol].options, "every hit carries evidence"


async def test_literal_of_the_client_itself_is_valid(pipeline: Pipeline) -> None:
    assert await symbols_for(pipeline, world.CONFIRMED_IP, helo=f"[{world.CONFIRMED_IP}]") == {}
    ipv6 = f"[IPv6:{world.CONFIRMED_IP6}]"
    assert await symbols_for(pipeline, world.CONFIRMED_IP6, helo=ipv6) == {}


async def test_an_ipv4_mapped_literal_of_the_client_is_valid(pipeline: Pipeline) -> None:
    """Regression: [IPv6:::ffff:a.b.c.d] from the IPv4 client a.b.c.d was a mismatch."""
    helo = f"[IPv6:::ffff:{world.CONFIRMED_IP}]"
    assert await symbols_for(pipeline, world.CONFIRMED_IP, helo=helo) == {}


async def test_missing_or_empty_helo_gives_no_helo_symbols(pipeline: Pipeline) -> None:
    assert await symbols_for(pipeline, world.CONFIRMED_IP) == {}
    assert await symbols_for(pipeline, world.CONFIRMED_IP, helo="") == {}


async def test_helo_tempfail_weighs_nothing(pipeline: Pipeline) -> None:
    symbols = await symbols_for(pipeline, world.CONFIRMED_IP, helo=world.HELO_TIMEOUT)
    assert symbols["RL_HELO_TEMPFAIL"].score == 0.0


async def test_control_characters_are_escaped_in_evidence(pipeline: Pipeline) -> None:
    symbols = await symbols_for(pipeline, world.CONFIRMED_IP, helo="evil\r\nX-Spam: no\x1b[0m")
    options = " ".join(symbols["RL_HELO_INVALID"].options)
    assert "\r" not in options and "\n" not in options and "\x1b" not in options
    assert "\\x0d\\x0a" in options


async def test_a_backslash_in_evidence_is_escaped_once(pipeline: Pipeline) -> None:
    # Regression: the label was quoted with repr() before scorer.text escaped it
    # again, so one backslash showed as \x5c\x5c.
    symbols = await symbols_for(pipeline, world.CONFIRMED_IP, helo="mail.example.net\\")
    options = " ".join(symbols["RL_HELO_INVALID"].options)
    assert "label 'net\\x5c'" in options, options


# One of each printable Default_Ignorable_Code_Point block (scorer.text): CGJ, the
# Hangul fillers, Khmer inherent vowels, Mongolian and the other variation selectors.
_INVISIBLE_SAMPLES = ["\u034f", "\u115f", "\u1160", "\u17b4", "\u17b5", "\u180b", "\u180f",
                      "\u3164", "\ufe00", "\ufe0f", "\uffa0", "\U000e0100",
                      "\U000e01ef"]  # fmt: skip


@pytest.mark.parametrize("invisible", _INVISIBLE_SAMPLES)
async def test_an_invisible_character_is_not_erased_from_a_helo(
    pipeline: Pipeline, invisible: str
) -> None:
    # Regression (review): UTS46 maps default-ignorable code points to nothing, so
    # "mx1.good\u034f-sender.net" was judged as mx1.good-sender.net, which resolves to
    # the client: it scored nothing, where a soft hyphen or ZWSP (the same UTS46 status)
    # is RL_HELO_INVALID. In the evidence it is escaped, not shown as nothing.
    helo = world.CONFIRMED_NAME.replace("good", f"good{invisible}")
    symbols = await symbols_for(pipeline, world.CONFIRMED_IP, helo=helo)
    assert set(symbols) == {"RL_HELO_INVALID"}, helo
    shown = f"helo={world.CONFIRMED_NAME}".replace("good", f"good{escape(invisible)}")
    assert symbols["RL_HELO_INVALID"].options == (shown, "invisible (default-ignorable) characters")
    assert invisible not in shown and shown.count("\\") == 1


def test_every_default_ignorable_code_point_makes_a_helo_invalid() -> None:
    for first, last in DEFAULT_IGNORABLE_RANGES:
        for code in range(first, last + 1):
            helo = parse_helo(f"mx1.good{chr(code)}-sender.net")
            assert helo.kind is HeloKind.INVALID, hex(code)
    parse_helo.cache_clear()  # 4 500 names no other test sends


async def test_forged_local_name_and_address(unbound_config: Config) -> None:
    policy = dataclasses.replace(
        unbound_config.policy, local_names=["MX.Our-Site.org"], local_ips=["198.51.100.25"]
    )
    pipeline = Pipeline(dataclasses.replace(unbound_config, policy=policy))
    for helo, why in (("MX.Our-Site.org.", "helo=mx.our-site.org is our own name"),
                      ("[198.51.100.25]", "helo=[198.51.100.25] is our own address"),
                      ("198.51.100.25", "helo=198.51.100.25 is our own address")):  # fmt: skip
        symbols = await symbols_for(pipeline, world.CONFIRMED_IP, helo=helo)
        assert set(symbols) == {"RL_HELO_FORGED_LOCAL"}, helo
        assert symbols["RL_HELO_FORGED_LOCAL"].options == (why,)


async def test_forged_local_name_in_either_idna_form(unbound_config: Config) -> None:
    # Regression: local_names were compared as written, the HELO as A-labels, so
    # a name with non-ASCII characters never matched, whichever way it was sent.
    policy = dataclasses.replace(
        unbound_config.policy, local_names=["MX.Bücher.de."], local_ips=["::ffff:198.51.100.25"]
    )
    pipeline = Pipeline(dataclasses.replace(unbound_config, policy=policy))
    for helo in ("mx.bücher.de", "MX.xn--bcher-kva.de", "[198.51.100.25]"):
        symbols = await symbols_for(pipeline, world.CONFIRMED_IP, helo=helo)
        assert set(symbols) == {"RL_HELO_FORGED_LOCAL"}, helo


async def test_our_own_name_with_a_joiner_is_forged_in_either_idna_form(
    unbound_config: Config,
) -> None:
    # Regression (review): our own name in U-labels with a joiner was RL_HELO_INVALID
    # ("control or format characters"), a third of the forgery's weight.
    policy = dataclasses.replace(unbound_config.policy, local_names=[f"mail.{PERSIAN}.ir"])
    pipeline = Pipeline(dataclasses.replace(unbound_config, policy=policy))
    for helo in (f"mail.{PERSIAN}.ir", "MAIL.xn--mgba3gcha2927b.ir"):
        symbols = await symbols_for(pipeline, world.CONFIRMED_IP, helo=helo)
        assert set(symbols) == {"RL_HELO_FORGED_LOCAL"}, helo
        # With its U-labels, the joiner escaped as evidence shows every one.
        shown = PERSIAN.replace("\u200c", "\\u200c")
        why = f"helo=mail.xn--mgba3gcha2927b.ir (mail.{shown}.ir) is our own name"
        assert symbols["RL_HELO_FORGED_LOCAL"].options == (why,)


async def test_an_ipv6_zone_does_not_hide_our_address_or_the_clients(
    unbound_config: Config,
) -> None:
    # Regression: ipaddress counts a zone in equality, so "2001:db8::25%x" slipped
    # past local_ips (RL_HELO_LITERAL_MISMATCH or RL_HELO_BARE_IP instead of
    # RL_HELO_FORGED_LOCAL), and the client's own literal with a zone read as a
    # mismatch. RFC 5321 literals have no zone: that is invalid, not a mismatch.
    policy = dataclasses.replace(unbound_config.policy, local_ips=["2001:db8::99"])
    pipeline = Pipeline(dataclasses.replace(unbound_config, policy=policy))
    for helo in ("[IPv6:2001:db8::99%x]", "2001:db8::99%eth0"):
        symbols = await symbols_for(pipeline, world.CONFIRMED_IP6, helo=helo)
        assert set(symbols) == {"RL_HELO_FORGED_LOCAL"}, helo
    own = f"[IPv6:{world.CONFIRMED_IP6}%0]"
    symbols = await symbols_for(pipeline, world.CONFIRMED_IP6, helo=own)
    assert set(symbols) == {"RL_HELO_INVALID"}
    assert "address literal with a %zone" in symbols["RL_HELO_INVALID"].options


async def test_a_literal_with_the_wrong_tag_does_not_hide_our_address(
    unbound_config: Config,
) -> None:
    # Regression (review): the wrong-tag branch dropped the address, so "[2001:db8::99]"
    # (no IPv6: tag) and "[IPv6:198.51.100.25]" greeted with one of our addresses and
    # scored RL_HELO_INVALID (1.5) instead of RL_HELO_FORGED_LOCAL (3).
    policy = dataclasses.replace(unbound_config.policy, local_ips=["2001:db8::99", "198.51.100.25"])
    pipeline = Pipeline(dataclasses.replace(unbound_config, policy=policy))
    for helo in ("[2001:db8::99]", "[IPv6:198.51.100.25]", "[ipv6:::ffff:198.51.100.25]"):
        symbols = await symbols_for(pipeline, world.CONFIRMED_IP6, helo=helo)
        assert set(symbols) == {"RL_HELO_FORGED_LOCAL"}, helo
    # The client's own address without its tag: invalid, and the evidence spells it.
    symbols = await symbols_for(pipeline, world.CONFIRMED_IP6, helo=f"[{world.CONFIRMED_IP6}]")
    assert set(symbols) == {"RL_HELO_INVALID"}
    assert symbols["RL_HELO_INVALID"].options[1] == (
        "IPv6 address literal without the IPv6: tag"
        f" (RFC 5321 section 4.1.3: the literal is [IPv6:{world.CONFIRMED_IP6}])"
    )


@pytest.mark.parametrize(
    ("client", "helo", "problem"),
    [(world.CONFIRMED_IP6, f"[{world.CONFIRMED_IP6}]",
      f"IPv6 address literal without the IPv6: tag (RFC 5321 section 4.1.3: the literal is "
      f"[IPv6:{world.CONFIRMED_IP6}])"),
     (world.CONFIRMED_IP, f"[IPv6:{world.CONFIRMED_IP}]",
      f"IPv4 address literal with an IPv6: tag (RFC 5321 section 4.1.3: the literal is "
      f"[{world.CONFIRMED_IP}])"),
     (world.CONFIRMED_IP, f"[ipv6:{world.CONFIRMED_IP}]",
      f"IPv4 address literal with an IPv6: tag (RFC 5321 section 4.1.3: the literal is "
      f"[{world.CONFIRMED_IP}])"),
     # An IPv4-mapped address without the tag: the fix keeps the form it was written in.
     (world.CONFIRMED_IP, f"[::ffff:{world.CONFIRMED_IP}]",
      f"IPv6 address literal without the IPv6: tag (RFC 5321 section 4.1.3: the literal is "
      f"[IPv6:::ffff:{world.CONFIRMED_IP}])")],
)  # fmt: skip
def test_a_literal_with_the_wrong_tag_says_which_tag_and_the_literal(
    client: str, helo: str, problem: str
) -> None:
    # Regression: "address literal with wrong IPv6: tag" said neither whether the tag was
    # missing or one too many, nor where the rule is.
    hits = check_helo(
        HeloFacts(parse_helo(helo)), ipaddress.ip_address(client), frozenset(), frozenset()
    )
    assert hits == [Hit("RL_HELO_INVALID", (f"helo={helo}", problem))]


@pytest.mark.parametrize(
    ("client", "wrong", "literal"),
    [(world.CONFIRMED_IP6, "[2001:db8:1::dead]", "[IPv6:2001:db8:1::dead]"),
     (world.CONFIRMED_IP6, "[2001:db8::dead]", "[IPv6:2001:db8::dead]"),  # its /64: a slip
     (world.CONFIRMED_IP6, "[fd00::25]", "[IPv6:fd00::25]"),  # internal: NAT?
     (world.CONFIRMED_IP, "[IPv6:8.8.8.8]", "[8.8.8.8]"),
     (world.CONFIRMED_IP, "[ipv6:192.168.1.10]", "[192.168.1.10]"),
     (world.CONFIRMED_IP, "[::ffff:8.8.8.8]", "[8.8.8.8]"),
     (world.CONFIRMED_IP6, "[IPv6:2001:db8:1::dead%eth0]", "[IPv6:2001:db8:1::dead]"),
     (world.CONFIRMED_IP, "[\uff18.\uff18.\uff18.\uff18]", "[8.8.8.8]")],  # fullwidth 8s
)  # fmt: skip
async def test_a_malformed_literal_of_another_host_scores_no_less_than_its_other_forms(
    pipeline: Pipeline, client: str, wrong: str, literal: str
) -> None:
    # Regression: "[2001:db8:1::dead]" (no IPv6: tag, RFC 5321 section 4.1.3) from
    # another client scored RL_HELO_INVALID (1.5) alone, less than the bare
    # "2001:db8:1::dead" (RL_HELO_BARE_IP and RL_HELO_LITERAL_MISMATCH, 2.5): spelling
    # another host's address wrong paid. It is invalid and that host's, as the
    # well-formed literal is; so is "[IPv6:8.8.8.8]", a zone, or fullwidth digits.
    symbols = await symbols_for(pipeline, client, helo=wrong)
    proper = await symbols_for(pipeline, client, helo=literal)
    bare = await symbols_for(pipeline, client, helo=literal.strip("[]").removeprefix("IPv6:"))
    assert set(symbols) == {"RL_HELO_INVALID", "RL_HELO_LITERAL_MISMATCH"}, symbols
    mismatch, expected = symbols["RL_HELO_LITERAL_MISMATCH"], proper["RL_HELO_LITERAL_MISMATCH"]
    assert mismatch.options == (f"helo={wrong}", *expected.options[1:])
    assert mismatch.score == expected.score
    total = sum(symbol.score for symbol in symbols.values())
    assert total >= sum(symbol.score for symbol in bare.values()) > expected.score


async def test_our_own_address_greeting_with_our_name_is_not_forged(
    unbound_config: Config,
) -> None:
    """Regression: a peer relaying over one of our public addresses (local_ips) and
    greeting with our name scored RL_HELO_FORGED_LOCAL."""
    policy = dataclasses.replace(
        unbound_config.policy, local_names=[world.CONFIRMED_NAME], local_ips=[world.CONFIRMED_IP]
    )
    pipeline = Pipeline(dataclasses.replace(unbound_config, policy=policy))
    assert await symbols_for(pipeline, world.CONFIRMED_IP, helo=world.CONFIRMED_NAME) == {}


@pytest.mark.parametrize(
    ("helo", "expected"),
    [
        ("[198.51.100.25]", set()),
        ("[IPv6:2001:db8:1::25]", set()),
        ("198.51.100.25", {"RL_HELO_BARE_IP"}),  # still no valid HELO, but no other host's
        ("[203.0.113.9]", {"RL_HELO_LITERAL_MISMATCH"}),  # not ours: another host's
    ],
)
async def test_our_own_address_greeting_with_another_of_ours_is_no_mismatch(
    unbound_config: Config, helo: str, expected: set[str]
) -> None:
    """Regression (review): docs/configuration.md has a client at one of local_ips greet
    with our names and addresses, but a multi-homed host greeting with another of them
    scored RL_HELO_LITERAL_MISMATCH (1.5), and 2.5 with RL_HELO_BARE_IP."""
    ours = [world.CONFIRMED_IP, "198.51.100.25", "2001:db8:1::25"]
    policy = dataclasses.replace(unbound_config.policy, local_ips=ours)
    pipeline = Pipeline(dataclasses.replace(unbound_config, policy=policy))
    symbols = await symbols_for(pipeline, world.CONFIRMED_IP, helo=helo)
    assert set(symbols) == expected, symbols


async def test_a_client_our_name_resolves_to_greeting_with_it_is_not_forged(
    unbound_config: Config,
) -> None:
    """Regression (review): a node of a cluster sharing our name (its address not among
    local_ips), greeting with that name, scored RL_HELO_FORGED_LOCAL (3): our own zone
    puts it at the name, which no forger can arrange."""
    policy = dataclasses.replace(
        unbound_config.policy, local_names=[world.CONFIRMED_NAME], local_ips=["198.51.100.25"]
    )
    pipeline = Pipeline(dataclasses.replace(unbound_config, policy=policy))
    assert await symbols_for(pipeline, world.CONFIRMED_IP, helo=world.CONFIRMED_NAME) == {}
    # Anyone else greeting with it still forges it.
    symbols = await symbols_for(pipeline, world.GENERIC_IP, helo=world.CONFIRMED_NAME)
    assert "RL_HELO_FORGED_LOCAL" in symbols


async def test_our_name_whose_lookup_failed_is_no_forgery_yet(unbound_config: Config) -> None:
    """Regression (journey review): when the lookup of our own name failed, a node of a
    cluster sharing it (which that lookup would have put at the name) scored
    RL_HELO_FORGED_LOCAL (3): a DNS failure scored as if the record were missing."""
    policy = dataclasses.replace(
        unbound_config.policy, local_names=[world.HELO_TIMEOUT], local_ips=["198.51.100.25"]
    )
    pipeline = Pipeline(dataclasses.replace(unbound_config, policy=policy))
    symbols = await symbols_for(pipeline, world.CONFIRMED_IP, helo=world.HELO_TIMEOUT)
    assert set(symbols) == {"RL_HELO_TEMPFAIL"}, symbols
    options = symbols["RL_HELO_TEMPFAIL"].options
    assert options[0] == f"helo={world.HELO_TIMEOUT} is our own name", options
    assert any(o.startswith("A: timeout") for o in options), options
    # Our address needs no lookup: still a forgery, whatever DNS does.
    local_ip = dataclasses.replace(policy, local_ips=["81.2.69.99"])
    pipeline = Pipeline(dataclasses.replace(unbound_config, policy=local_ip))
    symbols = await symbols_for(pipeline, world.CONFIRMED_IP, helo="[81.2.69.99]")
    assert set(symbols) == {"RL_HELO_FORGED_LOCAL"}, symbols


@pytest.mark.parametrize(
    ("local_names", "local_ips", "helo", "judged_as"),
    [
        ([], ["192.168.1.10"], "[192.168.1.10]", "RL_HELO_LITERAL_MISMATCH"),
        (["mail"], [], "MAIL", "RL_HELO_NOT_FQDN"),
        (["localhost"], [], "localhost", "RL_HELO_LOCALHOST"),
    ],
    ids=["inside-address", "short-name", "localhost"],
)
async def test_our_identity_that_is_not_ours_alone_is_no_forgery(
    unbound_config: Config, local_names: list[str], local_ips: list[str], helo: str, judged_as: str
) -> None:
    """Regression (review): with our NAT'd interface's address or our short host name in
    local_ips / local_names (natural to list), every remote host greeting with the same
    inside address or short name scored RL_HELO_FORGED_LOCAL (3) instead of the gentle
    symbol any other host gets for it."""
    policy = dataclasses.replace(
        unbound_config.policy, local_names=local_names, local_ips=local_ips
    )
    pipeline = Pipeline(dataclasses.replace(unbound_config, policy=policy))
    symbols = await symbols_for(pipeline, world.CONFIRMED_IP, helo=helo)
    assert set(symbols) == {judged_as}, symbols


def test_generic_helo_for_the_client_ip() -> None:
    client = ipaddress.ip_address(world.GENERIC_IP)
    facts = HeloFacts(parse_helo(world.GENERIC_NAME), a=Answer((client,), 300))
    (hit,) = check_helo(facts, client, frozenset(), frozenset())
    assert hit.symbol == "RL_HELO_GENERIC" and 0 < hit.confidence <= 1
    assert f"helo={world.GENERIC_NAME}" in hit.options


async def test_a_helo_with_the_ptr_name_is_judged_once(pipeline: Pipeline) -> None:
    # Regression (review): a client greeting with its own PTR name (as RFC 5321 section
    # 4.1.1.1 asks, and MTAs do by default) paid twice for one fact: RL_PTR_GENERIC and
    # RL_HELO_GENERIC for the same generic name, RL_PTR_UNVERIFIED and
    # RL_HELO_NO_ADDRESS for the same name that does not resolve.
    symbols = await symbols_for(pipeline, world.GENERIC_IP, helo=world.GENERIC_NAME.upper())
    assert set(symbols) == {"RL_PTR_GENERIC"}
    # From another client it is judged, and is at no public address: GENERIC_IP is a
    # documentation address (RFC 5737), and not that client's.
    elsewhere = await symbols_for(pipeline, world.CONFIRMED_IP, helo=world.GENERIC_NAME)
    assert set(elsewhere) == {"RL_HELO_GENERIC", "RL_HELO_NO_ADDRESS"}
    client = ipaddress.ip_address("81.2.69.77")
    gone = NotFound(NotFoundKind.NXDOMAIN, 300)
    facts = HeloFacts(parse_helo("mail.gone-sender.net"), a=gone, aaaa=gone)
    counted = PtrCounted(unverified=["mail.gone-sender.net"])
    assert check_helo(facts, client, frozenset(), frozenset(), counted) == []
    (hit,) = check_helo(facts, client, frozenset(), frozenset())
    assert hit.symbol == "RL_HELO_NO_ADDRESS"


GENERIC_CLIENT = ipaddress.IPv4Address("81.2.69.20")
GENERIC_PTR = "81-2-69-20.dyn.some-isp.net"
OTHER_GENERIC_PTR = "dsl-81-2-69-20.dynamic.some-isp.net"


@pytest.mark.parametrize(
    ("ptr_names", "forward", "unchecked", "helo_symbols"),
    [
        # One more PTR name than max_ptr_names: RL_PTR_TEMPFAIL, nothing counted.
        ([GENERIC_PTR], {GENERIC_PTR: "gone"}, 1, {"RL_HELO_NO_ADDRESS", "RL_HELO_GENERIC"}),
        # Neither name confirms (RL_PTR_UNVERIFIED counted whether they resolve), and
        # not every one is generic (no RL_PTR_GENERIC): the generic HELO is judged.
        (["mail.example.org", GENERIC_PTR], {"mail.example.org": "elsewhere",
         GENERIC_PTR: "gone"}, 0, {"RL_HELO_GENERIC"}),
        # Both confirm, one is not generic: no RL_PTR_GENERIC, the HELO is judged.
        (["mail.example.org", GENERIC_PTR], {"mail.example.org": "client",
         GENERIC_PTR: "client"}, 0, {"RL_HELO_GENERIC"}),
        # The one confirmed name is generic: RL_PTR_GENERIC counted it.
        ([GENERIC_PTR], {GENERIC_PTR: "client"}, 0, set()),
        # A generic name confirms, the other's lookup timed out: RL_PTR_GENERIC judged
        # both (the failed one as if confirmed), so the HELO is not judged generic again.
        ([OTHER_GENERIC_PTR, GENERIC_PTR], {OTHER_GENERIC_PTR: "client",
         GENERIC_PTR: "timeout"}, 0, {"RL_HELO_TEMPFAIL"}),
        # The one name's lookup timed out: RL_PTR_TEMPFAIL and RL_PTR_GENERIC (judged as
        # if confirmed), no RL_PTR_UNVERIFIED: the HELO's own failed lookup is still told.
        ([GENERIC_PTR], {GENERIC_PTR: "timeout"}, 0, {"RL_HELO_TEMPFAIL"}),
    ],
)  # fmt: skip
def test_a_ptr_name_as_helo_is_spared_only_what_a_ptr_symbol_scored(
    ptr_names: list[str], forward: dict[str, str], unchecked: int, helo_symbols: set[str]
) -> None:
    # Regression (review): a HELO among the PTR names was spared every check whatever
    # the PTR family concluded, so 11 PTR names (one past max_ptr_names: only
    # RL_PTR_TEMPFAIL) and a greeting with one of them scored nothing in either family.
    gone = NotFound(NotFoundKind.NXDOMAIN, 300)
    outcomes: dict[str, Lookup[IPAddress]] = {
        "gone": gone,
        "timeout": TempFail(FailureKind.TIMEOUT, "no answer"),
        "client": Answer((GENERIC_CLIENT,), 300),
        "elsewhere": Answer((ipaddress.IPv4Address("81.2.69.99"),), 300),
    }
    ptr = PtrFacts(
        GENERIC_CLIENT,
        Answer(tuple(ptr_names), 300),
        {name: outcomes[kind] for name, kind in forward.items()},
        unchecked,
    )
    ptr_hits = check_ptr(ptr)
    helo = HeloFacts(
        parse_helo(GENERIC_PTR),
        a=outcomes[forward[GENERIC_PTR]],
        aaaa=gone if forward[GENERIC_PTR] == "gone" else NotFound(NotFoundKind.NODATA, 300),
    )
    counted = ptr_counted(ptr, ptr_hits)
    hits = check_helo(helo, GENERIC_CLIENT, frozenset(), frozenset(), counted)
    assert {hit.symbol for hit in hits} == helo_symbols, [h.symbol for h in ptr_hits]


async def test_long_values_keep_options_within_the_cap(pipeline: Pipeline) -> None:
    """Regression: the "helo=" prefix was added after the 160-character cap."""
    symbols = await symbols_for(
        pipeline, world.CONFIRMED_IP, helo="a" * 300, mail_from="b" * 200 + "@x.invalid"
    )
    assert {"RL_HELO_INVALID", "RL_MAILFROM_SPECIAL_USE"} <= set(symbols)
    for symbol in symbols.values():
        assert all(len(o) <= 160 and o.isprintable() for o in symbol.options), symbol


@pytest.mark.parametrize(
    ("helo", "shown"),
    [("internal.bogus-mx.org", "10.0.0.5"), ("loop.bogus-mx.org", "127.0.0.1, ::1")],
)
async def test_a_helo_resolving_only_to_non_public_addresses_has_no_address(
    pipeline: Pipeline, helo: str, shown: str
) -> None:
    # Regression (review): it scored nothing, though the same addresses behind an MX are
    # RL_MAILFROM_BOGUS_MX: no client connects from them.
    symbols = await symbols_for(pipeline, world.CONFIRMED_IP, helo=helo)
    assert set(symbols) == {"RL_HELO_NO_ADDRESS"}
    assert f"only non-public addresses {shown}" in symbols["RL_HELO_NO_ADDRESS"].options


async def test_an_ipv6_clients_helo_is_asked_for_aaaa_first(pipeline: Pipeline) -> None:
    """lookups._helo_facts: the client's own family first (the answer the generic check
    needs too), and each outcome in its own field: an AAAA that holds the client is
    enough, no A is asked."""
    request = parse_request({"ip": world.CONFIRMED_IP6, "helo": world.CONFIRMED_NAME6}).request
    facts, reply = await pipeline.check_with_facts(request)
    assert reply.symbols == ()
    assert facts is not None and facts.helo is not None
    assert facts.helo.aaaa == Answer((ipaddress.ip_address(world.CONFIRMED_IP6),), 300)
    assert facts.helo.a is None


@pytest.mark.parametrize(
    ("client", "addresses", "asked"),
    [
        ("81.2.70.71", ["81.2.69.160"], ["A"]),  # a public address
        ("81.2.70.71", ["10.0.0.5", "81.2.69.160"], ["A"]),  # one public among internal ones
        ("10.0.0.5", ["10.0.0.5"], ["A"]),  # the client's own (an internal relay)
        ("81.2.70.71", ["10.0.0.5"], ["A", "AAAA"]),  # only internal: maybe a public AAAA
        ("81.2.70.71", ["224.0.0.1"], ["A", "AAAA"]),  # only a group's: maybe a public AAAA
        ("81.2.70.71", ["192.0.2.1"], ["A", "AAAA"]),  # only documentation (RFC 5737)
    ],
)
async def test_a_helos_other_family_is_asked_only_when_the_first_is_not_enough(
    client: str, addresses: list[str], asked: list[str]
) -> None:
    """lookups._helo_facts: the other family only when the first has no public address,
    nor the client's own (RL_HELO_NO_ADDRESS judges the name by all its addresses then)."""
    ip = ipaddress.ip_address(client)
    helo = "relay.helo-family.net"
    layer = KnownAnswers(
        {
            (reverse_name(ip), dns.rdatatype.PTR): NotFound(NotFoundKind.NXDOMAIN, 300),
            (helo, dns.rdatatype.A): Answer(tuple(map(ipaddress.ip_address, addresses)), 300),
            (helo, dns.rdatatype.AAAA): NotFound(NotFoundKind.NODATA, 300),
        }
    )
    request = parse_request({"ip": client, "helo": helo}).request
    deadline = asyncio.get_running_loop().time() + 2.0
    facts = await gather_facts(request, layer, Limits(10, 10), deadline, NO_ALLOWLIST)
    assert [rdtype for name, rdtype in layer.asked if name == helo] == asked
    assert facts.helo is not None and (facts.helo.aaaa is None) == (asked == ["A"])


def test_a_helo_at_the_clients_own_private_address_is_fine() -> None:
    # An internal relay that is not in skip_networks greets with its own name.
    client = ipaddress.ip_address("10.0.0.5")
    answer = Answer((client,), 300)
    facts = HeloFacts(parse_helo("relay.partner-corp.net"), a=answer)
    assert check_helo(facts, client, frozenset(), frozenset()) == []
    other = ipaddress.ip_address("10.0.0.6")
    (hit,) = check_helo(facts, other, frozenset(), frozenset())
    assert hit.symbol == "RL_HELO_NO_ADDRESS"


PUBLIC_CLIENT = ipaddress.ip_address("81.2.69.160")
INTERNAL_A = Answer((ipaddress.ip_address("10.0.0.5"),), 300)
INTERNAL_AAAA = Answer((ipaddress.ip_address("fd00::25"),), 300)
TIMED_OUT = TempFail(FailureKind.TIMEOUT, "timed out")
NODATA = NotFound(NotFoundKind.NODATA, 300)


@pytest.mark.parametrize(
    ("a", "aaaa"), [(INTERNAL_A, TIMED_OUT), (TIMED_OUT, INTERNAL_AAAA)], ids=["A", "AAAA"]
)
def test_internal_addresses_beside_a_failed_lookup_leave_the_helo_open(
    a: Answer[IPAddress] | TempFail, aaaa: Answer[IPAddress] | TempFail
) -> None:
    # The family that timed out might have held a public address, so only internal ones
    # so far are no RL_HELO_NO_ADDRESS: the question is open, a zero-weight TEMPFAIL that
    # names what was found and what failed, as an implicit MX's is (RL_MAILFROM_TEMPFAIL).
    # Regression (review): no hit at all, and `check` said the HELO "looks fine".
    facts = HeloFacts(parse_helo("relay.partner-corp.net"), a=a, aaaa=aaaa)
    (hit,) = check_helo(facts, PUBLIC_CLIENT, frozenset(), frozenset())
    found = INTERNAL_A if isinstance(a, Answer) else INTERNAL_AAAA
    failed = "AAAA" if isinstance(a, Answer) else "A"
    assert hit == Hit(
        "RL_HELO_TEMPFAIL",
        (
            "helo=relay.partner-corp.net",
            f"only non-public addresses {found.records[0]}",
            f"{failed}: timeout: timed out",
        ),
    )
    # The same internal answer beside a definite "no" for the other family is one.
    settled = HeloFacts(
        facts.helo,
        a=NODATA if isinstance(a, TempFail) else a,
        aaaa=NODATA if isinstance(aaaa, TempFail) else aaaa,
    )
    (hit,) = check_helo(settled, PUBLIC_CLIENT, frozenset(), frozenset())
    assert hit.symbol == "RL_HELO_NO_ADDRESS"


@pytest.mark.parametrize("public_first", [True, False])
def test_a_helo_with_one_public_address_among_internal_ones_has_an_address(
    public_first: bool,
) -> None:
    # RL_HELO_NO_ADDRESS is for a name resolving *only* to non-public addresses: one public
    # address among them (a dual-homed host publishing both) is an address to connect from.
    public = ipaddress.ip_address("81.2.69.77")
    internal = ipaddress.ip_address("10.0.0.5")
    records = (public, internal) if public_first else (internal, public)
    facts = HeloFacts(parse_helo("mx.partner-corp.net"), a=Answer(records, 300), aaaa=NODATA)
    assert check_helo(facts, PUBLIC_CLIENT, frozenset(), frozenset()) == []
    facts = HeloFacts(facts.helo, a=INTERNAL_A, aaaa=Answer((public,), 300))
    assert check_helo(facts, PUBLIC_CLIENT, frozenset(), frozenset()) == []


@pytest.mark.parametrize(
    "address",
    ["224.0.0.1", "192.0.2.1", "198.18.0.1", "4000::1", "::7f00:1", "2001:db8::25", "ff0e::25"],
)
def test_a_helo_resolving_only_to_addresses_no_host_is_public_at_has_no_address(
    address: str,
) -> None:
    # Regression: only internal addresses (loopback, RFC 1918, ...) made a name
    # RL_HELO_NO_ADDRESS; one at only a multicast, reserved, documentation or benchmarking
    # address scored nothing. Such a name is no client's (RFC 5321 section 4.1.1.1: the
    # argument is the client's FQDN) and names no reachable host either, as the same
    # address behind an MX is RL_MAILFROM_BOGUS_MX (names.is_public_host).
    answer = Answer((ipaddress.ip_address(address),), 300)
    a, aaaa = (NODATA, answer) if ":" in address else (answer, NODATA)
    facts = HeloFacts(parse_helo("mx.partner-corp.net"), a=a, aaaa=aaaa)
    (hit,) = check_helo(facts, PUBLIC_CLIENT, frozenset(), frozenset())
    evidence = ("helo=mx.partner-corp.net", f"only non-public addresses {address}")
    assert (hit.symbol, *hit.options) == ("RL_HELO_NO_ADDRESS", *evidence)


async def test_a_lower_case_ipv6_tag_is_the_clients_literal(pipeline: Pipeline) -> None:
    # The tag is case-insensitive (RFC 5321 section 4.1.3 ABNF, RFC 5234 section 2.3):
    # "[ipv6:<the client>]" is the client's own literal, neither invalid nor a mismatch.
    for tag in ("ipv6", "IPV6", "iPv6"):
        helo = f"[{tag}:{world.CONFIRMED_IP6}]"
        assert parse_helo(helo).address == ipaddress.ip_address(world.CONFIRMED_IP6)
        assert await symbols_for(pipeline, world.CONFIRMED_IP6, helo=helo) == {}, helo
    other = await symbols_for(pipeline, world.CONFIRMED_IP6, helo="[ipv6:2001:db8::99]")
    assert set(other) == {"RL_HELO_LITERAL_MISMATCH"}


def _lone_syntax_hit(helo: str) -> Hit:
    """The one hit a greeting gets from a public client by its syntax alone."""
    (hit,) = check_helo(HeloFacts(parse_helo(helo)), PUBLIC_CLIENT, frozenset(), frozenset())
    return hit


@pytest.mark.parametrize(
    "helo",
    ["x.localhost", "mail.LOCALHOST.", "a.b.localhost",
     # The loopback names of /etc/hosts, and a host named localhost in a real domain.
     "localhost4", "localhost6", "ip6-localhost", "ip6-loopback", "localhost4.localdomain4",
     "localhost6.localdomain6", "localhost.good-sender.net"],
)  # fmt: skip
def test_a_localhost_name_claims_to_be_localhost(helo: str) -> None:
    # RFC 6761 section 6.3: every name under .localhost. is loopback: RL_HELO_LOCALHOST,
    # not merely a name under a suffix that is not public (RL_HELO_NOT_FQDN), nor a
    # single label; nor a name to resolve.
    hit = _lone_syntax_hit(helo)
    assert hit.symbol == "RL_HELO_LOCALHOST"
    assert hit.options == (f"helo={helo}",)


async def test_a_literal_of_another_address_in_the_clients_64_is_a_slip(
    pipeline: Pipeline,
) -> None:
    """Regression (review): an IPv6 client greeting with another address of its own
    /64 (RFC 8981 temporary addresses, a hosting panel's extra ones: the kernel's choice
    of source address need not be the one the MTA writes) scored the full weight of a
    false identity. A third, as an inside literal behind NAT; outside the /64, in full."""
    client = ipaddress.ip_address(world.CONFIRMED_IP6)
    # The same /64, differing in its top interface-identifier bit: a /65 or narrower
    # judgement (RFC 8981 picks all 64 bits at random) would call it a stranger
    # (review: x ^ 0x25 let a /120 check pass).
    sibling = ipaddress.ip_address(int(client) ^ (1 << 63))
    stranger = ipaddress.ip_address(int(client) ^ (1 << 64))  # the next /64
    near = await symbols_for(pipeline, str(client), helo=f"[IPv6:{sibling}]")
    far = await symbols_for(pipeline, str(client), helo=f"[IPv6:{stranger}]")
    slip, full = near["RL_HELO_LITERAL_MISMATCH"], far["RL_HELO_LITERAL_MISMATCH"]
    assert slip.score == pytest.approx(full.score / 3)
    assert f"client is {client} (the same /64: another address of its own?)" in slip.options
    assert f"client is {client}" in full.options


async def test_an_internal_literal_says_the_sender_may_be_behind_nat(pipeline: Pipeline) -> None:
    # Regression (review): "[192.168.1.10]" from a public client read only "client is
    # ...", pointing admins at forgery where a NAT'd MTA names its inside address.
    symbols = await symbols_for(pipeline, world.CONFIRMED_IP, helo="[192.168.1.10]")
    options = symbols["RL_HELO_LITERAL_MISMATCH"].options
    assert f"client is {world.CONFIRMED_IP} (the address is internal: NAT?)" in options
    public = await symbols_for(pipeline, world.CONFIRMED_IP, helo="[81.2.69.160]")
    assert f"client is {world.CONFIRMED_IP}" in public["RL_HELO_LITERAL_MISMATCH"].options
    # Regression (review): the slip scored the full 1.5 of a false identity, three times
    # RL_HELO_NOT_FQDN for the same kind of mistake. Loopback stays a claim to be us.
    slip = symbols["RL_HELO_LITERAL_MISMATCH"].score
    assert slip == pytest.approx(public["RL_HELO_LITERAL_MISMATCH"].score / 3)
    loopback = await symbols_for(pipeline, world.CONFIRMED_IP, helo="[127.0.0.1]")
    assert loopback["RL_HELO_LITERAL_MISMATCH"].score == public["RL_HELO_LITERAL_MISMATCH"].score
    # Internal is names.is_internal: CGNAT space is inside a NAT (ipaddress's is_private
    # says no), the documentation ranges are not (is_private says yes).
    for helo, score in (
        ("[100.64.0.1]", slip),
        ("[192.0.2.1]", public["RL_HELO_LITERAL_MISMATCH"].score),
    ):
        literal = await symbols_for(pipeline, world.CONFIRMED_IP, helo=helo)
        assert literal["RL_HELO_LITERAL_MISMATCH"].score == score, helo


@pytest.mark.parametrize("helo", ["[0.0.0.0]", "[IPv6:::]"])
def test_an_unspecified_literal_is_no_nat_slip(helo: str) -> None:
    # Regression: names.is_internal counts the unspecified address, so "[0.0.0.0]" read
    # "the literal is internal: NAT?" at a third of the weight; no host, behind NAT or
    # not, has that address (RFC 4291 section 2.5.2, RFC 1122 section 3.2.1.3).
    (hit,) = check_helo(HeloFacts(parse_helo(helo)), PUBLIC_CLIENT, frozenset(), frozenset())
    assert hit == Hit("RL_HELO_LITERAL_MISMATCH", (f"helo={helo}", f"client is {PUBLIC_CLIENT}"))


async def test_a_bare_ip_of_another_host_scores_no_less_than_its_literal(
    pipeline: Pipeline,
) -> None:
    # Regression (review): "8.8.8.8" from another client scored RL_HELO_BARE_IP (1.0)
    # alone, less than the correctly bracketed "[8.8.8.8]" (RL_HELO_LITERAL_MISMATCH,
    # 1.5): leaving out the brackets paid. A bare address of another host is both.
    for helo, weight in (("8.8.8.8", 1.5), ("192.168.1.10", 0.5), ("127.0.0.1", 1.5)):
        bare = await symbols_for(pipeline, world.CONFIRMED_IP, helo=helo)
        bracketed = await symbols_for(pipeline, world.CONFIRMED_IP, helo=f"[{helo}]")
        assert set(bare) == {"RL_HELO_BARE_IP", "RL_HELO_LITERAL_MISMATCH"}, helo
        mismatch = bare["RL_HELO_LITERAL_MISMATCH"]
        assert mismatch.options[1:] == bracketed["RL_HELO_LITERAL_MISMATCH"].options[1:]
        assert mismatch.score == bracketed["RL_HELO_LITERAL_MISMATCH"].score == weight, helo
        assert bare["RL_HELO_BARE_IP"].options[1] == "address without [brackets]"
    own = await symbols_for(pipeline, world.CONFIRMED_IP, helo=world.CONFIRMED_IP)
    assert set(own) == {"RL_HELO_BARE_IP"}


def test_the_fix_for_an_ipv6_client_names_a_tagged_literal() -> None:
    # Regression (review): an IPv6 client was told to greet with "[2001:db8::25]", which
    # RFC 5321 section 4.1.3 does not allow and which scores RL_HELO_INVALID.
    request = parse_request({"ip": "2001:db8::25", "helo": "2001:db8::25"}).request
    assert hint_fields(request, None)["literal"] == "[IPv6:2001:db8::25]"
    request = parse_request({"ip": "192.0.2.25", "helo": "192.0.2.25"}).request
    assert hint_fields(request, None)["literal"] == "[192.0.2.25]"
    for name in ("RL_HELO_BARE_IP", "RL_HELO_LITERAL_MISMATCH"):
        assert "{literal}" in SYMBOLS[name].hint and "[{ip}]" not in SYMBOLS[name].hint


def test_helo_tempfail_says_which_record_failed_and_why() -> None:
    # Regression (review): "A/AAAA: servfail" twice, and never the failure's detail.
    from scorer.dns.outcomes import FailureKind, TempFail

    facts = HeloFacts(
        parse_helo("mx.dead-zone.net"),
        a=TempFail(FailureKind.SERVFAIL, "SERVFAIL"),
        aaaa=TempFail(FailureKind.MALFORMED, "CNAME loop"),
    )
    (hit,) = check_helo(facts, ipaddress.IPv4Address("81.2.69.160"), frozenset(), frozenset())
    assert hit.symbol == "RL_HELO_TEMPFAIL"
    assert hit.options[1:] == ("A: servfail", "AAAA: malformed: CNAME loop")


def test_a_big_senders_helo_whose_lookup_failed_keeps_its_exemption() -> None:
    # Regression (review): a HELO lookup that timed out left the name unconfirmed, so a
    # big sender's exempt name (as PTR names are: test_ptr_checks) scored RL_HELO_GENERIC
    # beside RL_HELO_TEMPFAIL: a DNS failure turned into a penalty.
    from scorer.dns.outcomes import FailureKind, TempFail
    from scorer.generic import classify

    client = ipaddress.IPv4Address("69.171.232.143")
    name = "69-171-232-143.mail-mail.facebook.com"
    assert classify(client, name, False).generic  # the exemption needs confirmation ...
    facts = HeloFacts(
        parse_helo(name),
        a=TempFail(FailureKind.TIMEOUT, "timed out"),
        aaaa=NotFound(NotFoundKind.NODATA, 300),
    )
    hits = check_helo(facts, client, frozenset(), frozenset())
    assert [hit.symbol for hit in hits] == ["RL_HELO_TEMPFAIL"]
    # ... and a failure of the other family's record confirms nothing.
    facts = HeloFacts(
        parse_helo(name),
        a=NotFound(NotFoundKind.NODATA, 300),
        aaaa=TempFail(FailureKind.TIMEOUT, "timed out"),
    )
    hits = check_helo(facts, client, frozenset(), frozenset())
    assert {hit.symbol for hit in hits} == {"RL_HELO_TEMPFAIL", "RL_HELO_GENERIC"}
    # The name resolving to the client confirms it, whatever the other family says.
    facts = HeloFacts(facts.helo, a=Answer((client,), 300), aaaa=facts.aaaa)
    assert check_helo(facts, client, frozenset(), frozenset()) == []


async def test_an_ipv4_mapped_bare_helo_of_our_address_is_forged(unbound_config: Config) -> None:
    # Regression (review): "::ffff:a.b.c.d" was kept as an IPv6 address when bare, so our
    # own address slipped past local_ips (RL_HELO_BARE_IP only), though the same address
    # in brackets, or as the client's, is read as the IPv4 address it carries.
    policy = dataclasses.replace(unbound_config.policy, local_ips=["198.51.100.25"])
    pipeline = Pipeline(dataclasses.replace(unbound_config, policy=policy))
    for helo in ("::ffff:198.51.100.25", "::ffff:c633:6419", "64:ff9b::198.51.100.25",
                 "[IPv6:::ffff:198.51.100.25%eth0]"):  # fmt: skip
        symbols = await symbols_for(pipeline, world.CONFIRMED_IP, helo=helo)
        assert set(symbols) == {"RL_HELO_FORGED_LOCAL"}, helo
    own = await symbols_for(pipeline, world.CONFIRMED_IP, helo=f"::ffff:{world.CONFIRMED_IP}")
    assert "address without [brackets]" in own["RL_HELO_BARE_IP"].options


@pytest.mark.parametrize(
    ("helo", "problem"),
    [("mail.b\udcfccher.de", "bytes that are not UTF-8"),
     ("mail\x1b[31m.example.net", "control characters"),
     ("mail.good\u3164sender.net", "invisible (default-ignorable) characters"),
     ("mail.good\xad\u3164sender.net", "format characters"),  # U+00AD is Cf
     ("mail example.net", "a space inside"),
     ("mx..example.net", "empty label"),
     (".", "empty name"),
     ("a" * 64 + ".example.net", "label of 64 octets, more than 63"),
     ("mx-.example.net", "label 'mx-' is not letters, digits, inner hyphens, underscores"),
     ("mail.bü-.de", "not a valid IDNA name"),
     ("a" * 50 + "-.example.net",  # the label is shown up to 40 characters
      f"label '{'a' * 40}' is not letters, digits, inner hyphens, underscores"),
     # Brackets on one side only are no literal: the label holding one is what is wrong.
     ("[192.0.2.1", "label '[192' is not letters, digits, inner hyphens, underscores"),
     ("192.0.2.1]", "label '1]' is not letters, digits, inner hyphens, underscores"),
     # Regression: said "an IPv4 address (192.0.2.1) in characters other than ASCII
     # digits and dots", all of them ASCII digits and dots (to_ascii dropped the dot).
     ("[192.0.2.1.]", "malformed address literal")],
)  # fmt: skip
def test_an_invalid_helo_says_what_is_wrong_with_it(helo: str, problem: str) -> None:
    # Regression (review): a byte that is not UTF-8 read as "control, format or space
    # characters", whatever was there.
    hit = _lone_syntax_hit(helo)
    assert hit.symbol == "RL_HELO_INVALID" and hit.options[1] == problem


@pytest.mark.parametrize(
    ("helo", "problem"),
    [("Mail-Server", "single label"), ("server.local", ".local")],
)  # fmt: skip
def test_a_helo_that_is_no_fqdn_says_why(helo: str, problem: str) -> None:
    hit = _lone_syntax_hit(helo)
    assert hit.symbol == "RL_HELO_NOT_FQDN" and hit.options == (f"helo={helo}", problem)


@pytest.mark.parametrize(
    ("text", "internal"),
    [("127.0.0.1", True), ("::1", True), ("169.254.1.1", True), ("fe80::1", True),
     ("0.0.0.0", True), ("::", True), ("10.255.255.255", True), ("172.16.0.1", True),
     ("172.31.255.254", True), ("172.32.0.1", False), ("192.168.0.1", True),
     ("100.64.0.1", True), ("100.127.255.254", True), ("100.128.0.1", False),  # RFC 6598
     ("fc00::1", True), ("fd12:3456::1", True), ("fe00::1", False),  # ULA is fc00::/7
     ("::ffff:10.0.0.1", True), ("64:ff9b::a00:1", True),  # mapped and NAT64: 10.0.0.1
     ("::ffff:192.0.2.1", False), ("192.0.2.1", False), ("2001:db8::1", False),
     ("8.8.8.8", False)],
)  # fmt: skip
def test_is_internal(text: str, internal: bool) -> None:
    # names.is_internal: what marks a HELO's (or an MX host's) addresses as inside only.
    # Not ipaddress's is_private: the documentation ranges (192.0.2.0/24) are no inside.
    assert is_internal(ipaddress.ip_address(text)) is internal


# names.NON_PUBLIC_SUFFIXES, written out: RFC 6761 section 6, RFC 2606, RFC 8375's
# home.arpa (under arpa, and named as itself: a regression, it read ".arpa"), RFC 9476's
# .alt, ICANN's .internal, and the router defaults.
SPECIAL_USE = ["invalid", "test", "example", "example.com", "example.net", "example.org",
               "localhost", "local", "onion", "alt", "arpa", "home.arpa", "internal", "lan",
               "localdomain", "corp", "home", "intranet", "private"]  # fmt: skip


@pytest.mark.parametrize("suffix", SPECIAL_USE)
def test_each_special_use_suffix_is_named_in_the_evidence(suffix: str) -> None:
    # The evidence of RL_HELO_NOT_FQDN and RL_MAILFROM_SPECIAL_USE names the suffix, not
    # "(not a public suffix)": several of these are not in the Public Suffix List either.
    assert non_public_suffix(f"mx.{suffix}") == f".{suffix}"


def test_non_public_suffix_otherwise() -> None:
    assert non_public_suffix("mail-server") == "single label"
    # Regression (review): a TLD the bundled Public Suffix List does not know was
    # special-use without a lookup, so once ICANN delegates new ones every sender under
    # them would get RL_MAILFROM_SPECIAL_USE (4) on a host not upgraded since. DNS judges
    # it: an undelegated one gets its NXDOMAIN.
    assert non_public_suffix("mx.nosuchtld") is None
    assert non_public_suffix("mx.good-sender.net") is None
    assert non_public_suffix("mx.example.co.uk") is None  # only example.com/net/org


@pytest.mark.parametrize(
    ("text", "read_as"),
    [("::ffff:192.0.2.1", "192.0.2.1"), ("64:ff9b::c000:201", "192.0.2.1"),
     # Only the /96 well-known prefix (RFC 6052 section 2.1) carries an IPv4 address so;
     # RFC 8215's local-use 64:ff9b:1::/48 and the rest of the /64 do not.
     ("64:ff9b::1:c000:201", "64:ff9b::1:c000:201"),
     ("64:ff9b:1::c000:201", "64:ff9b:1::c000:201"),
     ("2001:db8::c000:201", "2001:db8::c000:201"), ("192.0.2.1", "192.0.2.1")],
)  # fmt: skip
def test_unmapped(text: str, read_as: str) -> None:
    assert unmapped(ipaddress.ip_address(text)) == ipaddress.ip_address(read_as)


@settings(max_examples=500, deadline=None)
@given(st.ip_addresses(v=4), st.sampled_from(["::ffff:", "64:ff9b::"]))
def test_an_ipv4_address_in_ipv6_form_is_judged_as_itself(
    ipv4: ipaddress.IPv4Address, prefix: str
) -> None:
    # IPv4-mapped (RFC 4291 section 2.5.5.2) and the NAT64 well-known prefix (RFC 6052
    # section 2.1): every judgement of an address is that of the IPv4 address carried.
    carried = ipaddress.IPv6Address(f"{prefix}{ipv4}")
    assert unmapped(carried) == ipv4
    for judge in (is_internal, is_public_host, is_multicast_or_broadcast):
        assert judge(carried) == judge(ipv4), judge.__name__


FULLWIDTH_DIGITS = {ord(digit): 0xFF10 + int(digit) for digit in "0123456789"}  # "1": U+FF11
OUR_ADDRESS_IN_FULLWIDTH = "198.51.100.25".translate(FULLWIDTH_DIGITS)


@pytest.mark.parametrize(
    "helo",
    [OUR_ADDRESS_IN_FULLWIDTH, "198\uff0e51\uff0e100\uff0e25", f"[{OUR_ADDRESS_IN_FULLWIDTH}]"],
)
def test_an_address_in_fullwidth_characters_is_invalid_yet_ours(helo: str) -> None:
    # Regression: UTS46 maps fullwidth digits and full stops to ASCII ones, so the bare
    # forms read as the name 198.51.100.25 (RL_HELO_NOT_FQDN, ".25 (not a public
    # suffix)"), and our own address in fullwidth, bare or bracketed, slipped past
    # RL_HELO_FORGED_LOCAL. RFC 1123 section 2.1: no host name is dotted-decimal.
    facts = HeloFacts(parse_helo(helo))
    hit, mismatch = check_helo(facts, PUBLIC_CLIENT, frozenset(), frozenset())
    assert hit.symbol == "RL_HELO_INVALID"
    problem = "an IPv4 address (198.51.100.25) in characters other than ASCII digits and dots"
    assert hit.options[1] == problem
    # Another host's address still, as in ASCII digits (test_a_malformed_literal_...).
    assert mismatch == Hit(
        "RL_HELO_LITERAL_MISMATCH", (f"helo={helo}", f"client is {PUBLIC_CLIENT}")
    )
    ours = frozenset({ipaddress.ip_address("198.51.100.25")})
    (forged,) = check_helo(facts, PUBLIC_CLIENT, frozenset(), ours)
    assert forged.symbol == "RL_HELO_FORGED_LOCAL"


async def test_no_address_evidence_gives_each_family_its_own_no() -> None:
    """Regression (journey review): an IPv6 client's HELO with NODATA to AAAA (asked first)
    and NXDOMAIN to A was "A/AAAA: nodata/nxdomain", the words sorted, not by family:
    A read as NODATA and AAAA as NXDOMAIN, the record an admin would look at wrong."""
    client = ipaddress.ip_address("2a00:1450:4001:82a::2005")
    helo = "half.helo-family.net"
    layer = KnownAnswers(
        {
            (reverse_name(client), dns.rdatatype.PTR): NotFound(NotFoundKind.NXDOMAIN, 300),
            (helo, dns.rdatatype.AAAA): NotFound(NotFoundKind.NODATA, 300),
            (helo, dns.rdatatype.A): NotFound(NotFoundKind.NXDOMAIN, 300),
        }
    )
    pipeline = Pipeline(Config(), layer)
    symbols = await symbols_for(pipeline, str(client), helo=helo)
    options = symbols["RL_HELO_NO_ADDRESS"].options
    assert options == (f"helo={helo}", "A: nxdomain, AAAA: nodata"), options


def test_no_address_evidence_names_each_outcome_once_and_four_addresses_at_most() -> None:
    nxdomain = NotFound(NotFoundKind.NXDOMAIN, 300)
    gone = HeloFacts(parse_helo("mx.gone-sender.net"), a=nxdomain, aaaa=nxdomain)
    (hit,) = check_helo(gone, PUBLIC_CLIENT, frozenset(), frozenset())
    assert hit.options == ("helo=mx.gone-sender.net", "A/AAAA: nxdomain")
    internal = tuple(ipaddress.ip_address(f"10.0.0.{n}") for n in range(1, 6))
    inside = HeloFacts(gone.helo, a=Answer(internal, 300), aaaa=NODATA)
    (hit,) = check_helo(inside, PUBLIC_CLIENT, frozenset(), frozenset())
    shown = "only non-public addresses 10.0.0.1, 10.0.0.2, 10.0.0.3, 10.0.0.4"
    assert hit.options == ("helo=mx.gone-sender.net", shown)


def test_internal_address_evidence_does_not_follow_the_answers_order() -> None:
    # Regression (review): the first four addresses in the resolver's order were shown, so
    # a rotating answer changed which appeared, and in which order, from message to
    # message. Now each once, in address order (IPv4 before IPv6), the first four.
    a = rotated("10.0.0.10 10.0.0.2 10.0.0.2")
    aaaa = rotated("fd00::3 fd00::1 fd00::2")
    options = {
        tuple(hit.options)
        for first, second in zip(a, aaaa, strict=True)
        for hit in check_helo(
            HeloFacts(parse_helo("lan.helo-order.net"), a=first, aaaa=second),
            PUBLIC_CLIENT,
            frozenset(),
            frozenset(),
        )
    }
    shown = "only non-public addresses 10.0.0.2, 10.0.0.10, fd00::1, fd00::2"
    assert options == {("helo=lan.helo-order.net", shown)}


IPV6_CLIENT = ipaddress.ip_address("2a00:1450::25")


@pytest.mark.parametrize(
    ("client", "first", "second"),
    [(PUBLIC_CLIENT, "A", "AAAA"), (IPV6_CLIENT, "AAAA", "A")],
)
async def test_a_helo_whose_first_family_is_nxdomain_has_no_address(
    client: IPAddress, first: str, second: str
) -> None:
    # Regression (review): the other family was asked after an NXDOMAIN, and its failure
    # turned RL_HELO_NO_ADDRESS into a zero-weight RL_HELO_TEMPFAIL. RFC 8020 section 2:
    # NXDOMAIN says the name has no records of any type; after one to A, AAAA is not
    # asked. After one to AAAA, A is (RFC 4074 section 4.2: some servers say NXDOMAIN to
    # AAAA for a name with an A record), and its NXDOMAIN settles it.
    helo = "gone.helo-family.net"
    layer = KnownAnswers(
        {
            (reverse_name(client), dns.rdatatype.PTR): NotFound(NotFoundKind.NXDOMAIN, 300),
            (helo, dns.rdatatype.from_text(first)): NotFound(NotFoundKind.NXDOMAIN, 300),
            (helo, dns.rdatatype.from_text(second)): (
                TIMED_OUT if first == "A" else NotFound(NotFoundKind.NXDOMAIN, 300)
            ),
        }
    )
    request = parse_request({"ip": str(client), "helo": helo}).request

    async def judged() -> tuple[list[str], list[Hit]]:
        """Which families of the HELO were asked, and the HELO's hits."""
        layer.asked.clear()
        deadline = asyncio.get_running_loop().time() + 2.0
        facts = await gather_facts(request, layer, Limits(10, 10), deadline, NO_ALLOWLIST)
        assert facts.helo is not None
        hits = check_helo(facts.helo, client, frozenset(), frozenset())
        return [rdtype for name, rdtype in layer.asked if name == helo], hits

    no_address = Hit("RL_HELO_NO_ADDRESS", (f"helo={helo}", "A/AAAA: nxdomain"))
    assert await judged() == ([first] if first == "A" else [first, second], [no_address])
    # One the layer does not trust (its resolver says the root does not exist) is a
    # failure, not an NXDOMAIN: the other family is asked, and nothing is scored.
    layer.untrusted = TempFail(FailureKind.UNTRUSTED, "the resolver says the root has no SOA")
    asked, hits = await judged()
    assert (asked, [hit.symbol for hit in hits]) == ([first, second], ["RL_HELO_TEMPFAIL"])


async def test_an_nxdomain_to_aaaa_is_checked_with_a() -> None:
    # Regression: an NXDOMAIN to AAAA made an IPv6 client's HELO a name that does not
    # exist (RL_HELO_NO_ADDRESS), A unasked, though some servers answer NXDOMAIN to AAAA
    # for a name that has an A record (RFC 4074 section 4.2).
    helo = "mx.aaaa-broken.net"
    layer = KnownAnswers(
        {
            (reverse_name(IPV6_CLIENT), dns.rdatatype.PTR): NotFound(NotFoundKind.NXDOMAIN, 300),
            (helo, dns.rdatatype.AAAA): NotFound(NotFoundKind.NXDOMAIN, 300),
            (helo, dns.rdatatype.A): Answer((ipaddress.ip_address("81.2.69.160"),), 300),
        }
    )
    request = parse_request({"ip": str(IPV6_CLIENT), "helo": helo}).request
    deadline = asyncio.get_running_loop().time() + 2.0
    facts = await gather_facts(request, layer, Limits(10, 10), deadline, NO_ALLOWLIST)
    assert facts.helo is not None
    hits = check_helo(facts.helo, IPV6_CLIENT, frozenset(), frozenset())
    assert "RL_HELO_NO_ADDRESS" not in {hit.symbol for hit in hits}, hits
    assert (helo, "A") in layer.asked


@pytest.mark.parametrize("client", [ipaddress.ip_address("81.2.69.160"), IPV6_CLIENT])
async def test_after_a_timeout_the_other_family_is_not_asked(client: IPAddress) -> None:
    # Regression (review): a HELO in a zone whose servers do not answer had A time out
    # (0.5 s), then AAAA asked of the same servers ran into the request deadline: every
    # such check took the whole 0.8 s, and RdnsScorerLatencyHigh fired on ordinary mail.
    helo = "mx.silent-zone.net"
    first = "A" if client.version == 4 else "AAAA"
    layer = KnownAnswers(
        {
            (reverse_name(client), dns.rdatatype.PTR): NotFound(NotFoundKind.NXDOMAIN, 300),
            (helo, dns.rdatatype.from_text(first)): TIMED_OUT,
        }
    )
    request = parse_request({"ip": str(client), "helo": helo}).request
    deadline = asyncio.get_running_loop().time() + 2.0
    facts = await gather_facts(request, layer, Limits(10, 10), deadline, NO_ALLOWLIST)
    assert facts.helo is not None
    assert [rdtype for name, rdtype in layer.asked if name == helo] == [first]
    (hit,) = check_helo(facts.helo, client, frozenset(), frozenset())
    assert hit == Hit("RL_HELO_TEMPFAIL", (f"helo={helo}", f"{first}: {describe(TIMED_OUT)}"))


@pytest.mark.parametrize("aaaa", ["::ffff:10.0.0.5", "64:ff9b::a00:5"])
def test_a_helo_whose_aaaa_maps_the_clients_ipv4_address_is_the_clients(aaaa: str) -> None:
    # Regression: an IPv4-mapped (RFC 4291 section 2.5.5.2) or NAT64 (RFC 6052) AAAA of
    # the client's own address did not count as the client's, though the request's ip is
    # read unmapped: an internal relay greeting with such a name was RL_HELO_NO_ADDRESS.
    client = ipaddress.ip_address("10.0.0.5")
    mapped = Answer((ipaddress.ip_address(aaaa),), 300)
    facts = HeloFacts(parse_helo("relay.partner-corp.net"), a=NODATA, aaaa=mapped)
    assert check_helo(facts, client, frozenset(), frozenset()) == []
    (hit,) = check_helo(facts, ipaddress.ip_address("10.0.0.6"), frozenset(), frozenset())
    assert hit.symbol == "RL_HELO_NO_ADDRESS"


def test_a_provider_helo_confirmed_by_a_mapped_aaaa_keeps_its_exemption() -> None:
    # Regression: the generic check judged such a name unconfirmed (check_helo's
    # ``confirmed``), as if it were another host's: a big sender's relay name lost the
    # exemption a confirmed one has (generic/providers.py).
    client = ipaddress.ip_address("81.2.69.160")
    helo = parse_helo("81-2-69-160.outbound.protection.outlook.com")
    mapped = Answer((ipaddress.ip_address("::ffff:81.2.69.160"),), 300)
    assert (
        check_helo(HeloFacts(helo, a=NODATA, aaaa=mapped), client, frozenset(), frozenset()) == []
    )
    elsewhere = Answer((ipaddress.ip_address("81.2.69.161"),), 300)
    (hit,) = check_helo(HeloFacts(helo, a=elsewhere), client, frozenset(), frozenset())
    assert hit.symbol == "RL_HELO_GENERIC"


@pytest.mark.parametrize("helo", ["mail.例子.中国", "MAIL.XN--FSQU00A.XN--FIQS8S."])
async def test_a_helo_in_idna_is_shown_in_both_forms(pipeline: Pipeline, helo: str) -> None:
    # Regression (review): the evidence of a HELO that is no host named only its A-label,
    # "helo=mail.xn--fsqu00a.xn--fiqs8s", which a reader of the MTA's log (it logs the
    # U-labels the client sent) cannot tell is "mail.例子.中国". Both are shown, the A-label
    # first: a confusable ("paypal" with Cyrillic letters) reads as what it is.
    symbols = await symbols_for(pipeline, world.CONFIRMED_IP, helo=helo)
    assert symbols["RL_HELO_NO_ADDRESS"].options[0] == (
        "helo=mail.xn--fsqu00a.xn--fiqs8s (mail.例子.中国)"
    )
    confusable = await symbols_for(pipeline, world.CONFIRMED_IP, helo="\u0440\u0430ypal.com")
    assert confusable["RL_HELO_NO_ADDRESS"].options[0] == (
        "helo=xn--ypal-43d9g.com (\u0440\u0430ypal.com)"
    )
    # An ASCII name is shown as it was resolved, once.
    plain = await symbols_for(pipeline, world.CONFIRMED_IP, helo="nohost.good-sender.net")
    assert plain["RL_HELO_NO_ADDRESS"].options[0] == "helo=nohost.good-sender.net"
