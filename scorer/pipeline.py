"""The whole check, read straight through:

request -> policy (skips) -> lookups (one DNS layer) -> checks (pure) -> scoring -> reply.

Both the HTTP service and ``rdns-scorer check`` run exactly this.
"""

from __future__ import annotations

import asyncio
import time

from scorer.checks.helo import check_helo
from scorer.checks.hit import Hit
from scorer.checks.mailfrom import check_mail_from
from scorer.checks.ptr import check_ptr
from scorer.config import Config
from scorer.dns.cache import TtlCache
from scorer.dns.layer import DnsLayer, Outcome
from scorer.lookups import Facts, Limits, gather_facts
from scorer.policy import skip_hit
from scorer.protocol import CheckReply, CheckRequest
from scorer.scoring import score_hits


def build_dns_layer(config: Config) -> DnsLayer:
    cache: TtlCache[Outcome] = TtlCache(
        config.dns.cache_max_entries, config.dns.cache_min_ttl, config.dns.cache_max_ttl
    )
    return DnsLayer(config.nameservers, config.dns.timeout, cache, config.dns.negative_ttl)


class Pipeline:
    """Config resolved once into the forms the stages need, plus the shared DNS layer."""

    def __init__(self, config: Config, dns_layer: DnsLayer | None = None) -> None:
        self.config = config
        self.dns = dns_layer or build_dns_layer(config)
        self._skip_networks = config.skip_networks
        self._local_names = config.local_names
        self._local_ips = config.local_ips
        self._limits = Limits(config.dns.max_ptr_names, config.dns.max_mx_hosts)

    async def evaluate(self, request: CheckRequest) -> tuple[Facts | None, list[Hit]]:
        """The facts looked up (None when policy skipped the client) and the hits."""
        skipped = skip_hit(request.ip, self._skip_networks)
        if skipped is not None:
            return None, [skipped]
        deadline = asyncio.get_running_loop().time() + self.config.dns.request_deadline
        facts = await gather_facts(request, self.dns, self._limits, deadline)
        hits = check_ptr(facts.ptr)
        if facts.helo is not None:
            hits += check_helo(facts.helo, request.ip, self._local_names, self._local_ips)
        if facts.mail_from is not None:
            hits += check_mail_from(facts.mail_from)
        return facts, hits

    async def check(self, request: CheckRequest) -> CheckReply:
        return (await self.check_with_facts(request))[1]

    async def check_with_facts(self, request: CheckRequest) -> tuple[Facts | None, CheckReply]:
        started = time.perf_counter()
        facts, hits = await self.evaluate(request)
        symbols = score_hits(hits, self.config.weights)
        total = round(sum(s.score for s in symbols), 4)
        elapsed_ms = round((time.perf_counter() - started) * 1000, 3)
        return facts, CheckReply(symbols, total, elapsed_ms)
