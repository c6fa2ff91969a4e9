"""A real unbound on loopback serving only zones the tests write; nothing leaves the machine."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import dns.message
import dns.query
import dns.rdatatype
import dns.reversename

from scorer.names import REVERSE_TREES
from tests.support.ports import free_port
from tests.support.processes import stop_process


@dataclass
class Zones:
    """Records for unbound's ``local-data`` and zones delegated to other (faulty) servers."""

    records: list[str] = field(default_factory=list)
    stubs: dict[str, int] = field(default_factory=dict)  # zone -> loopback port of its server
    # zone -> its records, served as a zone unbound resolves through (auth_zone).
    auth: dict[str, list[str]] = field(default_factory=dict)
    reverse_trees: bool = True  # their SOAs, as every working resolver answers them

    def add(self, name: str, rdtype: str, value: str, ttl: int = 300) -> None:
        self.records.append(f"{name.rstrip('.')}. {ttl} IN {rdtype} {value}")

    def ptr(self, ip: str, *names: str) -> None:
        reverse = dns.reversename.from_address(ip).to_text()
        for name in names:
            self.add(reverse, "PTR", name.rstrip(".") + ".")

    def address(self, name: str, *ips: str) -> None:
        for ip in ips:
            self.add(name, "AAAA" if ":" in ip else "A", ip)

    def mx(self, name: str, preference: int, exchange: str) -> None:
        self.add(name, "MX", f"{preference} {exchange.rstrip('.')}.")

    def stub(self, zone: str, port: int) -> None:
        self.stubs[zone.rstrip(".") + "."] = port

    def auth_zone(self, zone: str, records: list[str]) -> None:
        """Serve ``records`` (as ``add`` writes them: build them with a Zones of their
        own) as the zone ``zone``, with an SOA whose negative TTL is 60 s, which unbound
        resolves as it would a zone on the internet: it follows a CNAME into another
        such zone and answers the chain with what it finds at the end, a "no" with that
        zone's SOA. ``local-data`` does neither: unbound answers a CNAME there alone, as
        a server that does not recurse does."""
        self.auth[zone.rstrip(".") + "."] = records

    def zone_files(self) -> dict[str, str]:
        """File name -> text of each auth_zone's zone file, for unbound's directory."""
        files = {}
        for zone, records in self.auth.items():
            head = [
                f"{zone} 300 IN SOA ns.{zone} hostmaster.{zone} 1 1800 900 604800 60",
                f"{zone} 300 IN NS ns.{zone}",
            ]
            files[self._zone_file(zone)] = "\n".join([*head, *records]) + "\n"
        return files

    @staticmethod
    def _zone_file(zone: str) -> str:
        return f"auth-{zone}zone"

    def config(self, port: int, interface: str = "127.0.0.1") -> str:
        lines = [
            "server:",
            f"  interface: {interface}",
            f"  port: {port}",
            "  do-daemonize: no",
            '  username: ""',
            '  chroot: ""',
            '  pidfile: ""',
            '  directory: "."',
            "  use-syslog: no",
            "  verbosity: 0",
            '  module-config: "iterator"',
            "  access-control: 127.0.0.0/8 allow",
            "  do-not-query-localhost: no",
            "  num-threads: 1",
            # Test zones are edited between runs; nothing may be served from a cache.
            "  msg-cache-size: 1m",
            "  infra-host-ttl: 1",
            "  outgoing-num-tcp: 0",
            # Everything not listed below is NXDOMAIN at once; nothing goes to the internet.
            '  local-zone: "." static',
            # The root's SOA, as any working resolver has it (/readyz asks for it).
            # (Its TTL and MINIMUM as unbound's own for the static zone: the negative TTL
            # of every NXDOMAIN the tests see comes from it.)
            "  local-data: '. 3600 IN SOA a.root-servers.net. nstld.verisign-grs.com. "
            "1 1800 900 604800 3600'",
        ]
        if self.reverse_trees:
            # ... and the reverse trees', which it reaches as it reaches the root (the
            # DNS layer asks: a resolver that says they do not exist is not trusted).
            lines += [
                f"  local-data: '{tree}. 3600 IN SOA b.in-addr-servers.arpa. "
                "nstld.iana.org. 1 1800 900 604800 3600'"
                for tree in REVERSE_TREES
            ]
        # RFC 6303 default zones (documentation and private reverse ranges)
        # would shadow our records; ours replace them.
        lines += [f'  local-zone: "{zone}" transparent' for zone in (*self.stubs, *self.auth)]
        # Single quotes outside, so TXT values can carry their double quotes.
        lines += [f"  local-data: '{record}'" for record in self.records]
        for zone, stub_port in self.stubs.items():
            lines += ["stub-zone:", f'  name: "{zone}"', f"  stub-addr: 127.0.0.1@{stub_port}"]
        for zone in self.auth:
            # Only to its own iterator: what a client asks is resolved, not looked up.
            lines += ["auth-zone:", f'  name: "{zone}"', f'  zonefile: "{self._zone_file(zone)}"']
            lines += ["  for-downstream: no", "  for-upstream: yes", "  fallback-enabled: no"]
        return "\n".join(lines) + "\n"


class Unbound:
    """``interface`` and ``port``: where it listens; by default a free port on 127.0.0.1.
    Clients that only speak to port 53 (the libc resolver, from /etc/resolv.conf) get
    port 53 of a loopback address of their own (see ports.free_loopback_address)."""

    def __init__(self, zones: Zones, interface: str = "127.0.0.1", port: int | None = None) -> None:
        self.zones = zones
        self.interface = interface
        self.port = free_port() if port is None else port
        self._dir = Path(tempfile.mkdtemp(prefix="rdns-unbound-"))
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def nameserver(self) -> str:
        return f"{self.interface}:{self.port}"

    def start(self) -> Unbound:
        conf = self._dir / "unbound.conf"
        conf.write_text(self.zones.config(self.port, self.interface))
        for name, text in self.zones.zone_files().items():
            (self._dir / name).write_text(text)
        checked = subprocess.run(
            ["unbound-checkconf", str(conf)], capture_output=True, text=True, cwd=self._dir
        )
        if checked.returncode != 0:
            raise RuntimeError(f"unbound-checkconf: {checked.stdout}{checked.stderr}")
        log = open(self._dir / "unbound.log", "wb")  # noqa: SIM115 - lives as long as unbound
        self._process = subprocess.Popen(
            ["unbound", "-d", "-c", str(conf)], cwd=self._dir, stdout=log, stderr=log
        )
        self._wait_ready()
        return self

    def _wait_ready(self, timeout: float = 10.0) -> None:
        query = dns.message.make_query("ready.invalid.", dns.rdatatype.A)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process is not None and self._process.poll() is not None:
                raise RuntimeError((self._dir / "unbound.log").read_text())
            try:
                dns.query.udp(query, self.interface, timeout=0.2, port=self.port)
                return
            except (dns.exception.Timeout, OSError):
                time.sleep(0.05)
        raise TimeoutError("unbound did not answer")

    def stop(self) -> None:
        stop_process(self._process)
        shutil.rmtree(self._dir, ignore_errors=True)
