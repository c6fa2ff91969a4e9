"""Policy applied before any lookup: which clients are not checked at all."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from scorer.checks.hit import Hit
from scorer.names import (
    IPV4_COMPATIBLE,
    NAT64_PREFIX_LENGTHS,
    NAT64_WELL_KNOWN,
    NO_IPV4_HOST,
    IPAddress,
    ipv4_compatible_unwrapped,
    ipv4_embedded,
    unmapped,
)

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


_IPV4_MAPPED = ipaddress.IPv6Network("::ffff:0:0/96")


def parse_network(text: str) -> IPNetwork:
    """An address or network as configured; ValueError saying what is wrong.

    Host bits are refused rather than silently dropped: ``198.51.100.7/16`` is
    as likely a typo for ``/32`` as a way to write ``198.51.0.0/16``. An
    IPv4-mapped IPv6 network (or one in the NAT64 well-known prefix, 64:ff9b::/96, or
    IPv4-compatible, ::192.0.2.0/120) is its IPv4 network, as clients are read
    (scorer.protocol.parse_ip), or it could never match.
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
    if isinstance(network, ipaddress.IPv6Network) and (
        any(network.subnet_of(embedding) for embedding in (_IPV4_MAPPED, NAT64_WELL_KNOWN))
        or _ipv4_compatible(text, network)
    ):
        # Its first address read as a client's is (parse_ip: IPv4-mapped, NAT64's well-known
        # prefix, the deprecated IPv4-compatible form of RFC 4291 section 2.5.5.1), and the
        # 96 bits before the IPv4 host's dropped from its length.
        host = ipv4_compatible_unwrapped(unmapped(network.network_address))
        network = ipaddress.IPv4Network((host, network.prefixlen - 96))
    if network.prefixlen == 0:
        # Every client of the family: every check switched off. Refused, as a public
        # suffix in a ptr entry is (a NAT64 or IPv4-mapped /96 reads as 0.0.0.0/0).
        raise ValueError(f"{text!r} covers every IPv{network.version} address ({network})")
    return network


def _ipv4_compatible(text: str, network: ipaddress.IPv6Network) -> bool:
    """Whether ``network`` is IPv4-compatible addresses (::192.0.2.0/120), which clients
    are read as the IPv4 hosts they carry; False for one in ::/104 (::1/128), which stay
    IPv6. ValueError for a network holding both: it would match neither as written."""
    if not network.subnet_of(IPV4_COMPATIBLE) or network.subnet_of(NO_IPV4_HOST):
        return False
    if network.overlaps(NO_IPV4_HOST):
        raise ValueError(
            f"{text!r} holds {NO_IPV4_HOST} (::1), read as IPv6, and IPv4-compatible "
            "addresses, read as the IPv4 hosts they carry (RFC 4291 section 2.5.5.1): write "
            "the IPv4 network, and ::1 apart"
        )
    return True


def parse_nat64_prefix(text: str) -> ipaddress.IPv6Network:
    """A network-specific NAT64 prefix as configured (``2001:db8:64::/96``); ValueError
    saying what is wrong. RFC 6052 section 2.2: one of the lengths its address format
    has, with bits 64 to 71 (the u octet) zero; not in ``::ffff:0:0/96``, whose addresses
    are IPv4-mapped, not translated."""
    text = text.strip()
    try:
        network = ipaddress.IPv6Network(text)
    except ValueError as error:
        raise ValueError(f"{text!r} is no IPv6 network ({error})") from None
    if network.prefixlen not in NAT64_PREFIX_LENGTHS:
        *most, last = (f"/{length}" for length in NAT64_PREFIX_LENGTHS)
        lengths = f"{', '.join(most)} or {last}"
        raise ValueError(f"{text!r}: a NAT64 prefix is {lengths} long (RFC 6052 section 2.2)")
    if network.prefixlen == 96 and network.network_address.packed[8] != 0:
        raise ValueError(f"{text!r}: bits 64 to 71 of a NAT64 prefix must be zero (RFC 6052)")
    if network.overlaps(_IPV4_MAPPED):
        raise ValueError(f"{text!r} holds IPv4-mapped addresses, which are read as IPv4 already")
    return network


