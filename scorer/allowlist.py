"""Allowlists: senders an admin vouches for while their admins fix their DNS.

Entries come from ``[allowlist]`` in the config and from list files, one entry
per line as ``KIND VALUE`` (``ip``, ``ptr``, ``helo``, ``from``), ``#`` for
comments. Name-based entries are only honoured when DNS backs them up, so a
spammer cannot buy an exemption by writing a PTR or a HELO:

- ``ip``: an address or network; covers every check, no lookups are made.
- ``ptr``: a PTR name suffix; covers the PTR and HELO checks, only when a PTR
  name under it is forward-confirmed for the client. Never a public suffix of either
  section of the list, nor a domain with one under it: a provider's customers get
  such names.
- ``helo``: a HELO name; covers the HELO checks, only when the HELO equals a
  forward-confirmed PTR name of the client.
- ``from``: a MAIL FROM domain (and its subdomains); covers the MAIL FROM checks.
  Written in Unicode or A-label form: both sides are compared as lower-case
  A-labels, the form the MAIL FROM checks resolve.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from scorer.checks.helo import parse_helo
from scorer.checks.mailfrom import SenderKind, envelope_address, named_domain, parse_sender
from scorer.files import read_text_file
from scorer.names import (
    IPAddress,
    address_named,
    hostname_problem,
    is_public_suffix,
    public_suffix_below,
    to_ascii,
)
from scorer.policy import IPNetwork, NetworkSet, parse_network
from scorer.symbols import Family
from scorer.text import has_unsafe, option

KINDS = ("ip", "ptr", "helo", "from")
# The check families each kind of entry exempts (the docstring above, as data).
COVERS: dict[str, tuple[Family, ...]] = {
    "ip": (Family.PTR, Family.HELO, Family.MAILFROM),
    "ptr": (Family.PTR, Family.HELO),
    "helo": (Family.HELO,),
    "from": (Family.MAILFROM,),
}


# The symbols a match is reported by, its entry their option: RL_ALLOWLISTED_FROM for a
# ``from`` entry (the envelope sender proves nothing), RL_ALLOWLISTED for the others.
ALLOWLIST_SYMBOLS = frozenset({"RL_ALLOWLISTED", "RL_ALLOWLISTED_FROM"})


def covered_families(match: str) -> tuple[Family, ...]:
    """The families a match exempts: ``match`` is what ``Allowlist.match_*`` returned
    (an option of ALLOWLIST_SYMBOLS), which starts with its kind ("ptr mail.x.org (...)")."""
    return COVERS.get(match.partition(" ")[0], ())


class AllowlistError(ValueError):
    pass


def _written_name(kind: str, value: str) -> str:
    """The name an entry of ``kind`` writes: without outer spaces and dots (``.partner.net``
    is ``partner.net``, which covers the domain itself too), and for a ``from`` entry the
    domain after any ``user@``."""
    written = value.strip()
    if kind == "from":
        written = written.rpartition("@")[2]
    return written.strip(".")


def _spells_addresses(name: str) -> bool:
    """Whether an entry (lower-case, as ``to_ascii`` gives it) spells an address or a
    network rather than a name: bare, with leading zeros (192.0.2.010: RFC 5321 section
    4.1.3 reads every number as decimal, as the HELO checks do), as an SMTP address
    literal ([192.0.2.1], [IPv6:2001:db8::1]: section 4.1.3) or with a prefix length."""
    address, slash, prefix = name.partition("/")
    return address_named(address) is not None and (not slash or prefix.isdigit())


def _sender_domain(mail_from: str) -> str | None:
    """The domain of an envelope sender, in the A-label form the MAIL FROM checks resolve."""
    sender = parse_sender(mail_from)
    if sender.kind in (SenderKind.DOMAIN, SenderKind.SPECIAL_USE):
        return sender.domain
    if sender.kind is SenderKind.BAD_SYNTAX:
        # An entry vouches for a domain, and the syntax check is one of the checks it
        # covers: a partner whose mailer writes ``a..b@x.org`` or ``a@x.org.`` stays
        # covered, as long as the part after the last "@" is a name IDNA accepts as it
        # stands (one final dot roots it): not once spaces, CR/LF or dots around it are
        # trimmed (``a@.x.org``, ``a@x.org\r\n``), as a control character is not either.
        # Nor with a default-ignorable character in it, which IDNA's mapping erases and
        # the checks call bad syntax: "x\u200b.org" is not the vouched x.org.
        address = envelope_address(mail_from)
        if has_unsafe(address.rpartition("@")[2], name=True):
            return None
        return named_domain(address)
    return None  # the null sender has no domain; an address literal is no name


def _under(name: str, suffixes: set[str], deepest: int) -> str | None:
    """The longest of ``suffixes`` (none of more than ``deepest`` labels) that is
    ``name`` or a parent of it: one set lookup per label of the deepest entry at most,
    whatever the number of entries (lists of 50,000 lines are supported) or of labels
    in ``name``. The PTR names come from whoever holds the client's reverse zone, and
    the lookup stage asks this of every one (lookups._before_the_cut): an answer of
    ~3,000 names of 127 labels (20 bytes each in a TCP reply), each joined label by
    label, held the loop ~0.3 s."""
    if not suffixes:
        return None  # no entries of the kind (most lists): no name to take apart
    # ``name`` whole (it may be an entry itself), then its last ``deepest`` labels: no
    # parent between the two has few enough labels to be an entry.
    labels = name.rsplit(".", deepest)
    for start in range(len(labels)):
        candidate = ".".join(labels[start:])
        if candidate in suffixes:
            return candidate
    return None


def matched_entry(match: str) -> str:
    """The entry a match names, without what it says of the client: ``match`` is what
    ``Allowlist.match_*`` returned ("ptr partner.net (mx.partner.net is forward-confirmed)")."""
    return match.partition(" (")[0]


def _ip_entry(network: IPNetwork) -> str:
    """An ip entry as a match names it: ``ip NETWORK``, or ``ip ADDRESS`` for one address."""
    if network.prefixlen == network.max_prefixlen:
        return f"ip {network.network_address}"
    return f"ip {network}"


@dataclass
class Allowlist:
    ptr_suffixes: set[str] = field(default_factory=set)
    helo_names: set[str] = field(default_factory=set)
    from_domains: set[str] = field(default_factory=set)
    ip_networks: NetworkSet = field(default_factory=NetworkSet, repr=False)
    # Where each entry is written ("/etc/rdns-scorer/partners.txt:12", "[allowlist] ips"),
    # by the entry as a match names it ("ptr partner.net"): `rdns-scorer check` says where
    # to look to undo an exemption. Every place: an entry written twice applies until
    # both go. Not in the reply's option, which rspamd may copy into a message's headers.
    written_at: dict[str, list[str]] = field(default_factory=dict, repr=False)
    # The most labels of a ptr and of a from entry (_under): kept by add().
    ptr_labels: int = field(default=0, repr=False, compare=False)
    from_labels: int = field(default=0, repr=False, compare=False)

    def count(self) -> int:
        """How many entries, each network and name once."""
        names = len(self.ptr_suffixes) + len(self.helo_names) + len(self.from_domains)
        return names + len(self.ip_networks.networks())

    def add(self, kind: str, value: str, where: str) -> None:
        """Add the entry ``KIND VALUE`` written at ``where`` (a file and line, or the
        config's key), or an AllowlistError saying what is wrong with it."""
        if kind in KINDS and any(c.isspace() for c in _written_name(kind, value)):
            # "ptr a.net b.net" was "not a domain name: label 'net b' ...", which hid that
            # the fault is the second value, not the first.
            raise AllowlistError(
                f"{value!r} is more than one value: one entry each, '{kind} VALUE'"
            )
        if kind == "ip":
            try:
                network = parse_network(value)
            except ValueError as error:
                raise AllowlistError(str(error)) from None
            self.ip_networks.add(network)
            entry = _ip_entry(network)
        elif kind in ("ptr", "helo", "from"):
            domain = self._entry_name(kind, value)
            labels = domain.count(".") + 1
            if kind == "ptr":
                self.ptr_suffixes.add(domain)
                self.ptr_labels = max(self.ptr_labels, labels)
            elif kind == "helo":
                self.helo_names.add(domain)
            else:
                self.from_domains.add(domain)
                self.from_labels = max(self.from_labels, labels)
            entry = f"{kind} {domain}"
        else:
            raise AllowlistError(f"unknown kind {kind!r} (use one of {', '.join(KINDS)})")
        self.written_at.setdefault(entry, []).append(where)

    def where_written(self, match: str) -> list[str]:
        """Where the entry a match names (``matched_entry``) is written."""
        return self.written_at.get(matched_entry(match), [])

    @staticmethod
    def _entry_name(kind: str, value: str) -> str:
        """The A-label form of a name entry, or an AllowlistError saying what to write."""
        if value.strip().startswith("*"):
            # Wildcards would load and never match: say what does.
            if kind == "helo":
                raise AllowlistError(
                    f"no wildcards in helo entries ({value!r}): they name one HELO exactly; "
                    "a ptr entry covers a whole domain"
                )
            under = value.strip().lstrip("*.")
            instead = f"so write {under!r}" if under else "so name the domain it is under"
            raise AllowlistError(
                f"no wildcards ({value!r}): a {kind} entry covers the name and every "
                f"name under it, {instead}"
            )
        # DNS answers and the checks carry A-labels: an entry written in Unicode
        # must be compared in that form, or it never matches. to_ascii lower-cases it as
        # the checks read names, by IDNA's mapping (UTS46); not str.lower(), which makes
        # a capital sigma before a digit or a hyphen final (U+03C2, not U+03C3): another
        # A-label.
        domain = to_ascii(_written_name(kind, value))
        if domain is None:
            raise AllowlistError(f"not a domain name IDNA accepts: {value!r}")
        if _spells_addresses(domain):
            # Dotted digits pass as a name, but no PTR name or HELO name compared here
            # is an address (RFC 1123 section 2.1): the entry would never match. Say what
            # does, for a network or an address literal too (not "label '0/24' is not...").
            # A from entry of one ("from 192.0.2.1") loaded, and covered no client: only a
            # sender spelling the address as its domain (u@192.0.2.1, u@x.192.0.2.1).
            what = "a network" if "/" in domain else "an address"
            if kind == "from":
                raise AllowlistError(
                    f"{value!r} is {what}, not a sender's domain: for the client at it, "
                    "use an ip entry"
                )
            raise AllowlistError(f"{value!r} is {what}: use an ip entry")
        problem = hostname_problem(domain)
        if problem is not None:
            raise AllowlistError(f"not a domain name: {value!r} ({problem})")
        if kind == "helo" and ("." not in domain or is_public_suffix(domain)):
            # A helo entry is honoured when the HELO is the client's forward-confirmed
            # PTR name, which is never "localhost" (a PTR to it counts as none), a
            # single label or a public suffix: such an entry would load and never match.
            what = "a single label" if "." not in domain else "a public suffix"
            raise AllowlistError(
                f"{value!r} is {what}: a helo entry matches a HELO that is the client's "
                "forward-confirmed PTR name, which this never is"
            )
        if kind != "helo" and is_public_suffix(domain):
            # "from com" would exempt every .com sender: surely not what was meant.
            raise AllowlistError(
                f"{value!r} is a public suffix: a {kind} entry covers every name under it"
            )
        below = public_suffix_below(domain) if kind == "ptr" else None
        if below is not None or (kind == "ptr" and is_public_suffix(domain, private=True)):
            # "ptr amazonaws.com" would exempt every EC2 instance: its default PTR
            # (ec2-...compute-1.amazonaws.com) is forward-confirmed for whoever rents it;
            # "ptr us-east-1.compute.amazonaws.com" (a suffix of the private section, by
            # its rule *.compute.amazonaws.com) every one in that region. A single host's
            # PTR can be such a suffix too (ec2-...compute-1.amazonaws.com): its address
            # then names it as well, in an ip entry.
            where = (
                f"has public suffixes under it ({below})"
                if below is not None
                else "is a public suffix of the list's private section"
            )
            raise AllowlistError(
                f"{value!r} {where}, where the provider's customers get names: a ptr "
                "entry would cover them all; name the sender's own hosts or a narrower domain "
                "(or their addresses, in ip entries)"
            )
        return domain

    def add_file(self, path: str) -> None:
        try:
            text = read_text_file(path)
        except ValueError as error:  # a bad byte named by line, as any other bad entry
            raise AllowlistError(str(error)) from None
        for number, line in enumerate(text.split("\n"), 1):  # as utf8_text numbers them
            text = line.split("#", 1)[0].strip()
            if not text:
                continue
            # Any whitespace between the two: a tab, or a no-break space that an entry
            # copied from a web page or a word processor brings along.
            kind_and_value = text.split(None, 1)
            if len(kind_and_value) < 2:
                raise AllowlistError(f"{path}:{number}: expected 'KIND VALUE', got {text!r}")
            kind, value = kind_and_value
            try:
                self.add(kind.lower(), value, f"{path}:{number}")
            except AllowlistError as error:
                raise AllowlistError(f"{path}:{number}: {error}") from None

    def match_ip(self, ip: IPAddress) -> str | None:
        """The most specific entry holding ``ip``, as ``ip NETWORK``, or ``ip ADDRESS``
        for an entry of one address: as the service reads it (an IPv4-mapped or NAT64
        entry as the IPv4 network it covers, a netmask as a prefix length), which says
        what matched where the entry's own spelling would not."""
        network = self.ip_networks.most_specific(ip)
        return None if network is None else _ip_entry(network)

    def match_ptr(self, confirmed_names: Iterable[str]) -> str | None:
        for name in confirmed_names:
            suffix = _under(name, self.ptr_suffixes, self.ptr_labels)
            if suffix is not None:
                # The name comes from DNS: escaped and capped like any other evidence.
                return f"ptr {suffix} ({option(name, 100)} is forward-confirmed)"
        return None

    def applies_if_confirmed(self, ptr_name: str, helo_name: str) -> bool:
        """Whether an entry would apply were ``ptr_name`` forward-confirmed: a ``ptr``
        entry it is under, or a ``helo`` entry it is, that is the HELO too (``helo_name``,
        as parse_helo reads the HELO; "" for none). For the lookup stage, which resolves
        such names first when there are more than max_ptr_names (lookups._before_the_cut)."""
        if ptr_name == helo_name and ptr_name in self.helo_names:
            return True
        return _under(ptr_name, self.ptr_suffixes, self.ptr_labels) is not None

    def match_helo(self, helo: str | None, confirmed_names: Iterable[str]) -> str | None:
        """``helo NAME`` if the HELO is an entry and a forward-confirmed PTR name.

        The HELO is read as the HELO checks read it (A-labels, one final dot dropped):
        one they call invalid (a control character, an empty label: ".mx.x.org",
        "mx.x.org\r\n") equals no name, and so no entry, whatever is around the name.
        """
        if not self.helo_names:
            return None  # no helo entries (most lists): no HELO to read
        name = parse_helo(helo).ascii if helo else ""  # "" unless a name: never an entry
        if name in self.helo_names and name in confirmed_names:
            return f"helo {name} (= forward-confirmed PTR)"
        return None

    def unapplied(
        self,
        ip: IPAddress,
        helo: str | None,
        ptr_names: Iterable[str],
        confirmed: Iterable[str],
        failed: Iterable[str] = (),
        ptr_unknown: str | None = None,
        unchecked: Iterable[str] = (),
    ) -> list[str]:
        """Why a ``ptr`` or ``helo`` entry that names this client's PTR names or HELO did
        not apply: none of those looked up (``ptr_names``) is forward-confirmed, or
        (``failed``) its forward lookup failed, or (``unchecked``) it is among the PTR
        names beyond max_ptr_names, not looked up: the names entries apply for go before
        the cut (lookups._before_the_cut), so only when there are more of those than it.
        ``ptr_unknown``: why the PTR names are not known (its lookup failed), so a HELO
        that is none of them may still be one. For ``rdns-scorer check``, where an admin
        looks when an entry they wrote seems to do nothing; the reply says nothing of
        entries that did not match."""
        names, confirmed, failed = set(ptr_names), set(confirmed), set(failed)
        unchecked = set(unchecked)
        notes = []
        for name in sorted(names - confirmed):
            suffix = _under(name, self.ptr_suffixes, self.ptr_labels)
            if suffix is None:
                continue
            # A lookup that failed said nothing of the name: it may apply when one answers.
            why = (
                "whose address lookup failed (it may resolve back to {ip}: check again)"
                if name in failed
                else "which is not forward-confirmed (it does not resolve back to {ip})"
            ).format(ip=ip)
            notes.append(
                f"allowlist entry `ptr {suffix}` names the PTR {option(name, 100)}, {why}: "
                "not applied; an `ip` entry would be (docs/operations.md, Allowlists)"
            )
        beyond = Counter(
            s for s in (_under(n, self.ptr_suffixes, self.ptr_labels) for n in unchecked) if s
        )
        for suffix, count in sorted(beyond.items()):
            notes.append(
                f"allowlist entry `ptr {suffix}` names PTR names of {ip} beyond [dns] "
                f"max_ptr_names, not looked up ({count}; one may resolve back to {ip}): "
                "raise it, or an `ip` entry would apply (docs/operations.md, Allowlists)"
            )
        name = parse_helo(helo).ascii if helo else ""
        if name in self.helo_names and name not in confirmed:
            # A DNS failure says nothing of the HELO: the entry may apply at the next check.
            if name in failed:
                why = (
                    f"the HELO is a PTR name of {ip} whose address lookup failed (it may "
                    f"resolve back to {ip}: check again)"
                )
            elif name in unchecked:
                why = (
                    f"the HELO is a PTR name of {ip} beyond [dns] max_ptr_names, not looked "
                    f"up (it may resolve back to {ip}: raise it)"
                )
            elif ptr_unknown is not None and name not in names:
                why = (
                    f"whether the HELO is a forward-confirmed PTR name of {ip} is not "
                    f"known: {ptr_unknown}"
                )
            else:
                why = f"the HELO is not a forward-confirmed PTR name of {ip}"
            notes.append(
                f"allowlist entry `helo {name}` not applied: {why} (docs/operations.md, Allowlists)"
            )
        return notes

    def match_from(self, mail_from: str | None) -> str | None:
        if not mail_from or not self.from_domains:
            return None
        domain = _sender_domain(mail_from)
        suffix = _under(domain, self.from_domains, self.from_labels) if domain else None
        return f"from {suffix}" if suffix is not None else None
