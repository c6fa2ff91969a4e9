"""Shared fixtures: one real unbound with the test world, and the service under test."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from scorer.app import create_app
from scorer.config import Config, config_from_mapping
from scorer.dns import layer as layer_module
from scorer.dns.layer import Nameserver
from scorer.integrations import spamd_reader
from scorer.pipeline import Pipeline
from tests.support.fakedns import FaultyDns, dead_port
from tests.support.unbound import Unbound
from tests.world import build_zones


@pytest.fixture(autouse=True)
def _no_system_resolver(monkeypatch: pytest.MonkeyPatch) -> None:
    """Hermetic by construction: a config that names no nameserver (which in the service
    means /etc/resolv.conf's) gets a loopback port where nothing answers, not the host's
    resolver. Tests that resolve name the test unbound."""
    monkeypatch.setattr(layer_module, "system_nameservers", lambda: [Nameserver("127.0.0.1", 9)])


@pytest.fixture(autouse=True)
def _no_host_spamd(monkeypatch: pytest.MonkeyPatch) -> None:
    """Hermetic: which user spamd reads its config as is the host's (a spamd running
    there, /etc/default/spamd); install and check ask it only where a test says."""
    monkeypatch.setattr(spamd_reader, "spamd_reader", lambda installed: None)
    monkeypatch.setattr(spamd_reader, "amavis_reader", lambda: None)


@pytest.fixture(scope="session")
def servfail_dns() -> Iterator[FaultyDns]:
    server = FaultyDns("servfail").start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def hs_cache() -> Iterator[Path]:
    """rspamd's hyperscan cache, shared by every rspamd of the session (it compiles once).
    Under /tmp, not pytest's 0700 basetemp: rspamd's workers run as _rspamd."""
    path = Path(tempfile.mkdtemp(prefix="rdns-rspamd-hs-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def unbound(servfail_dns: FaultyDns) -> Iterator[Unbound]:
    server = Unbound(build_zones(dead_port(), servfail_dns.port)).start()
    yield server
    server.stop()


def make_config(nameserver: str, **sections: dict[str, Any]) -> Config:
    data: dict[str, dict[str, Any]] = {"dns": {"nameservers": [nameserver]}}
    for name, values in sections.items():
        data.setdefault(name, {}).update(values)
    return config_from_mapping(data)


@pytest.fixture
def unbound_config(unbound: Unbound) -> Config:
    return make_config(unbound.nameserver)


@pytest.fixture
def pipeline(unbound_config: Config) -> Pipeline:
    return Pipeline(unbound_config)


ClientFactory = Callable[..., Awaitable[TestClient[Any, Any]]]


@pytest.fixture
async def client(aiohttp_client: ClientFactory, unbound_config: Config) -> TestClient[Any, Any]:
    return await aiohttp_client(create_app(unbound_config))
