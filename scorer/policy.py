"""Policy applied before any lookup: which clients are not checked at all."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from scorer.checks.hit import Hit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def skip_hit(ip: IPAddress, skip_networks: Sequence[IPNetwork]) -> Hit | None:
    """``RL_SKIPPED_LOCAL`` if ``ip`` is in a skipped network, naming the network."""
    for network in skip_networks:
        if ip.version == network.version and ip in network:
            return Hit("RL_SKIPPED_LOCAL", (f"{ip} in {network}",))
    return None
