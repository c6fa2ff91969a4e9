"""Ask a service what a plugin would ask it: the part ``rdns-scorer rspamd check`` and
``rdns-scorer spamassassin check`` share.

Each filter's command finds out, from the filter itself, whether it loads the plugin
and where and how the plugin asks (the URL, the token); this sends that request and
turns each answer into a finding that says what to do, in the filter's own words.
"""

from __future__ import annotations

import http.client
import json
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import msgpack

from scorer import __version__
from scorer.integrations import PLUGIN_TIMEOUT, longest_deadline, plugin_timeout

REQUEST_TIMEOUT = 3.0
# A loopback client: the service skips it ([policy] skip_networks) with no DNS lookup, so
# the answer says whether the service takes the plugin's request, not how DNS is doing.
PROBE = {"ip": "127.0.0.1", "helo": "rdns-scorer-check", "mail_from": ""}
# A reply from something else (another service on the port) has no such keys.
REPLY_KEYS = {"symbols", "score"}


@dataclass(frozen=True, slots=True)
class Finding:
    ok: bool
    text: str

    def line(self) -> str:
        return f"{'ok:' if self.ok else 'problem:':<10} {self.text}"


@dataclass(frozen=True, slots=True)
class Wiring:
    """How one filter's plugin reaches the service, in that filter's words."""

    filter: str  # "rspamd", "SpamAssassin"
    address_setting: str  # what to correct when nothing answers
    path_setting: str  # ... when the path is wrong
    token_fix: str  # ... when the service refuses the token
    timeout_setting: str  # ... when the plugin gives up before the service answers
    max_timeout: float  # the longest that setting can make the plugin wait
    # The body as the plugin sends it: rspamd's msgpack, SpamAssassin's JSON (both ask
    # for a JSON reply).
    msgpack_body: bool = False
    # The installer that wrote the timeout setting from the service's config (and writes
    # it over a hand edit at its next run), when it did: the fix for a timeout too short.
    installed_by: str = ""


def release_finding(installed: Path, shipped: bytes | None, install: str) -> Finding:
    """Whether the plugin file the filter loads is the one this release ships (``None``:
    its files were not found); if not, the ``install`` command that updates it. An older
    plugin reports symbols a newer service added as RL_SCORER_UNKNOWN, never scored."""
    if installed.is_file() and installed.read_bytes() == shipped:
        return Finding(True, f"{installed} is rdns-scorer {__version__}'s")
    return Finding(
        False,
        f"{installed} is not rdns-scorer {__version__}'s (an earlier release, or edited): "
        f"run `{install}` to update it",
    )


class _OneWrite(http.client.HTTPConnection):
    """A connection that sends a request's headers and body in one write, as both plugins
    do. A service at ``[server] max_connections`` writes its 503 on accept and closes
    without reading: http.client's second write (the body) then failed with a broken
    pipe, and the 503 went unread ("nothing answers ...: start the service")."""

    _pending = b""

    def send(self, data: object) -> None:
        if self.sock is None:
            self.connect()  # here, in request(), where urllib wraps a failed connect
        assert isinstance(data, bytes)  # headers, then the body: both bytes here
        self._pending += data

    def getresponse(self) -> http.client.HTTPResponse:
        if self._pending:
            assert self.sock is not None
            self.sock.sendall(self._pending)
            self._pending = b""
        return super().getresponse()


class _OneWriteHandler(urllib.request.HTTPHandler):
    def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(_OneWrite, req)


def _ask(request: urllib.request.Request) -> tuple[int, bytes]:
    """The status and body of ``request``, an HTTP error's too; OSError when nothing answered."""
    # Straight to the service: an http_proxy in the environment must not carry it.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), _OneWriteHandler())
    try:
        with opener.open(request, timeout=REQUEST_TIMEOUT) as reply:
            return reply.status, reply.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def _error_text(body: bytes) -> str:
    try:
        reply = json.loads(body)
    except ValueError:
        return body[:120].decode("utf-8", "replace")
    if isinstance(reply, dict):  # {"error": ...} of a refusal, {"status": ...} of /readyz
        return str(reply.get("error") or reply.get("status") or reply)
    return str(reply)


