"""The benchmark's DNS world: 100,000 clients with PTR/A records and 5,000 sender domains.

Client ``i`` (``0 <= i < CLIENTS``) is ``198.18.0.0 + 256 + i`` (RFC 2544's benchmark
range, so no skip_network catches it). Every tenth client has no PTR, two in ten have
a generic ISP name, the rest a forward-confirmed ``mta<i>.bench-senders.net``.
Warm and mixed senders use ``s<j>.bench-mail.org`` (MX + A records); cold senders use
``d<i>.cold-senders.net``, a redirect zone where every name has the same MX, so each
cold request asks a new MX question. bench/post.lua computes the same names.
"""

from __future__ import annotations

import ipaddress
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.support.unbound import Unbound, Zones  # noqa: E402

CLIENTS = 100_000
DOMAINS = 5_000
MX_HOSTS = 1_000
FIRST_CLIENT = int(ipaddress.IPv4Address("198.18.0.0")) + 256


def client_ip(i: int) -> str:
    return str(ipaddress.IPv4Address(FIRST_CLIENT + i))


def ptr_name(i: int) -> str | None:
    kind = i % 10
    if kind == 0:
        return None
    if kind in (1, 2):
        return client_ip(i).replace(".", "-") + ".dyn.bench-isp.net"
    return f"mta{i}.bench-senders.net"


def request_body(i: int, domain: str) -> bytes:
    """A msgpack /v1/check body for client ``i``, with 5 fields as the plugin sends them
    (bench/post.lua builds the same ones)."""
    import msgpack

    fields = {
        "ip": client_ip(i),
        "helo": ptr_name(i) or "localhost",
        "mail_from": f"bounce@{domain}",
        "queue_id": f"Q{i:08d}",
        "user": "",
    }
    return bytes(msgpack.packb(fields))


def mx_host(j: int) -> str:
    return f"mx{j % MX_HOSTS}.bench-hosting.net"


def mx_host_ip(k: int) -> str:
    return f"81.2.{69 + k // 250}.{k % 250 + 1}"


class BenchZones(Zones):
    """Zones plus unbound ``redirect`` zones (one answer for every name below)."""

    def __init__(self) -> None:
        super().__init__()
        self.redirects: dict[str, list[str]] = {}

    def redirect(self, zone: str, *records: str) -> None:
        self.redirects[zone] = list(records)

    def config(self, port: int, interface: str = "127.0.0.1") -> str:
        lines = [super().config(port, interface).rstrip("\n")]
        for zone, records in self.redirects.items():
            lines.append(f'  local-zone: "{zone}." redirect')
            lines += [f"  local-data: '{record}'" for record in records]
        return "\n".join(lines) + "\n"


def build() -> BenchZones:
    zones = BenchZones()
    for i in range(CLIENTS):
        name = ptr_name(i)
        if name is not None:
            ip = client_ip(i)
            a, b, c, d = ip.split(".")
            zones.add(f"{d}.{c}.{b}.{a}.in-addr.arpa", "PTR", name + ".")
            zones.add(name, "A", ip)
    for j in range(DOMAINS):
        zones.mx(f"s{j}.bench-mail.org", 10, mx_host(j))
    for k in range(MX_HOSTS):
        zones.address(f"mx{k}.bench-hosting.net", mx_host_ip(k))
    zones.redirect(
        "cold-senders.net",
        "cold-senders.net. 300 IN MX 10 mx.cold-hosting.net.",
    )
    zones.address("mx.cold-hosting.net", "81.2.80.1")
    return zones


def start() -> Unbound:
    """unbound serving the bench world (takes a few seconds to load)."""
    return Unbound(build()).start()


if __name__ == "__main__":
    zones = build()
    print(f"{len(zones.records)} records")
