"""One structured log line per check, as ``key=value`` text or JSON.

Every value that came from the client is escaped (scorer.text), so a HELO with
CR/LF or ANSI escapes cannot forge log lines.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any

from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestPayloadError

from scorer.protocol import CheckReply, CheckRequest, Labels
from scorer.text import option, quoted

log = logging.getLogger("rdns_scorer.requests")

# This process's id, for the lines: kept here (a fork renews it) rather than asked of
# logging per record, which the service turns off (configure_logging). JSON lines carry
# it always; text lines once several processes share one stderr (serve --workers,
# where journald names the supervisor's pid for every line): name_the_processes().
_pid = os.getpid()
_pid_in_text = False


def _renew_pid() -> None:
    global _pid
    _pid = os.getpid()


os.register_at_fork(after_in_child=_renew_pid)


def name_the_processes() -> None:
    """From now on, text lines (this process's and its children's) name their pid:
    several workers write the same lines (a refusal, a resolver's silence), and an
    admin must tell three workers from three events."""
    global _pid_in_text
    _pid_in_text = True


class _SecondCachedTime(logging.Formatter):
    """``formatTime`` with the date part rendered once per second, not once per line."""

    _second = -1
    _rendered = ""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        if datefmt is not None:
            return super().formatTime(record, datefmt)
        second = int(record.created)
        if second != self._second:
            self._rendered = time.strftime(self.default_time_format, self.converter(second))
            self._second = second
        if self.default_msec_format is None:
            return self._rendered
        return self.default_msec_format % (self._rendered, record.msecs)


class _JsonFormatter(_SecondCachedTime):
    # RFC 3339 in UTC ("2026-12-03T10:33:34.749Z"), which log shippers parse as it is:
    # logging's default has no zone and a comma before the milliseconds.
    def converter(self, seconds: float | None) -> time.struct_time:
        return time.gmtime(seconds)

    default_time_format = "%Y-%m-%dT%H:%M:%S"
    default_msec_format = "%s.%03dZ"

    def format(self, record: logging.LogRecord) -> str:
        fields: dict[str, Any] = {
            "time": self.formatTime(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "pid": _pid,
        }
        fields.update(getattr(record, "fields", None) or {"message": record.getMessage()})
        # The traceback too (log.exception, aiohttp's "Error handling request"): the
        # runbooks send admins to it, and a JSON log must not lose it.
        if record.exc_info:
            fields["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            fields["stack"] = self.formatStack(record.stack_info)
        return json.dumps(fields, ensure_ascii=True)


class _TextFormatter(_SecondCachedTime):
    """``2026-11-30 12:03:31,461 INFO text``, or ``... [PID] INFO text`` with several
    processes (name_the_processes)."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        # The first line; logging.Formatter.format adds a traceback and a stack after it.
        fields = getattr(record, "fields", None)
        if fields is None:
            text = record.message
        else:
            text = " ".join(
                f"{k}={quoted(v) if isinstance(v, str) else v}" for k, v in fields.items()
            )
        process = f" [{_pid}]" if _pid_in_text else ""
        return f"{self.formatTime(record)}{process} {record.levelname} {text}"


# sd-daemon(3): a line that starts with "<N>" is stored at syslog priority N.
_JOURNAL_PRIORITIES = {
    logging.CRITICAL: 2, logging.ERROR: 3, logging.WARNING: 4, logging.INFO: 6, logging.DEBUG: 7
}  # fmt: skip


def _with_priority(priority: int, text: str) -> str:
    # journald splits on newlines: every line of a traceback needs the prefix too.
    return "\n".join(f"<{priority}>{line}" for line in text.split("\n"))


class _JournalHandler(logging.StreamHandler):
    """Lines prefixed with their priority, for journald: ``journalctl -p err`` then
    finds our errors (plain stderr lines are all stored as "info")."""

    def format(self, record: logging.LogRecord) -> str:
        return _with_priority(_JOURNAL_PRIORITIES.get(record.levelno, 6), super().format(record))


def _print_to_stderr(priority: int, text: str) -> None:
    """A line of the command line on stderr, at syslog ``priority`` for journald."""
    journal = stderr_is_journal(os.environ)
    print(_with_priority(priority, text) if journal else text, file=sys.stderr)


def print_error(text: str) -> None:
    """An error line of the command line on stderr (an error for journald too)."""
    _print_to_stderr(3, text)


def print_warning(text: str) -> None:
    """A warning line of the command line on stderr, a warning for journald: `config
    check` runs as the unit's ExecReload, where stdout is stored at "info"."""
    _print_to_stderr(4, text)


def stderr_is_journal(environ: Mapping[str, str], fd: int = 2) -> bool:
    """Whether ``fd`` is the journal stream systemd named in ``JOURNAL_STREAM``
    ("device:inode", systemd.exec(5)); not when stderr was redirected elsewhere."""
    try:
        stat = os.fstat(fd)
    except OSError:
        return False
    return environ.get("JOURNAL_STREAM") == f"{stat.st_dev}:{stat.st_ino}"


# aiohttp's parser errors quote the bytes they stopped at, after a newline or as a
# bytes literal (or a bytearray's): a header line, which may be "Authorization:
# Bearer <token>".
_QUOTED_INPUT = re.compile(r"""\n|\b(?:bytearray\()?b['"]""")


def _without_quoted_input(message: str) -> str:
    """What went wrong, without the request bytes aiohttp quotes after it."""
    return _QUOTED_INPUT.split(message, maxsplit=1)[0].rstrip(" :") or "malformed request"


# A client's malformed HTTP is logged at once, then at most once a minute per reason,
# as refused checks are (scorer.refusals): anyone who can connect can send it, token or
# not, and a line per request let a flood write ~4,000 lines a second, enough for
# journald's rate limit to drop the service's own warnings with them.
CLIENT_FAULT_LOG_SECONDS = 60.0
# Reasons remembered apart, at most (a reason can carry the client's own words, such as
# the Content-Encoding it sent); the others share one quiet time per status.
MAX_CLIENT_FAULT_REASONS = 64


class _ClientFaultsAsInfo(logging.Filter):
    """aiohttp logs a client's malformed HTTP (a bad request line, broken chunking, a
    Transfer-Encoding it refuses) as an ERROR with a traceback. The fault is the
    client's: one INFO line, so ERRORs stay ours and a port scanner cannot flood them;
    and at most one a minute per reason (CLIENT_FAULT_LOG_SECONDS), the next one saying
    how many were not logged meanwhile. A body that failed to be read is logged once
    more when aiohttp drains it after a route that does not read it answered: that copy
    is dropped. (Content codings are the service's to decode: scorer.contentcoding.)"""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self._clock = clock
        self._quiet_until: dict[str, float] = {}  # by reason: no line until then
        self._held: dict[str, int] = {}  # by reason: not logged since its last line

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, RequestPayloadError):
            if record.msg == "Unhandled exception":
                return False
            error = error.__cause__
        if isinstance(error, HttpProcessingError) and 400 <= error.code < 500:
            reason = option(_without_quoted_input(error.message), 100)
            held = self._hold(f"{error.code} {reason}", str(error.code))
            if held is None:
                return False
            more = f" ({held} more since the last such line, not logged)" if held else ""
            record.msg, record.args = f"{record.getMessage()}: {error.code} {reason}{more}", None
            record.levelno, record.levelname = logging.INFO, "INFO"
            record.exc_info = record.exc_text = None
        return True

    def _hold(self, key: str, shared: str) -> int | None:
        """None while ``key``'s line waits out its quiet time (counted), else how many
        were held back since its last line."""
        now = self._clock()
        quiet = self._quiet_until
        if key not in quiet and len(quiet) >= MAX_CLIENT_FAULT_REASONS:
            # Every reason whose quiet time is up, its held-back count too: kept until
            # the same reason came again, a minute's flood of 64 reasons each sent twice
            # held every slot for good, and every other reason shared one line a minute.
            for stale in [k for k, until in quiet.items() if until <= now]:
                del quiet[stale]
                self._held.pop(stale, None)
            if len(quiet) >= MAX_CLIENT_FAULT_REASONS:
                key = shared
        if now < quiet.get(key, 0.0):
            self._held[key] = self._held.get(key, 0) + 1
            return None
        quiet[key] = now + CLIENT_FAULT_LOG_SECONDS
        return self._held.pop(key, 0)


