"""The whole check, read straight through:

request -> policy (skips) -> allowlist -> lookups (one DNS layer) -> checks (pure)
-> scoring -> reply.

Both the HTTP service and ``rdns-scorer check`` run exactly this.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable

from scorer.checks.helo import check_helo, helo_naming
from scorer.checks.hit import Hit
from scorer.checks.mailfrom import check_mail_from
from scorer.checks.ptr import check_ptr, ptr_counted
from scorer.config import Config
from scorer.dns.cache import TtlCache
from scorer.dns.layer import Consequences, DnsLayer
from scorer.dns.outcomes import Outcome
from scorer.lookups import Facts, Limits, gather_facts
from scorer.memo import memo_sized
from scorer.policy import NetworkSet, nat64_client, skip_hit
from scorer.protocol import CheckReply, CheckRequest, ReplyKey, reply_key
from scorer.scoring import score_hits

Clock = Callable[[], float]


# The service's log: every check from now on is affected, and /readyz can be asked.
SERVICE = Consequences(
    silent="lookups fail and score 0 (*_TEMPFAIL) until it does (checks that need no DNS "
    "still score); /readyz says so (docs/monitoring.md)",
    untrusted="they are reported as DNS failures (zero weight) until it answers for them; "
    "check the resolver (/readyz, docs/monitoring.md)",
)


def build_dns_layer(
    config: Config, clock: Clock = time.monotonic, consequences: Consequences = SERVICE
) -> DnsLayer:
    cache: TtlCache[Outcome] = TtlCache(
        config.dns.cache_max_entries, config.dns.cache_min_ttl, config.dns.cache_max_ttl, clock
    )
    return DnsLayer(
        config.nameservers,
        config.dns.timeout,
        cache,
        config.dns.negative_ttl,
        consequences=consequences,
    )


# A cached reply counts as one entry of reply_cache_max_entries per this many bytes it
# keeps, roughly, as a DNS answer of many records counts as several (dns.layer.cache_size):
# a usual one ~765 bytes (tracemalloc), but fields of 256 four-byte characters each, the
# longest memo_sized lets in, ~7.5 KB (each one twelve bytes of JSON, \udXXX\udXXX), and
# 20,000 such replies held ~150 MiB where the docs said ~15.
REPLY_BYTES_PER_ENTRY = 1024


def reply_cache_size(reply: CheckReply, key: ReplyKey) -> int:
    """How many entries of the reply cache ``reply`` (rendered) under ``key`` counts as:
    its JSON twice (the options are kept as text too) and its key's fields."""
    held = 2 * len(reply.json_head) + sum(sys.getsizeof(f) for f in key[1:] if f is not None)
    return 1 + held // REPLY_BYTES_PER_ENTRY


