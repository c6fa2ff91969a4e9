"""The pipeline mail admins run, end to end: a real Postfix receives an SMTP session and
hands it through its milter to a real rspamd 3.4 (proxy worker in milter mode), whose
rdns_scorer plugin asks the real service; rspamd's milter writes the symbols into the
message (X-Spamd-Result), which the test reads back from Postfix's queue.

What gets scored is what Postfix passed: the client address the connection came from,
the HELO, the MAIL FROM, and the client name Postfix looked up itself (reverse, then
forward: "unknown" unless they agree). So every DNS answer, Postfix's included, comes
from one unbound serving the test world on port 53 of a loopback address of this run.
"""

from __future__ import annotations

import re
import smtplib
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import pytest

from tests.helpers import eventually
from tests.support.fakedns import FaultyDns, dead_port
from tests.support.ports import free_loopback_address, free_port
from tests.support.postfix import QUEUED, Postfix, postfix_available
from tests.support.rspamd import (
    STOCK_PLUGINS,
    Rspamd,
    checked_run,
    rspamd_available,
    rspamd_version,
)
from tests.support.service import ScorerProcess
from tests.support.unbound import Unbound
from tests.world import (
    GOOD_DOMAIN,
    GOOD_MX,
    HELO_NO_ADDRESS,
    NXDOMAIN_DOMAIN,
    UNVERIFIED_IP,
    build_zones,
)

# No skip: a missing package must fail loudly (`make test` installs them).
assert rspamd_available(), "rspamd is not installed (`make test` installs it)"
assert postfix_available(), "postfix is not installed (`make test` installs it)"

TOKEN = "postfix-test-token"
# Clients on loopback (Linux answers on all of 127/8), each with the DNS its case needs.
NO_PTR_CLIENT = "127.0.0.2"
CONFIRMED_CLIENT = "127.0.0.3"
CONFIRMED_CLIENT_NAME = "relay.loopback-sender.net"
# Confirmed too, so Postfix passes it on, but a name the ISP's pattern gave the address.
GENERIC_CLIENT = "127.0.0.4"
GENERIC_CLIENT_NAME = "127-0-0-4.dyn.some-isp.net"

# Loopback clients are skipped by default, by the service and the plugin alike.
SCORER_CONFIG = f"""
[server]
token = "{TOKEN}"

[policy]
skip_networks = []
"""
PLUGIN_CONF = 'servers = "{address}";\ntoken = "{token}";\ncheck_local = true;'
# rspamd's milter adds X-Spamd-Result (every symbol, its score and options); by
# default milter_headers writes nothing for a local client.
MILTER_HEADERS_CONF = """
milter_headers {
  use = ["x-spamd-result"];
  skip_local = false;
}
"""


@pytest.fixture(scope="module")
def resolver(servfail_dns: FaultyDns) -> Iterator[Unbound]:
    """The test world plus the clients' reverse zone, on port 53: Postfix's libc resolver
    asks no other port."""
    zones = build_zones(dead_port(), servfail_dns.port)
    zones.ptr(CONFIRMED_CLIENT, CONFIRMED_CLIENT_NAME)
    zones.address(CONFIRMED_CLIENT_NAME, CONFIRMED_CLIENT)
    zones.ptr(GENERIC_CLIENT, GENERIC_CLIENT_NAME)
    zones.address(GENERIC_CLIENT_NAME, GENERIC_CLIENT)
    server = Unbound(zones, interface=free_loopback_address(53), port=53).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def scorer(resolver: Unbound) -> Iterator[ScorerProcess]:
    process = ScorerProcess(resolver.nameserver, SCORER_CONFIG).start()
    yield process
    process.stop()


@pytest.fixture(scope="module")
def rspamd(resolver: Unbound, scorer: ScorerProcess, hs_cache: Path) -> Iterator[Rspamd]:
    conf = PLUGIN_CONF.format(address=scorer.address, token=TOKEN)
    plugins = (STOCK_PLUGINS / "milter_headers.lua",)
    server = Rspamd(
        resolver.nameserver, conf, hs_cache, MILTER_HEADERS_CONF, extra_plugins=plugins, milter=True
    )
    yield from checked_run(server)


