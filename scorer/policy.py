"""Policy applied before any lookup: which clients are not checked at all."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence

from scorer.checks.hit import Hit
from scorer.names import NAT64_WELL_KNOWN, IPAddress, unmapped

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


_IPV4_MAPPED = ipaddress.IPv6Network("::ffff:0:0/96")


def parse_network(text: str) -> IPNetwork:
    """An address or network as configured; ValueError saying what is wrong.

    Host bits are refused rather than silently dropped: ``198.51.100.7/16`` is
    as likely a typo for ``/32`` as a way to write ``198.51.0.0/16``. An
    IPv4-mapped IPv6 network (or one in the NAT64 well-known prefix, 64:ff9b::/96)
    is its IPv4 network, as clients are read (scorer.protocol.parse_ip), or it could
    never match.
    """
    text = text.strip()
    try:
        network = ipaddress.ip_network(text)
    except ValueError:
        loose = ipaddress.ip_network(text, strict=False)  # raises for no network at all
        raise ValueError(
            f"{text!r} has host bits set: write '{loose}' for the network "
            f"or '{text.partition('/')[0]}' for the one address"
        ) from None
    if isinstance(network, ipaddress.IPv6Network) and any(
        network.subnet_of(embedding) for embedding in (_IPV4_MAPPED, NAT64_WELL_KNOWN)
    ):
        network = ipaddress.IPv4Network((unmapped(network.network_address), network.prefixlen - 96))
    if network.prefixlen == 0:
        # Every client of the family: every check switched off. Refused, as a public
        # suffix in a ptr entry is (a NAT64 or IPv4-mapped /96 reads as 0.0.0.0/0).
        raise ValueError(f"{text!r} covers every IPv{network.version} address ({network})")
    return network


def containing_network(ip: IPAddress, networks: Iterable[IPNetwork]) -> IPNetwork | None:
    """The first of ``networks`` that holds ``ip`` (one of the other family never does)."""
    for network in networks:
        if ip.version == network.version and ip in network:
            return network
    return None


def skip_hit(ip: IPAddress, skip_networks: Sequence[IPNetwork]) -> Hit | None:
    """``RL_SKIPPED_LOCAL`` if ``ip`` is in a skipped network, naming the network."""
    network = containing_network(ip, skip_networks)
    return None if network is None else Hit("RL_SKIPPED_LOCAL", (f"{ip} in {network}",))