def configure_logging(log_format: str, requests: bool) -> None:
    # Neither format shows the thread, process or source line, so don't collect them
    # for every record (the knobs the logging HOWTO's "Optimization" section names).
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    logging._srcfile = None  # no stack walk per record to find the caller
    handler = _JournalHandler() if stderr_is_journal(os.environ) else logging.StreamHandler()
    if log_format == "json":
        handler.setFormatter(_JsonFormatter())
    else:
        handler.setFormatter(_TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    log.setLevel(logging.INFO if requests else logging.WARNING)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    server = logging.getLogger("aiohttp.server")
    if not any(isinstance(f, _ClientFaultsAsInfo) for f in server.filters):
        server.addFilter(_ClientFaultsAsInfo())


class _CommandFormatter(logging.Formatter):
    """``rdns-scorer check: warning: ...``: a command's log lines read as its errors do
    (print_error), named after the command; no timestamp, which a terminal has no use for."""

    def __init__(self, command: str) -> None:
        super().__init__("%(message)s")
        self._command = command

    def format(self, record: logging.LogRecord) -> str:
        return f"{self._command}: {record.levelname.lower()}: {super().format(record)}"


def configure_command_logging(command: str) -> None:
    """Where a one-off command's warnings go (the DNS layer's word on the resolver): stderr,
    each line named after ``command``. Without a handler Python printed the bare message,
    which did not say who spoke, beside the report on stdout."""
    handler = logging.StreamHandler()
    handler.setFormatter(_CommandFormatter(command))
    root = logging.getLogger()
    # Once per process, however often main() runs (the tests call it many times).
    others = [h for h in root.handlers if not isinstance(h.formatter, _CommandFormatter)]
    root.handlers[:] = [*others, handler]


def log_check(request: CheckRequest, labels: Labels, reply: CheckReply, elapsed_ms: float) -> None:
    if not log.isEnabledFor(logging.INFO):
        return  # the hot path pays nothing when request logging is off
    queue_id, user = labels
    fields = {
        "event": "check",
        "ip": str(request.ip),
        "helo": option(request.helo or "", 100),
        "from": "<>" if request.mail_from == "" else option(request.mail_from or "", 100),
        "queue_id": option(queue_id or "", 40),
        "user": option(user or "", 60),
        "score": reply.score,
        "symbols": ",".join(s.name for s in reply.symbols),
        "elapsed_ms": round(elapsed_ms, 3),
    }
    log.info("check", extra={"fields": fields})
