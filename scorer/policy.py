"""Policy applied before any lookup: which clients are not checked at all."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence

from scorer.checks.hit import Hit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


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