@pytest.fixture(scope="module")
def postfix(resolver: Unbound, rspamd: Rspamd) -> Iterator[Postfix]:
    server = Postfix(f"127.0.0.1:{rspamd.milter_port}", resolver.interface)
    try:
        yield server.start()
    finally:
        server.stop()
        server.cleanup()


def send(
    postfix: Postfix,
    client: str,
    helo: str,
    mail_from: str,
    port: int | None = None,
    xclient: str | None = None,
) -> str:
    """One SMTP session from ``client`` (to ``port``, else Postfix's own); the queue ID
    Postfix gave the message. A sender that is not ASCII goes with SMTPUTF8 (RFC 6531).
    ``xclient``: the attributes of an XCLIENT command sent after the EHLO, as a proxy
    sends it, followed by the EHLO again (Postfix's reply to XCLIENT is a new greeting)."""
    message = (
        f"From: <{mail_from}>\r\nTo: <rcpt@{postfix.domain}>\r\nSubject: rdns-scorer\r\n"
        "Message-ID: <postfix-test@example.com>\r\n\r\nHello.\r\n"
    ).encode()
    options = [] if mail_from.isascii() else ["SMTPUTF8"]
    with smtplib.SMTP(
        "127.0.0.1",
        port or postfix.port,
        local_hostname=helo,
        timeout=30,
        source_address=(client, 0),
    ) as smtp:
        smtp.ehlo()
        if xclient is not None:
            code, reply = smtp.docmd("XCLIENT", xclient)
            assert code == 220, reply
            smtp.ehlo()
        smtp.mail(mail_from, options)
        smtp.rcpt(f"rcpt@{postfix.domain}")
        code, reply = smtp.data(message)
    assert code == 250, reply
    queued = QUEUED.search(reply.decode())
    assert queued, reply
    return queued.group(1)


def spamd_result(headers: str) -> dict[str, str]:
    """X-Spamd-Result's RL_* symbols -> their options, as one string (an option may hold
    a comma, which rspamd also puts between options)."""
    unfolded = re.sub(r"\r?\n[ \t]+", " ", headers)
    found = re.search(r"^X-Spamd-Result: (.*)$", unfolded, re.MULTILINE)
    assert found, headers
    symbols = re.findall(r"(RL_[A-Z_]+)\([-0-9.]+\)(?:\[(.*?)\])?(?:;|$)", found.group(1))
    return dict(symbols)


