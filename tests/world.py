"""The DNS world the tests run in, served by a real unbound (see tests/conftest.py).

Names are under real public suffixes (so the PSL treats them as public) but
made up; unbound answers NXDOMAIN for everything not listed, and never asks
the internet.
"""

from __future__ import annotations

from tests.support.unbound import Zones

# PTR family
CONFIRMED_IP = "203.0.113.10"
CONFIRMED_NAME = "mx1.good-sender.net"
MISSING_PTR_IP = "203.0.113.11"
UNVERIFIED_IP = "203.0.113.12"
UNVERIFIED_NAME = "mail.unverified-sender.net"
MULTI_PTR_IP = "203.0.113.13"
GENERIC_IP = "203.0.113.14"
GENERIC_NAME = "203-0-113-14.dyn.some-isp.net"
FORWARD_TEMPFAIL_IP = "203.0.113.15"
PROVIDER_IP = "203.0.113.16"
PROVIDER_NAME = "a16-113.smtp-out.amazonses.com"
MANY_PTR_IP = "203.0.113.17"
# A PTR name whose last label ends in an escaped dot (the labels "mail" and "odd."):
# any bytes are allowed in a label (RFC 2181 section 11).
ESCAPED_DOT_IP = "203.0.113.18"
ESCAPED_DOT_NAME = "mail.odd\\."
ROOT_PTR_IP = "203.0.113.19"  # "PTR .": the root, no host name
INTERNAL_PTR_IP = "203.0.113.20"  # a confirmed PTR under no public suffix
INTERNAL_PTR_NAME = "relay.partner.corp"
# A shared host with more PTR names than max_ptr_names (10): its partner's name, the
# one that confirms, sorts after the hoster's twelve (which resolve nowhere).
SHARED_PTR_IP = "203.0.113.21"
SHARED_PTR_PARTNER = "zz-partner.net"
SHARED_PTR_NAME = f"relay.{SHARED_PTR_PARTNER}"
CONFIRMED_IP6 = "2001:db8::25"
CONFIRMED_NAME6 = "mail6.good-sender.net"
MISSING_PTR_IP6 = "2001:db8::26"
PTR_TIMEOUT_IP = "198.51.100.7"  # its reverse zone is delegated to a dead server
PTR_SERVFAIL_IP = "192.0.2.7"  # its reverse zone answers SERVFAIL

# HELO family
HELO_NO_ADDRESS = "noaddr.good-sender.net"
# A HELO resolving to clients whose PTR does not name it (missing, unverified, generic).
SELF_NAMED_HELO = "self.good-sender.net"
HELO_TIMEOUT = "mx.dead-zone.net"
HELO_SERVFAIL = "mx.servfail-zone.net"

# MAIL FROM family
GOOD_DOMAIN = "good-sender.net"
GOOD_MX = "mx.good-sender.net"
GOOD_MX_IP = "81.2.69.160"
IMPLICIT_MX_DOMAIN = "implicit-mx.org"
IMPLICIT_PRIVATE_DOMAIN = "implicit-private.org"  # no MX, A 127.0.0.1 only
IMPLICIT_DUAL_DOMAIN = "implicit-dual.org"  # no MX, a private A and a public AAAA
NXDOMAIN_DOMAIN = "no-such-domain.net"
NO_MAIL_HOST_DOMAIN = "no-mail-host.org"
NULL_MX_DOMAIN = "null-mx.org"
BOGUS_MX_DOMAIN = "bogus-mx.org"
IDN_DOMAIN = "bücher-versand.de"
IDN_DOMAIN_ASCII = "xn--bcher-versand-wob.de"
MANY_MX_DOMAIN = "many-mx.org"  # 15 MX hosts, none of which resolves
TIMEOUT_DOMAIN = "dead-zone.net"
SERVFAIL_DOMAIN = "servfail-zone.net"


