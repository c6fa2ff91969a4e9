"""Legitimate mail end to end (request in, symbols out): what big senders, bounces,
forwarders, mailing lists and SMTPUTF8 clients send scores nothing, and a DNS failure
anywhere in the HELO or MAIL FROM checks scores nothing either (fail-open).

The world here is its own unbound: the names big senders really use (their PTR, HELO
and bounce domains) would be out of place in tests/world.py's made-up one. Addresses
are public ones (a documentation range is no mail host: RL_MAILFROM_BOGUS_MX).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from scorer.pipeline import Pipeline
from tests.conftest import make_config
from tests.helpers import symbols_for
from tests.support.fakedns import FaultyDns, dead_port
from tests.support.unbound import Unbound, Zones

# A small business's own server: confirmed PTR, dual-stack.
DOMAIN = "smallbiz.de"
HOST = f"mail.{DOMAIN}"
HOST_IP = "81.2.69.10"
HOST_IP6 = "2a00:1450:4001::10"
IDN_HOST = "mail.xn--bcher-kva.de"  # mail.bücher.de
V6_ONLY_HELO = "v6.smallbiz.de"  # a dual-stack host's name with only an AAAA
V4_ONLY_HELO = "v4.smallbiz.de"  # ... and one with only an A
# Zones whose servers fail: SERVFAIL, or no answer at all (a timeout).
SERVFAIL_ZONE = "servfail.smallbiz-dns.net"
TIMEOUT_ZONE = "dead.smallbiz-dns.net"

# (client, HELO, the MTA's name for the client) of big senders, as they connect.
GMAIL = ("209.85.220.41", "mail-sor-f41.google.com", "mail-sor-f41.google.com")
# Microsoft 365 greets with a pool name that is not its PTR and resolves elsewhere.
OUTLOOK = (
    "40.107.22.61",
    "EUR05-AM6-obe.outbound.protection.outlook.com",
    "mail-am6eur05on2061.outbound.protection.outlook.com",
)
SES = ("54.240.8.30", "a8-30.smtp-out.amazonses.com", "a8-30.smtp-out.amazonses.com")


def _zones(servfail_port: int) -> Zones:
    zones = Zones()
    for ip, _helo, name in (GMAIL, OUTLOOK, SES):
        zones.ptr(ip, name)
        zones.address(name, ip)
    zones.address(OUTLOOK[1], "52.101.73.1", "52.101.73.2")
    zones.mx("gmail.com", 5, "gmail-smtp-in.l.google.com")
    zones.address("gmail-smtp-in.l.google.com", "142.250.27.26")
    zones.mx("us-west-2.amazonses.com", 10, "feedback-smtp.us-west-2.amazonses.com")
    zones.address("feedback-smtp.us-west-2.amazonses.com", "54.240.8.100")

    zones.ptr(HOST_IP, HOST)
    zones.ptr(HOST_IP6, HOST)
    zones.address(HOST, HOST_IP, HOST_IP6)
    zones.address(IDN_HOST, HOST_IP)
    zones.address(V6_ONLY_HELO, "2a00:1450:4001::11")
    zones.address(V4_ONLY_HELO, "81.2.69.11")
    zones.mx(DOMAIN, 10, HOST)
    zones.mx("xn--bcher-kva.de", 10, HOST)
    zones.mx("bounces.smallbiz.de", 10, HOST)  # a subdomain of its own for bounces
    zones.mx("lists.smallbiz.de", 10, HOST)
    # No MX: the domain's own AAAA is its mail host (RFC 5321 section 5.1).
    zones.address("v6-only.org", "2a00:1450:4001::50")
    # A root MX beside a real host: no RFC 7505 null MX, a host to deliver to.
    zones.add("root-beside.org", "MX", "0 .")
    zones.mx("root-beside.org", 10, HOST)
    # The first MX host is gone, the second takes the mail.
    zones.mx("one-dead-mx.org", 10, "gone.one-dead-mx.org")
    zones.mx("one-dead-mx.org", 20, HOST)
    zones.mx("v6-mx.org", 10, V6_ONLY_HELO)  # an MX host with only an AAAA
    # Under a suffix of the Public Suffix List's private section: a domain of its own.
    zones.address("someone.github.io", "185.199.108.153")

    zones.mx("mx-servfail.org", 10, f"mx.{SERVFAIL_ZONE}")
    zones.mx("mx-timeout.org", 10, f"mx.{TIMEOUT_ZONE}")
    zones.mx("mx-servfail-and-gone.org", 10, f"mx.{SERVFAIL_ZONE}")
    zones.mx("mx-servfail-and-gone.org", 20, "gone.mx-servfail-and-gone.org")
    zones.stub(SERVFAIL_ZONE, servfail_port)
    zones.stub(TIMEOUT_ZONE, dead_port())
    return zones


@pytest.fixture(scope="module")
def legit_unbound(servfail_dns: FaultyDns) -> Iterator[Unbound]:
    server = Unbound(_zones(servfail_dns.port)).start()
    yield server
    server.stop()


@pytest.fixture
def legit(legit_unbound: Unbound) -> Pipeline:
    return Pipeline(make_config(legit_unbound.nameserver))


@pytest.mark.parametrize(
    ("sender", "mail_from"),
    [
        (GMAIL, "someone@gmail.com"),
        (OUTLOOK, "someone@gmail.com"),
        (
            SES,
            "0101018c1234abcd-1234abcd-aaaa-bbbb-cccc-0123456789ab-000000@us-west-2.amazonses.com",
        ),
        (SES, "<>"),
    ],
)
async def test_big_senders_score_nothing(
    legit: Pipeline, sender: tuple[str, str, str], mail_from: str
) -> None:
    ip, helo, hostname = sender
    fields = {"helo": helo, "hostname": hostname, "mail_from": mail_from}
    assert await symbols_for(legit, ip, **fields) == {}


@pytest.mark.parametrize(
    ("ip", "helo"),
    [
        (HOST_IP, "MAIL.SmallBiz.DE."),  # case and a final dot (the root label)
        (HOST_IP, f"[{HOST_IP}]"),  # RFC 5321 section 4.1.3 literals of its own address
        (HOST_IP, f"[IPv6:::ffff:{HOST_IP}]"),
        (HOST_IP6, "[IPv6:2A00:1450:4001:0:0:0:0:10]"),
        (HOST_IP6, "[ipv6:2a00:1450:4001::10]"),
        (HOST_IP, IDN_HOST),  # A-labels
        (HOST_IP, "mail.bücher.de"),  # U-labels, from an SMTPUTF8 client (RFC 6531)
        (HOST_IP, "MAIL.BÜCHER.DE."),
        (HOST_IP, "mail\u3002bücher\u3002de"),  # ideographic full stops: UTS46 maps them
        (HOST_IP, V6_ONLY_HELO),  # a dual-stack host's name, asked over IPv4
        (HOST_IP6, V4_ONLY_HELO),  # ... and over IPv6
    ],
)
async def test_legitimate_greetings_score_nothing(legit: Pipeline, ip: str, helo: str) -> None:
    assert await symbols_for(legit, ip, helo=helo, hostname=HOST) == {}


@pytest.mark.parametrize(
    "mail_from",
    [
        "bounce@bounces.smallbiz.de",
        "Bounce@Bounces.SmallBiz.DE.",
        # Forwarders' SRS (SRS0, and SRS1 for a forward of a forward), BATV, VERP.
        "SRS0=HHH=TT=example.org=user@smallbiz.de",
        "SRS1=HHH=forwarder.example=HHH=TT=example.org=user@smallbiz.de",
        "prvs=1234abcd5=user@smallbiz.de",
        "list-bounces+user=example.org@lists.smallbiz.de",
        # VERP of a long recipient: a local part over RFC 5321's 64 octets (section
        # 4.5.3.1.1), as Postfix takes it and real bounce addresses often are.
        "list-bounces+firstname.lastname=marketing-team.example-company.co.uk@lists.smallbiz.de",
        "<@relay.smallbiz.de:user@smallbiz.de>",  # a source route (RFC 5321 appendix C)
        '"john doe"@smallbiz.de',
        "用户@smallbiz.de",  # RFC 6531 local part
        "Jörg@BÜCHER.de",
        "user@v6-only.org",
        "user@root-beside.org",
        "user@one-dead-mx.org",
        "user@v6-mx.org",
        "user@someone.github.io",
    ],
)
async def test_legitimate_senders_score_nothing(legit: Pipeline, mail_from: str) -> None:
    assert await symbols_for(legit, HOST_IP, helo=HOST, mail_from=mail_from) == {}


@pytest.mark.parametrize(
    ("helo", "mail_from", "symbols"),
    [
        (f"mx.{SERVFAIL_ZONE}", f"user@{DOMAIN}", {"RL_HELO_TEMPFAIL"}),
        (f"mx.{TIMEOUT_ZONE}", f"user@{DOMAIN}", {"RL_HELO_TEMPFAIL"}),
        (HOST, f"user@{SERVFAIL_ZONE}", {"RL_MAILFROM_TEMPFAIL"}),
        (HOST, f"user@{TIMEOUT_ZONE}", {"RL_MAILFROM_TEMPFAIL"}),
        (HOST, "user@mx-servfail.org", {"RL_MAILFROM_TEMPFAIL"}),
        (HOST, "user@mx-timeout.org", {"RL_MAILFROM_TEMPFAIL"}),
        # One MX host gone, the other's lookup failed: it may take the mail.
        (HOST, "user@mx-servfail-and-gone.org", {"RL_MAILFROM_TEMPFAIL"}),
    ],
)
async def test_a_dns_failure_scores_nothing(
    legit: Pipeline, helo: str, mail_from: str, symbols: set[str]
) -> None:
    found = await symbols_for(legit, HOST_IP, helo=helo, mail_from=mail_from)
    assert set(found) == symbols
    assert all(symbol.score == 0.0 for symbol in found.values()), found