CASES = [
    # No PTR: Postfix names the client "unknown", which is no name to the service.
    pytest.param(
        NO_PTR_CLIENT, HELO_NO_ADDRESS, f"a@{NXDOMAIN_DOMAIN}", "unknown",
        {"RL_PTR_MISSING", "RL_HELO_NO_ADDRESS", "RL_MAILFROM_NXDOMAIN"},
        id="no-ptr-helo-without-address-nxdomain-sender",
    ),
    # The PTR name resolves back to the client: Postfix's name for it, and a HELO
    # naming the client itself (its loopback address is its own, so not "non-public").
    pytest.param(
        CONFIRMED_CLIENT, CONFIRMED_CLIENT_NAME, f"sender@{GOOD_DOMAIN}", CONFIRMED_CLIENT_NAME,
        set(), id="confirmed-ptr-good-helo-good-sender",
    ),
    # Postfix's name for the client reaches the service: RL_PTR_GENERIC's evidence
    # quotes it. The HELO is a name at a public address, clean from any client.
    pytest.param(
        GENERIC_CLIENT, GOOD_MX, f"sender@{GOOD_DOMAIN}", GENERIC_CLIENT_NAME,
        {"RL_PTR_GENERIC"}, id="generic-ptr-named-by-postfix",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("client", "helo", "mail_from", "postfix_name", "expected"), CASES)
def test_postfix_session_is_scored_through_the_milter(
    postfix: Postfix,
    rspamd: Rspamd,
    scorer: ScorerProcess,
    client: str,
    helo: str,
    mail_from: str,
    postfix_name: str,
    expected: set[str],
) -> None:
    queue_id = send(postfix, client, helo, mail_from)

    # What Postfix itself made of the client: its own reverse + forward lookup.
    connected = f"connect from {postfix_name}[{client}]"
    assert connected in eventually(postfix.log, lambda log: connected in log), postfix.log()

    # The service was asked about this very session (Postfix's queue ID came along),
    # with what the client sent, the sender as the milter passes it (in angle
    # brackets); none of them skipped it as a local client.
    asked = re.compile(
        rf'ip="{re.escape(client)}" helo="{re.escape(helo)}" from="<{re.escape(mail_from)}>" '
        rf'queue_id="{queue_id}"'
    )
    assert asked.search(eventually(scorer.log, asked.search)), scorer.log()[-3000:]

    symbols = spamd_result(postfix.queued_headers(queue_id))
    assert set(symbols) == expected, rspamd.log()[-3000:]
    for name, evidence in symbols.items():
        if name.startswith("RL_PTR_"):
            # "unknown" is no name: then the evidence quotes no MTA hostname.
            if postfix_name == "unknown":
                assert "MTA hostname" not in evidence
            else:
                assert f"MTA hostname: {postfix_name}" in evidence
    if "RL_PTR_MISSING" in symbols:
        assert f"no PTR for {client}" in symbols["RL_PTR_MISSING"]
    if "RL_HELO_NO_ADDRESS" in symbols:
        assert helo in symbols["RL_HELO_NO_ADDRESS"]
    if "RL_MAILFROM_NXDOMAIN" in symbols:
        assert NXDOMAIN_DOMAIN in symbols["RL_MAILFROM_NXDOMAIN"]


def test_a_sender_rspamd_cannot_read_through_the_milter_is_said_not_checked(
    postfix: Postfix, rspamd: Rspamd, scorer: ScorerProcess
) -> None:
    # rspamd 3.4 drops an envelope sender with a non-ASCII character (SMTPUTF8) before
    # the plugin runs, and the milter passes no From header to fall back on: the MAIL
    # FROM checks are not made (docs/rspamd.md). Regression (review): silently so; the
    # plugin now says it in rspamd's log. Over HTTP the header is there and is judged.
    # rspamd 3.12 (Debian 13) reads such a sender: it is checked, as over HTTP.
    sender = f"usér@{NXDOMAIN_DOMAIN}"
    queue_id = send(postfix, CONFIRMED_CLIENT, CONFIRMED_CLIENT_NAME, sender)
    asked = re.compile(rf'ip="{re.escape(CONFIRMED_CLIENT)}" [^\n]*queue_id="{queue_id}"')
    line = asked.search(eventually(scorer.log, asked.search))
    said = "the MTA passed no envelope sender rspamd could read"
    symbols = spamd_result(postfix.queued_headers(queue_id))
    dropped = {(3, 4): True, (3, 12): False}
    assert rspamd_version() in dropped, f"rspamd {rspamd_version()}: add what it does here"
    if dropped[rspamd_version()]:
        assert line is not None and ' from="" ' in line.group(0), line  # none ("<>": null)
        assert said in eventually(rspamd.log, lambda log: said in log)
        assert not any(name.startswith("RL_MAILFROM_") for name in symbols)
    else:
        assert line is not None and f' from="<{sender}>" ' in line.group(0), line
        assert NXDOMAIN_DOMAIN in symbols["RL_MAILFROM_NXDOMAIN"]
        assert said not in rspamd.log()


# Postfix as a content filter's reinjection path: mail arrives on FILTER_IN (no milter
# there), goes to the filter (here Postfix's own smtp client, standing in for amavis)
# with XFORWARD, and comes back on FILTER_OUT, whose smtpd has the milter.
FILTER_MAIN = """
smtp_send_xforward_command = yes
smtpd_authorized_xforward_hosts = 127.0.0.0/8
smtpd_authorized_xclient_hosts = 127.0.0.0/8
smtp_dns_support_level = disabled
"""
FILTER_MASTER = """\
127.0.0.1:{in} inet n - n - - smtpd
  -o smtpd_milters=
  -o content_filter=smtp:[127.0.0.1]:{out}
127.0.0.1:{out} inet n - n - - smtpd
qmgr unix n - n 300 1 qmgr
smtp unix - - n - - smtp
bounce unix - - n - 0 bounce
defer unix - - n - 0 bounce
trace unix - - n - 0 bounce
error unix - - n - - error
retry unix - - n - - error
"""


class Filtering(NamedTuple):
    postfix: Postfix
    port_in: int  # where mail arrives
    port_out: int  # where the filter reinjects it: the smtpd with the milter


@pytest.fixture(scope="module")
def filtering(resolver: Unbound, rspamd: Rspamd) -> Iterator[Filtering]:
    ports = {"in": free_port(), "out": free_port()}
    server = Postfix(
        f"127.0.0.1:{rspamd.milter_port}",
        resolver.interface,
        main_extra=FILTER_MAIN,
        master_extra=FILTER_MASTER.format(**ports),
    )
    try:
        yield Filtering(server.start(), ports["in"], ports["out"])
    finally:
        server.stop()
        server.cleanup()


def test_a_milter_behind_a_content_filter_sees_the_filter_not_the_client(
    filtering: Filtering, scorer: ScorerProcess
) -> None:
    # docs/rspamd.md, "With Postfix": XFORWARD never reaches a milter (Postfix gives the
    # milter the connection's own address), so rspamd on the smtpd a content filter
    # reinjects into scores the filter (or skips it as local): the client must be
    # scanned on the smtpd facing it.
    sender = f"filtered@{GOOD_DOMAIN}"
    postfix = filtering.postfix
    send(postfix, NO_PTR_CLIENT, HELO_NO_ADDRESS, sender, port=filtering.port_in)
    asked = re.compile(rf'ip="([^"]+)" helo="([^"]*)" from="<{re.escape(sender)}>"')
    line = asked.search(eventually(scorer.log, asked.search, timeout=30))
    assert line is not None, postfix.log()[-3000:]
    assert line.groups() == ("127.0.0.1", f"mx.{postfix.domain}")
    assert f'ip="{NO_PTR_CLIENT}" helo="{HELO_NO_ADDRESS}" from="<{sender}>"' not in scorer.log()


@pytest.mark.parametrize(
    ("xclient", "hostname"),
    [
        # A proxy's XCLIENT (nginx, a load balancer) gives the milter the client's
        # address and name, and the HELO of the EHLO sent after it.
        (f"ADDR={UNVERIFIED_IP} NAME=[UNAVAILABLE]", None),
        # Without NAME Postfix keeps the proxy's own name ("localhost") for the client.
        (f"ADDR={UNVERIFIED_IP}", "localhost"),
    ],
)
def test_xclient_is_what_the_milter_sees(
    filtering: Filtering, rspamd: Rspamd, xclient: str, hostname: str | None
) -> None:
    queue_id = send(
        filtering.postfix, "127.0.0.1", "Mail-Server", f"x@{GOOD_DOMAIN}",
        port=filtering.port_out, xclient=xclient,
    )  # fmt: skip
    done = f"qid: <{queue_id}>"
    logged = eventually(rspamd.log, lambda log: done in log)
    line = next(x for x in logged.splitlines() if done in x and "rspamd_task_write_log" in x)
    assert f"ip: {UNVERIFIED_IP}," in line, line
    assert "RL_PTR_UNVERIFIED" in line and "RL_HELO_NOT_FQDN" in line, line
    assert (f"MTA hostname: {hostname}" in line) == (hostname is not None), line