def build_zones(dead_port: int, servfail_port: int) -> Zones:
    zones = Zones()
    zones.ptr(CONFIRMED_IP, CONFIRMED_NAME)
    zones.address(CONFIRMED_NAME, CONFIRMED_IP)
    zones.ptr(UNVERIFIED_IP, UNVERIFIED_NAME)
    zones.address(UNVERIFIED_NAME, "198.51.100.99")
    zones.ptr(MULTI_PTR_IP, "a.multi-ptr.net", "b.multi-ptr.net", "c.multi-ptr.net")
    zones.address("a.multi-ptr.net", "198.51.100.1")
    zones.address("b.multi-ptr.net", "198.51.100.2", MULTI_PTR_IP)
    zones.ptr(GENERIC_IP, GENERIC_NAME)
    zones.address(GENERIC_NAME, GENERIC_IP)
    zones.ptr(FORWARD_TEMPFAIL_IP, "host.dead-zone.net")
    zones.ptr(PROVIDER_IP, PROVIDER_NAME)
    zones.address(PROVIDER_NAME, PROVIDER_IP)
    zones.ptr(MANY_PTR_IP, *(f"n{i}.many-ptr.net" for i in range(15)))
    zones.ptr(SHARED_PTR_IP, *(f"host{i:02}.shared-host.net" for i in range(12)), SHARED_PTR_NAME)
    zones.address(SHARED_PTR_NAME, SHARED_PTR_IP)
    zones.ptr(CONFIRMED_IP6, CONFIRMED_NAME6)
    # Written out: Zones.add would take the escaped dot for the root's.
    zones.records.append(f"18.113.0.203.in-addr.arpa. 300 IN PTR {ESCAPED_DOT_NAME}.")
    zones.records.append(f"{ESCAPED_DOT_NAME}. 300 IN A {ESCAPED_DOT_IP}")
    zones.records.append("19.113.0.203.in-addr.arpa. 300 IN PTR .")
    zones.address(CONFIRMED_NAME6, CONFIRMED_IP6)
    zones.ptr(INTERNAL_PTR_IP, INTERNAL_PTR_NAME)
    zones.address(INTERNAL_PTR_NAME, INTERNAL_PTR_IP)

    zones.address(HELO_NO_ADDRESS.replace("noaddr", "other"), "203.0.113.200")
    zones.address(SELF_NAMED_HELO, MISSING_PTR_IP, UNVERIFIED_IP, GENERIC_IP)
    # MX hosts need globally routable addresses: documentation ranges are bogus MX targets.
    zones.mx(GOOD_DOMAIN, 10, GOOD_MX)
    zones.address(GOOD_MX, GOOD_MX_IP)
    zones.address(IMPLICIT_MX_DOMAIN, "81.2.69.161")
    zones.address(IMPLICIT_PRIVATE_DOMAIN, "127.0.0.1")
    zones.address(IMPLICIT_DUAL_DOMAIN, "10.1.2.3", "2a00:1450:4001:82a::2005")
    zones.add(NO_MAIL_HOST_DOMAIN, "TXT", '"v=spf1 -all"')
    zones.add(NULL_MX_DOMAIN, "MX", "0 .")
    zones.mx(BOGUS_MX_DOMAIN, 10, "internal.bogus-mx.org")
    zones.mx(BOGUS_MX_DOMAIN, 20, "gone.bogus-mx.org")
    zones.mx(BOGUS_MX_DOMAIN, 30, "loop.bogus-mx.org")
    zones.address("internal.bogus-mx.org", "10.0.0.5")
    zones.address("loop.bogus-mx.org", "127.0.0.1", "::1")
    zones.mx(IDN_DOMAIN_ASCII, 10, GOOD_MX)
    for i in range(15):
        zones.mx(MANY_MX_DOMAIN, i, f"mx{i}.{MANY_MX_DOMAIN}")

    zones.stub(TIMEOUT_DOMAIN, dead_port)
    zones.stub("100.51.198.in-addr.arpa", dead_port)
    zones.stub(SERVFAIL_DOMAIN, servfail_port)
    zones.stub("2.0.192.in-addr.arpa", servfail_port)
    return zones