class Pipeline:
    """Config resolved once into the forms the stages need, plus the shared DNS layer.

    ``replies`` caches whole replies: a message from a sender seen moments ago
    is answered without re-running the lookups and checks. An entry lives until
    the earliest expiry of the DNS outcomes behind it (so never longer than the
    DNS cache would keep them), at most ``[dns] reply_cache_max_ttl``; replies
    built on a DNS failure are not kept. A new Pipeline (every reload) starts empty,
    and the cache empties itself when the DNS layer's judgement of the resolver
    changed since its replies were stored (``_judged_replies``).
    """

    def __init__(
        self, config: Config, dns_layer: DnsLayer | None = None, clock: Clock = time.monotonic
    ) -> None:
        self.config = config
        self.dns = dns_layer or build_dns_layer(config, clock)
        # Never more replies than DNS outcomes: cache_max_entries stays the one
        # knob that bounds memory.
        reply_entries = min(config.dns.reply_cache_max_entries, config.dns.cache_max_entries)
        self.replies: TtlCache[CheckReply] = TtlCache(
            reply_entries, 0.0, config.dns.reply_cache_max_ttl, clock
        )
        # Either 0 switches the reply cache off: no reply is rendered for it and stored
        # already expired (reply_cache_max_ttl = 0 did so for every check).
        self._keeps_replies = reply_entries > 0 and config.dns.reply_cache_max_ttl > 0
        # The DNS layer's trust_changes the replies were stored under.
        self._replies_trust = self.dns.trust_changes
        self._clock = clock
        self._skip_networks = NetworkSet(config.skip_networks)
        self._nat64_prefixes = config.nat64_prefixes
        self._local_names = config.local_names
        self._local_ips = config.local_ips
        self._allowlist = config.allowlist_entries
        self._limits = Limits(config.dns.max_ptr_names, config.dns.max_mx_hosts)
        # Beyond max_ptr_names, the PTR names an entry would apply for are resolved first
        # (lookups._before_the_cut): bound once, not for every check.
        self._vouched = self._allowlist.applies_if_confirmed

    def as_checked(self, request: CheckRequest) -> CheckRequest:
        """``request`` with its client as the checks see it: the site's translator's
        client is the IPv4 host behind it, for every check and policy alike (its reply
        is cached under the address it came from), and for the report's hints, which
        name the address whose PTR was asked."""
        if self._nat64_prefixes:
            return request._replace(ip=nat64_client(request.ip, self._nat64_prefixes))
        return request

    async def evaluate(self, request: CheckRequest) -> tuple[Facts | None, list[Hit]]:
        """The facts looked up (None when policy decided without DNS) and the hits."""
        request = self.as_checked(request)
        skipped = skip_hit(request.ip, self._skip_networks)
        if skipped is not None:
            return None, [skipped]
        allowed_ip = self._allowlist.match_ip(request.ip)
        if allowed_ip is not None:
            return None, [Hit("RL_ALLOWLISTED", (allowed_ip,))]
        allowed_from = self._allowlist.match_from(request.mail_from)
        if allowed_from is not None:
            request = request._replace(mail_from=None)  # no lookups for it
        deadline = asyncio.get_running_loop().time() + self.config.dns.request_deadline
        facts = await gather_facts(request, self.dns, self._limits, deadline, self._vouched)
        return facts, self._hits(request, facts, allowed_from)

    def _hits(self, request: CheckRequest, facts: Facts, allowed_from: str | None) -> list[Hit]:
        confirmed = facts.ptr.confirmed_names()
        allowed_ptr = self._allowlist.match_ptr(confirmed)
        allowed_helo = allowed_ptr or self._allowlist.match_helo(request.helo, confirmed)
        hits = [] if allowed_ptr else check_ptr(facts.ptr, helo_naming(facts.helo, facts.ptr.ip))
        if facts.helo is not None and not allowed_helo:
            hits += check_helo(
                facts.helo,
                request.ip,
                self._local_names,
                self._local_ips,
                ptr_counted(facts.ptr, hits),
            )
        if facts.mail_from is not None:
            hits += check_mail_from(facts.mail_from)
        allowed = tuple(dict.fromkeys(e for e in (allowed_ptr, allowed_helo) if e))
        if allowed:
            hits.append(Hit("RL_ALLOWLISTED", allowed))
        if allowed_from is not None:
            # Apart: the envelope sender is anyone's to write, so its entry must not earn
            # the weight an admin gives a client whose address or PTR vouches for it.
            hits.append(Hit("RL_ALLOWLISTED_FROM", (allowed_from,)))
        return hits

    def cached(self, key: ReplyKey) -> CheckReply | None:
        """The cached reply for a request with this key (``reply_key``), if still good.

        Not a coroutine: a reply-cache hit, the common case, awaits nothing.
        """
        # _judged_replies() called only when the judgement changed: a call per hit was a
        # measurable share of it (docs/performance-history.md, forty-fifth session).
        replies = self.replies
        if self.dns.trust_changes != self._replies_trust:
            replies = self._judged_replies()
        entry = replies.get_entry(key)
        return None if entry is None else entry[1]

    def _judged_replies(self) -> TtlCache[CheckReply]:
        """The reply cache, emptied first when the resolver's judgement changed since
        its replies were stored (DnsLayer._judge_root, whoever asked the root: the
        periodic check, /readyz, a reload): they took its NXDOMAIN and NODATA at the old
        word. Checked here, where replies are read and stored, so a change counts at
        once, even one undone since (trust_changes moved twice), and on every pipeline
        sharing the layer, a reload's old one included."""
        if self.dns.trust_changes != self._replies_trust:
            self._replies_trust = self.dns.trust_changes
            self.replies.clear()
        return self.replies

    async def check(self, request: CheckRequest) -> CheckReply:
        """The reply for ``request``, from the reply cache when it is still good."""
        key = reply_key(request)
        return self.cached(key) or await self.check_and_cache(request, key)

    async def check_and_cache(self, request: CheckRequest, key: ReplyKey) -> CheckReply:
        """Check ``request`` (its reply-cache key is ``key``) and cache the reply while
        the DNS outcomes behind it last. For a caller that found nothing in ``cached``."""
        trust_changes = self.dns.trust_changes
        with self.dns.tracking() as tracker:
            _facts, reply = await self.check_with_facts(request)
        ttl = tracker.expires - self._clock()
        # A key of 1,024-character fields would hold ~12 KB: such requests (never a
        # valid HELO, sender or host name) are checked afresh each time instead. A reply
        # built while the resolver's judgement changed (DnsLayer._judge_root) is not kept:
        # it may hold the old word.
        if (
            ttl > 0
            and self._keeps_replies
            and memo_sized(key[1:])
            and self.dns.trust_changes == trust_changes
        ):
            reply = reply.rendered()  # its JSON is rendered once, for every reuse
            self._judged_replies().put(key, reply, ttl, reply_cache_size(reply, key))
        return reply

    async def check_with_facts(self, request: CheckRequest) -> tuple[Facts | None, CheckReply]:
        """The reply and the facts behind it (no reply cache: the facts are wanted)."""
        facts, hits = await self.evaluate(request)
        return facts, self.reply_for(hits)

    def reply_for(self, hits: list[Hit]) -> CheckReply:
        """The reply for ``hits``: their symbols weighted by the config, and the total."""
        scored = score_hits(hits, self.config.weights, self.config.is_shadowed)
        return CheckReply(scored.symbols, scored.total, scored.shadowed)
