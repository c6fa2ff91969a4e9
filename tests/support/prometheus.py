"""A real Prometheus on loopback, plus helpers to read PromQL out of the shipped dashboard.

Prometheus runs from a temp dir (config, rule files, TSDB) and is asked through its
HTTP API. Nothing here knows about rdns-scorer; tests/test_monitoring.py does.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.ports import free_port
from tests.support.processes import stop_process, wait_for_http

# What Grafana puts in place of its built-in interval variables when it sends a query.
GRAFANA_BUILTINS = {
    "__rate_interval": "1m",
    "__interval": "15s",
    "__interval_ms": "15000",
    "__range": "5m",
    "__range_s": "300",
    "__range_ms": "300000",
}


def prometheus_available() -> bool:
    return shutil.which("prometheus") is not None and shutil.which("promtool") is not None


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["promtool", *args], capture_output=True, text=True, timeout=60)


class PromQLError(Exception):
    pass


class Prometheus:
    """``prometheus`` serving ``config`` (YAML or JSON text) with ``files`` beside it."""

    def __init__(self, config: str, files: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self._dir = Path(tempfile.mkdtemp(prefix="rdns-prometheus-"))
        self.config_path = self._dir / "prometheus.yml"
        self.config_path.write_text(config)
        for name, text in (files or {}).items():
            (self._dir / name).write_text(text)
        self.log_path = self._dir / "prometheus.log"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 20.0) -> Prometheus:
        log = open(self.log_path, "wb")  # noqa: SIM115 - lives as long as the process
        self._process = subprocess.Popen(
            [
                "prometheus",
                f"--config.file={self.config_path}",
                f"--storage.tsdb.path={self._dir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--log.level=warn",
            ],
            stdout=log,
            stderr=log,
        )
        wait_for_http(self._process, f"{self.url}/-/ready", lambda _body: True, timeout, self.log)
        return self

    def stop(self) -> None:
        stop_process(self._process)
        self._process = None
        shutil.rmtree(self._dir, ignore_errors=True)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def api(self, path: str, **params: str) -> Any:
        """GET /api/v1/<path>; the ``data`` member, or PromQLError with Prometheus' message."""
        query = urllib.parse.urlencode(params)
        try:
            with urllib.request.urlopen(f"{self.url}/api/v1/{path}?{query}", timeout=10) as r:
                body = json.load(r)
        except urllib.error.HTTPError as error:
            body = json.load(error)
        if body.get("status") != "success":
            raise PromQLError(f"{body.get('errorType')}: {body.get('error')}")
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """Instant query at now: the result as a list of series (a scalar becomes one)."""
        data = self.api("query", query=expr)
        if data["resultType"] in ("scalar", "string"):
            return [{"metric": {}, "value": data["result"]}]
        result: list[dict[str, Any]] = data["result"]
        return result

    def label_values(self, selector: str, label: str) -> list[str]:
        """``label``'s values among the series of ``selector``: Grafana's ``label_values()``."""
        values: list[str] = self.api(f"label/{label}/values", **{"match[]": selector})
        return values

    def rules(self) -> list[dict[str, Any]]:
        return [rule for group in self.api("rules")["groups"] for rule in group["rules"]]

    def alerts(self) -> list[dict[str, Any]]:
        alerts: list[dict[str, Any]] = self.api("alerts")["alerts"]
        return alerts

    def wait_until(
        self, condition: Callable[[], bool], timeout: float, interval: float = 0.25
    ) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition():
                return True
            time.sleep(interval)
        return condition()


# --- Grafana dashboards -------------------------------------------------------------------


@dataclass(frozen=True)
class PanelQuery:
    panel: str
    ref_id: str
    expr: str


def iter_panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, including those nested in (collapsed) rows."""
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def panel_queries(dashboard: dict[str, Any]) -> list[PanelQuery]:
    return [
        PanelQuery(panel.get("title", ""), target.get("refId", ""), target["expr"])
        for panel in iter_panels(dashboard)
        for target in panel.get("targets", [])
        if "expr" in target
    ]


def template_values(
    dashboard: dict[str, Any], label_values: Callable[[str, str], list[str]] | None = None
) -> dict[str, str]:
    """What each dashboard variable stands for when "All" is selected, as Grafana sends it:
    its ``allValue``, else every value its ``label_values(selector, label)`` query finds
    (``label_values``, asked with the variables before it filled in), as one regex; a
    stand-in value without ``label_values``."""
    values: dict[str, str] = {}
    for variable in dashboard.get("templating", {}).get("list", []):
        name = variable["name"]
        if variable.get("type") == "datasource":
            values[name] = "prometheus"
        elif variable.get("includeAll"):
            values[name] = variable.get("allValue") or _all_found(
                substitute(variable["definition"], values), label_values
            )
        else:
            current = variable.get("current", {}).get("value")
            values[name] = current if isinstance(current, str) else ".*"
    return values


def _all_found(definition: str, label_values: Callable[[str, str], list[str]] | None) -> str:
    """Grafana's "All" without an ``allValue``: the values found, regex-escaped, joined."""
    match = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", definition)
    assert match, f"not a label_values() query: {definition!r}"
    found = label_values(*match.groups()) if label_values else ["all-found"]
    escaped = [re.sub(r"[$^*{}\[\]'+?.()|\\]", r"\\\\\g<0>", value) for value in found]
    return escaped[0] if len(escaped) == 1 else f"({'|'.join(escaped)})"


def substitute(expr: str, variables: dict[str, str]) -> str:
    """Replace ``$name``, ``${name}`` and ``${name:format}`` as Grafana would."""
    table = {**GRAFANA_BUILTINS, **variables}

    def replace(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        if name not in table:
            raise KeyError(f"unknown dashboard variable ${name} in {expr!r}")
        return table[name]

    return re.sub(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)", replace, expr)