def parse_nat64_prefixes(texts: Iterable[str]) -> list[ipaddress.IPv6Network]:
    """The site's NAT64 prefixes (``parse_nat64_prefix`` each); ValueError for two that
    overlap: a client in both would carry a different IPv4 host in each (RFC 6052
    section 2.2 reads the bits after the prefix), and which one it was taken for would
    follow the order they are listed in."""
    prefixes = [parse_nat64_prefix(text) for text in texts]
    for index, prefix in enumerate(prefixes):
        for other in prefixes[:index]:
            if prefix.overlaps(other):
                raise ValueError(
                    f"{other} and {prefix} overlap: a client in both would be two different "
                    "IPv4 hosts; list the translator's prefix once"
                )
    return prefixes


def nat64_client(ip: IPAddress, prefixes: Iterable[ipaddress.IPv6Network]) -> IPAddress:
    """``ip``, or the IPv4 client it carries when it is in one of the site's NAT64
    ``prefixes``: an IPv4 host that reached an IPv6-only MX through the site's own
    translator (RFC 6052 section 2.2), whose PTR, HELO literal and allowlist entries
    are the IPv4 host's. (The well-known 64:ff9b::/96 is read so for every site,
    scorer.protocol.parse_ip.)"""
    if isinstance(ip, ipaddress.IPv6Address):
        for prefix in prefixes:
            if ip in prefix:
                return ipv4_embedded(ip, prefix.prefixlen)
    return ip


class NetworkSet:
    """Networks, searched by prefix length: a client is masked once per length in use and
    looked up in a set, not compared with each network (``ipaddress``'s ``in``, Python
    code, per entry: an allowlist of 25,000 networks cost 9 ms a check that way)."""

    def __init__(self, networks: Iterable[IPNetwork] = ()) -> None:
        # (IP version, prefix length) -> the network addresses, as integers.
        self._by_prefix: dict[tuple[int, int], set[int]] = {}
        # IP version -> the prefix lengths in use, longest first: the most specific wins.
        self._lengths: dict[int, tuple[int, ...]] = {4: (), 6: ()}
        for network in networks:
            self.add(network)

    def add(self, network: IPNetwork) -> None:
        version, length = network.version, network.prefixlen
        self._by_prefix.setdefault((version, length), set()).add(int(network.network_address))
        if length not in self._lengths[version]:
            self._lengths[version] = tuple(sorted((*self._lengths[version], length), reverse=True))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, NetworkSet):
            return NotImplemented
        return other._by_prefix == self._by_prefix

    def most_specific(self, ip: IPAddress, longest: int | None = None) -> IPNetwork | None:
        """The longest network holding ``ip`` (one of the other family never does), of a
        prefix ``longest`` bits at most if given: one holding all of ip/longest."""
        if not self._by_prefix:  # the allowlist's, most often: ~4.8k instructions a check
            return None
        version, bits, value = ip.version, ip.max_prefixlen, int(ip)
        lengths = self._lengths[version]
        if longest is not None:
            lengths = tuple(length for length in lengths if length <= longest)
        for length in lengths:
            masked = value >> (bits - length) << (bits - length)
            if masked in self._by_prefix[version, length]:
                return _network(version, masked, length)
        return None

    def networks(self) -> list[IPNetwork]:
        """The networks (Config's warnings about unreachable ones)."""
        return [
            _network(version, address, length)
            for (version, length), addresses in self._by_prefix.items()
            for address in addresses
        ]


def _network(version: int, address: int, length: int) -> IPNetwork:
    """A network from NetworkSet's integers (``ip_network`` would guess the family from
    the integer's size: ``::1`` reads as 0.0.0.1)."""
    if version == 4:
        return ipaddress.IPv4Network((address, length))
    return ipaddress.IPv6Network((address, length))


def skip_hit(ip: IPAddress, skip_networks: NetworkSet) -> Hit | None:
    """``RL_SKIPPED_LOCAL`` if ``ip`` is in a skipped network, naming the most specific."""
    network = skip_networks.most_specific(ip)
    return None if network is None else Hit("RL_SKIPPED_LOCAL", (f"{ip} in {network}",))