def _answer_finding(
    base: str, path: str, token: str | None, wiring: Wiring, status: int, body: bytes
) -> Finding:
    """What the service's answer to the plugin's request says."""
    if status == 401:
        has = "a token the service does not take" if token else "no token"
        return Finding(
            False,
            f"{base} refuses {wiring.filter}'s checks (401): it sends {has}; {wiring.token_fix}",
        )
    if status == 404:
        return Finding(False, f"{base} has no {path} (404): correct {wiring.path_setting}")
    if status != 200:
        return Finding(False, f"{base}{path} answered {status}: {_error_text(body)}")
    try:
        reply = json.loads(body)
    except ValueError:
        reply = None
    if isinstance(reply, dict) and reply.keys() >= REPLY_KEYS:
        return Finding(True, f"{base}{path} answers {wiring.filter}'s checks")
    return Finding(False, f"{base}{path} answers, but not as rdns-scorer does: another service?")


def plugin_request(url: str, token: str | None, wiring: Wiring) -> urllib.request.Request:
    """The check request ``wiring``'s plugin sends to ``url``: its body format, headers
    and token."""
    if wiring.msgpack_body:
        body, content_type = msgpack.packb(PROBE), "application/msgpack"
    else:
        body, content_type = json.dumps(PROBE).encode(), "application/json"
    headers = {"Content-Type": content_type, "Accept": "application/json"}
    if token:
        # The plugin's bytes: UTF-8, which http.client sends as they are when written as
        # latin-1 (its own encoding of a header raised on "€", stopping the check).
        headers["Authorization"] = f"Bearer {token}".encode().decode("latin-1")
    return urllib.request.Request(url, body, headers)


def service_findings(
    base: str, path: str, token: str | None, wiring: Wiring, timeout: float = PLUGIN_TIMEOUT
) -> list[Finding]:
    """Send the service at ``base`` (``http://HOST:PORT``) the plugin's request to
    ``path`` with ``token``; when it answers, ask whether it is ready (its resolver), and
    whether it answers within ``timeout``, the plugin's, as its checks need."""
    try:
        started = time.monotonic()
        status, body = _ask(plugin_request(base + path, token, wiring))
        took = time.monotonic() - started
        answer = _answer_finding(base, path, token, wiring, status, body)
    except http.client.HTTPException as error:
        # Something took the connection but its reply is no HTTP (an SSH or SMTP
        # server on that port: BadStatusLine) or broke off (IncompleteRead).
        return [
            Finding(
                False,
                f"{base} answers, but not as rdns-scorer does ({type(error).__name__}): "
                f"another service? correct {wiring.address_setting}",
            )
        ]
    except TimeoutError:
        # Not wrapped in a URLError: the connection was taken, the reply never came (a
        # timed-out connect is a URLError). Starting the service is not the fix then.
        return [
            Finding(
                False,
                f"{base} took the connection but sent no reply within {REQUEST_TIMEOUT:g} s: "
                "a hung service (its log; `systemctl restart rdns-scorer`), or something "
                f"else on that port: correct {wiring.address_setting}",
            )
        ]
    except OSError as error:
        return [
            Finding(
                False,
                f"nothing answers at {base} ({_reason(error)}): start the service (`systemctl "
                f"status rdns-scorer`), or correct {wiring.address_setting}",
            )
        ]
    if not answer.ok:
        return [answer]
    try:
        skew = _version_finding(base, *_ask(urllib.request.Request(base + "/metrics")))
        status, body = _ask(urllib.request.Request(base + "/readyz"))
    except (http.client.HTTPException, OSError) as error:
        # It took the check, so it is the service and mail is scored: not "nothing
        # answers", but a service too busy, or stopping, to say more.
        return [
            answer,
            Finding(
                False,
                f"{base} answered the check, then not /metrics or /readyz ({_reason(error)}): "
                "overloaded, stopping, or /readyz waiting on a slow resolver? read its log",
            ),
        ]
    found = [answer, *([skew] if skew else [])]
    if took > timeout:
        found.append(_slow_finding(base, took, timeout, wiring))
    deadline = _request_deadline(body)
    if deadline is not None and timeout < plugin_timeout(deadline):
        found.append(_deadline_finding(deadline, timeout, wiring))
    if status == 200:
        return [*found, Finding(True, f"{base} is ready (its resolver answers)")]
    why = _error_text(body)
    return [
        *found,
        Finding(
            False,
            f"{base} is not ready ({why}): every check is a zero-weight TEMPFAIL until its "
            "resolver answers (docs/monitoring.md)",
        ),
    ]


def _slow_finding(base: str, took: float, timeout: float, wiring: Wiring) -> Finding:
    # The probe's client is skipped without DNS: time here is the service's, or the
    # network's, never a slow zone's.
    return Finding(
        False,
        f"{base} took {took:.2f} s to answer a check that needs no DNS, and {wiring.filter} "
        f"gives up after {timeout:g} s ({wiring.timeout_setting}): its checks fail open "
        "(RL_SCORER_FAIL); an overloaded or stalled service, or a slow network? read its log",
    )


def _request_deadline(readyz_body: bytes) -> float | None:
    """The ``[dns] request_deadline`` a service's /readyz says it answers checks within
    (scorer.app.readyz), or None when it does not say (another release, another service)."""
    try:
        reply = json.loads(readyz_body)
    except ValueError:
        return None
    deadline = reply.get("request_deadline") if isinstance(reply, dict) else None
    if isinstance(deadline, bool) or not isinstance(deadline, int | float) or deadline <= 0:
        return None
    return float(deadline)


def _deadline_finding(deadline: float, timeout: float, wiring: Wiring) -> Finding:
    wanted = plugin_timeout(deadline)
    if wanted <= wiring.max_timeout and wiring.installed_by:
        # Install wrote it from the service's config: run again, it writes the new one
        # (an edit of its own would be written over at the next install).
        fix = (
            f"run `{wiring.installed_by} --config FILE` with the service's config, which "
            f"writes {wanted:g} s there, or lower request_deadline"
        )
    elif wanted <= wiring.max_timeout:
        fix = f"set {wiring.timeout_setting} to {wanted:g} s, or lower request_deadline"
    else:  # no timeout the plugin takes is long enough: the service must answer sooner
        most = longest_deadline(wiring.max_timeout, deadline)
        fix = (
            f"lower request_deadline to {most:g} s or less ({wiring.timeout_setting} cannot "
            f"be more than {wiring.max_timeout:g} s)"
        )
    return Finding(
        False,
        f"{wiring.filter} gives up after {timeout:g} s ({wiring.timeout_setting}), but the "
        f"service may take {deadline:g} s ([dns] request_deadline) to answer a check whose "
        f"DNS is slow, and the network some more: those checks fail open; {fix}",
    )


def _reason(error: BaseException) -> object:
    """What went wrong, in urllib's words when it wrapped the error."""
    if isinstance(error, http.client.HTTPException):
        return type(error).__name__
    return getattr(error, "reason", error)


# The running service's version, as its /metrics says it (scorer.metrics, Info).
_BUILD_VERSION = re.compile(r'^rdns_scorer_build_info\{[^}]*\bversion="([^"]*)"', re.MULTILINE)


def _version_finding(base: str, status: int, body: bytes) -> Finding | None:
    """A problem when the service runs another release than this command, whose plugin
    is the one the filter should have: a newer service's symbols reach an older plugin as
    RL_SCORER_UNKNOWN, never scored. None when they agree, or /metrics does not say."""
    found = _BUILD_VERSION.search(body.decode("utf-8", "replace")) if status == 200 else None
    if found is None or found.group(1) == __version__:
        return None
    return Finding(
        False,
        f"{base} runs rdns-scorer {found.group(1)}, this command is {__version__}: upgrade "
        "the older one, then install the plugin again (docs/operations.md, Upgrading)",
    )


def run_check(command: str, gather: Callable[[], list[Finding]], all_well: str) -> int:
    """Print what ``gather`` finds, and a last line; the exit status: 0 when all is well,
    1 with problems, 2 when it cannot tell (said in one line, naming ``command``)."""
    try:
        findings = gather()
    except (OSError, RuntimeError, ValueError, subprocess.TimeoutExpired) as error:
        print(f"rdns-scorer {command}: {error}", file=sys.stderr)
        return 2
    return report(findings, all_well)


def report(findings: list[Finding], all_well: str) -> int:
    """Print ``findings`` and a last line; the exit status: 0 when all is well, else 1."""
    print("\n".join(finding.line() for finding in findings))
    problems = sum(not finding.ok for finding in findings)
    if problems:
        plural = "s" if problems > 1 else ""
        print(f"{problems} problem{plural} (mail still flows: the plugin fails open)")
        return 1
    print(all_well)
    return 0
