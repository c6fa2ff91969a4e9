"""Log formatting: timestamps rendered once per second, identical to logging's own; JSON lines."""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestPayloadError

from scorer import requestlog
from scorer.cli import main
from scorer.protocol import CheckReply, SymbolResult, parse_request
from scorer.requestlog import (
    _ClientFaultsAsInfo,
    _JournalHandler,
    _JsonFormatter,
    _TextFormatter,
    configure_logging,
    log_check,
    print_error,
    stderr_is_journal,
)


def _record(created: float) -> logging.LogRecord:
    record = logging.LogRecord("rdns_scorer.requests", logging.INFO, "x", 1, "check", None, None)
    record.created = created
    record.msecs = (created - int(created)) * 1000
    return record


def test_second_cached_timestamps_match_logging_across_second_boundaries() -> None:
    for formatter in (_TextFormatter(), _JsonFormatter()):
        reference = logging.Formatter()  # logging's own, set to the formatter's formats
        reference.converter = formatter.converter
        reference.default_time_format = formatter.default_time_format
        reference.default_msec_format = formatter.default_msec_format
        for created in (1_796_000_000.001, 1_796_000_000.999, 1_796_000_001.0, 1_796_000_000.5):
            record = _record(created)
            assert formatter.formatTime(record) == reference.formatTime(record)
        record = _record(1_796_000_002.25)
        assert formatter.formatTime(record, "%H:%M") == reference.formatTime(record, "%H:%M")


def test_json_log_lines_keep_the_traceback() -> None:
    """Regression: the JSON formatter dropped exc_info, so log.exception() and aiohttp's
    "Error handling request" lost the traceback the runbooks point to."""
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.LogRecord(
            "aiohttp.server", logging.ERROR, "x", 1, "Error handling request", None, sys.exc_info()
        )
    line = _JsonFormatter().format(record)
    assert "\n" not in line  # still one line
    fields = json.loads(line)
    assert fields["message"] == "Error handling request"
    assert "Traceback" in fields["exception"] and "ValueError: boom" in fields["exception"]


def test_under_systemd_lines_carry_their_priority(tmp_path: Path) -> None:
    """Regression: journald stored every line at "info", so the runbooks'
    `journalctl -u rdns-scorer -p err` showed nothing."""
    with open(tmp_path / "journal", "w") as stream:
        stat = os.fstat(stream.fileno())
        journal = {"JOURNAL_STREAM": f"{stat.st_dev}:{stat.st_ino}"}
        assert stderr_is_journal(journal, stream.fileno())
        assert not stderr_is_journal({}, stream.fileno())
        assert not stderr_is_journal({"JOURNAL_STREAM": "1:2"}, stream.fileno())
    record = logging.LogRecord("rdns_scorer", logging.ERROR, "x", 1, "reload failed", None, None)
    assert _JournalHandler().format(record) == "<3>reload failed"
    record.levelno = logging.INFO
    assert _JournalHandler().format(record) == "<6>reload failed"


def test_under_systemd_every_line_of_an_error_is_an_error(
    monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    """Regression (review): a traceback's lines after the first, and the command line's
    own errors (config error, port in use), reached journald as "info"."""
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.LogRecord("x", logging.ERROR, "x", 1, "failed", None, sys.exc_info())
    handler = _JournalHandler()
    handler.setFormatter(logging.Formatter("%(message)s"))
    lines = handler.format(record).split("\n")
    assert len(lines) > 3 and all(line.startswith("<3>") for line in lines)
    stat = os.fstat(2)
    monkeypatch.setenv("JOURNAL_STREAM", f"{stat.st_dev}:{stat.st_ino}")
    print_error("rdns-scorer: config error: [weights] X: unknown")
    monkeypatch.delenv("JOURNAL_STREAM")
    print_error("rdns-scorer: plain")
    assert (
        capfd.readouterr().err
        == "<3>rdns-scorer: config error: [weights] X: unknown\nrdns-scorer: plain\n"
    )


def test_a_usage_error_is_an_error_for_journald(
    monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    # Regression (review): argparse's own errors (serve --workers 0 in the unit) reached
    # journald as "info", so `journalctl -p err` missed them.
    stat = os.fstat(2)
    monkeypatch.setenv("JOURNAL_STREAM", f"{stat.st_dev}:{stat.st_ino}")
    for argv in (["serve", "--workers", "0"], ["rspamd", "install", "--nope"]):
        with pytest.raises(SystemExit) as exited:
            main(argv)
        assert exited.value.code == 2
        err = capfd.readouterr().err
        assert err.startswith("usage: rdns-scorer ")  # the usage is no error of its own
        error = err.rstrip("\n").split("\n")[-1]
        assert error.startswith("<3>rdns-scorer") and "error: " in error, err


def test_config_checks_warnings_are_warnings_for_journald(
    monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # Regression (review): the unit's ExecReload runs `config check`, whose warnings went
    # to stdout, stored by journald at "info": `journalctl -p warning` missed them.
    config = tmp_path / "scorer.toml"
    config.write_text("[weights]\nRL_MAILFROM_TEMPFAIL = 1.0\n")
    stat = os.fstat(2)
    monkeypatch.setenv("JOURNAL_STREAM", f"{stat.st_dev}:{stat.st_ino}")
    assert main(["config", "check", str(config)]) == 0
    shown = capfd.readouterr()
    assert shown.out == f"{config}: OK\n"
    assert shown.err.startswith(
        "<4>rdns-scorer config check: warning: [weights] RL_MAILFROM_TEMPFAIL = 1"
    ), shown.err


def test_the_date_is_rendered_once_per_second_and_without_milliseconds_when_asked() -> None:
    formatter, reference = _TextFormatter(), logging.Formatter()
    converted: list[float | None] = []

    def counting(seconds: float | None = None) -> time.struct_time:
        converted.append(seconds)
        return time.localtime(seconds)

    formatter.converter = counting
    for created in (1_796_000_000.1, 1_796_000_000.2, 1_796_000_000.3, 1_796_000_001.0):
        formatter.formatTime(_record(created))
    assert converted == [1_796_000_000, 1_796_000_001]
    formatter.default_msec_format = reference.default_msec_format = None
    record = _record(1_796_000_002.25)
    assert formatter.formatTime(record) == reference.formatTime(record)


def test_journal_priorities_follow_the_level() -> None:
    handler = _JournalHandler()
    levels = {logging.CRITICAL: 2, logging.ERROR: 3, logging.WARNING: 4, logging.INFO: 6}
    levels |= {logging.DEBUG: 7, 25: 6}  # a level of its own: info
    for level, priority in levels.items():
        record = logging.LogRecord("rdns_scorer", level, "x", 1, "text", None, None)
        assert handler.format(record) == f"<{priority}>text", level


def test_an_fd_that_is_not_open_is_no_journal() -> None:
    read, write = os.pipe()
    os.close(read)
    os.close(write)
    stat = os.fstat(2)
    assert not stderr_is_journal({"JOURNAL_STREAM": f"{stat.st_dev}:{stat.st_ino}"}, write)


def test_json_lines_name_level_logger_message_and_stack_in_ascii() -> None:
    record = logging.LogRecord(
        "rdns_scorer", logging.WARNING, "x", 1, "reload of %s failed", ("caf\u00e9.toml",), None
    )
    record.stack_info = "Stack (most recent call last):\n  here"
    line = _JsonFormatter().format(record)
    assert line.isascii() and "\n" not in line
    fields = json.loads(line)
    assert fields["level"] == "warning" and fields["logger"] == "rdns_scorer"
    assert fields["message"] == "reload of caf\u00e9.toml failed"
    assert fields["stack"] == record.stack_info
    # RFC 3339 in UTC (regression, review: "2026-12-03 10:33:34,749", no zone).
    record.created, record.msecs = 1796300014.749, 749.0
    assert json.loads(_JsonFormatter().format(record))["time"] == "2026-12-03T12:13:34.749Z"


def test_lines_name_their_process_where_several_share_one_stderr(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Regression (review): with --workers N the same line came from N workers (a refusal,
    # a resolver's silence), journald named the supervisor's pid for all of them, and the
    # lines themselves named none: three workers or three events?
    monkeypatch.setattr(requestlog, "_pid_in_text", False)
    record = logging.LogRecord("rdns_scorer", logging.WARNING, "x", 1, "said %s", ("once",), None)
    record.created, record.msecs = 1796300014.749, 749.0
    text = _TextFormatter()
    alone = text.format(record)
    assert alone.endswith(" WARNING said once") and "[" not in alone
    assert json.loads(_JsonFormatter().format(record))["pid"] == os.getpid()  # always
    requestlog.name_the_processes()
    assert text.format(record) == alone.replace(" WARNING", f" [{os.getpid()}] WARNING")
    # A worker forked from here names its own.
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.write(write, text.format(record).encode())
        os._exit(0)
    os.waitpid(pid, 0)
    os.close(write)
    with os.fdopen(read) as child:
        assert f" [{pid}] WARNING said once" in child.read()


@pytest.fixture
def restored_logging() -> Iterator[None]:
    """configure_logging changes the process's logging: put it back after the test."""
    root, server = logging.getLogger(), logging.getLogger("aiohttp.server")
    loggers = [root, requestlog.log, logging.getLogger("aiohttp.access"), server]
    levels = [logger.level for logger in loggers]
    handlers, filters = root.handlers[:], server.filters[:]
    knobs = ("logThreads", "logProcesses", "logMultiprocessing", "_srcfile")
    saved = {name: getattr(logging, name) for name in knobs}
    yield
    root.handlers[:], server.filters[:] = handlers, filters
    for logger, level in zip(loggers, levels, strict=True):
        logger.setLevel(level)
    for name, value in saved.items():
        setattr(logging, name, value)


@pytest.mark.usefixtures("restored_logging")
def test_configure_logging_sets_one_handler_the_levels_and_one_client_fault_filter(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    root, server = logging.getLogger(), logging.getLogger("aiohttp.server")
    root.setLevel(logging.WARNING)
    configure_logging("json", requests=True)
    configure_logging("json", requests=True)  # a reload configures it again
    assert len(root.handlers) == 1 and not isinstance(root.handlers[0], _JournalHandler)
    assert isinstance(root.handlers[0].formatter, _JsonFormatter)
    assert root.level == logging.INFO
    assert requestlog.log.level == logging.INFO
    assert logging.getLogger("aiohttp.access").level == logging.WARNING
    assert [type(f) for f in server.filters].count(_ClientFaultsAsInfo) == 1
    # What neither format shows is not collected per record.
    assert (logging.logThreads, logging.logProcesses, logging.logMultiprocessing) == (
        False,
        False,
        False,
    )
    assert logging._srcfile is None
    configure_logging("text", requests=False)
    assert isinstance(root.handlers[0].formatter, _TextFormatter)
    assert requestlog.log.level == logging.WARNING
    record = logging.LogRecord("rdns_scorer", logging.INFO, "x", 1, "started on %d", (8080,), None)
    line = root.handlers[0].format(record)
    assert line.endswith(" INFO started on 8080")
    assert line.startswith(root.handlers[0].formatter.formatTime(record))
    stat = os.fstat(2)
    monkeypatch.setenv("JOURNAL_STREAM", f"{stat.st_dev}:{stat.st_ino}")
    configure_logging("text", requests=False)
    assert isinstance(root.handlers[0], _JournalHandler)


@pytest.mark.usefixtures("restored_logging")
def test_a_check_is_one_line_with_every_client_value_escaped_and_capped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    configure_logging("text", requests=True)
    records: list[logging.LogRecord] = []
    monkeypatch.setattr(requestlog.log, "handle", records.append)
    request = parse_request(
        {"ip": "192.0.2.1", "helo": 'x\r\n"y' + "h" * 200, "mail_from": "a@" + "f" * 200}
    ).request
    symbols = (SymbolResult("RL_PTR_MISSING", 5.0, ()), SymbolResult("RL_HELO_INVALID", 1.5, ()))
    reply = CheckReply(symbols, 6.5)
    log_check(request, ("q" * 50, "u\x1b" + "u" * 100), reply, 1.23456)
    (record,) = records
    fields = record.fields  # type: ignore[attr-defined]
    assert fields["event"] == "check" and fields["ip"] == "192.0.2.1"
    assert fields["helo"].startswith('x\\x0d\\x0a"y') and len(fields["helo"]) == 100
    assert fields["from"].startswith("a@f") and len(fields["from"]) == 100
    assert fields["queue_id"].startswith("q") and len(fields["queue_id"]) == 40
    assert fields["user"].startswith("u\\x1b") and len(fields["user"]) == 60
    assert (fields["score"], fields["symbols"]) == (6.5, "RL_PTR_MISSING,RL_HELO_INVALID")
    assert fields["elapsed_ms"] == 1.235
    line = _TextFormatter().format(record)
    assert "\n" not in line and " INFO event=" in line
    assert 'helo="x\\x0d\\x0a\\x22y' in line  # the quote cannot end the value early
    assert 'ip="192.0.2.1"' in line and " score=6.5 " in line and line.endswith(" elapsed_ms=1.235")
    records.clear()
    null_sender = parse_request({"ip": "192.0.2.1", "mail_from": "<>"}).request
    log_check(null_sender, (None, None), CheckReply((), 0.0), 0.1)
    log_check(parse_request({"ip": "192.0.2.1"}).request, (None, None), CheckReply((), 0.0), 0.1)
    assert [r.fields["from"] for r in records] == ["<>", ""]  # type: ignore[attr-defined]
    assert records[0].fields["queue_id"] == records[0].fields["user"] == ""  # type: ignore[attr-defined]
    # With log_requests off, the hot path does not even build the line.
    configure_logging("text", requests=False)

    def unwanted(text: str, limit: int) -> str:
        raise AssertionError("a check line was built with request logging off")

    monkeypatch.setattr(requestlog, "option", unwanted)
    log_check(request, (None, None), reply, 0.1)


def _handling_error(error: BaseException, msg: str = "Error handling request") -> logging.LogRecord:
    try:
        raise error
    except BaseException:
        return logging.LogRecord("aiohttp.server", logging.ERROR, "x", 1, msg, None, sys.exc_info())


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        (
            "Invalid header value char:\n\n  b'Authorization: Bearer s3cret\\x01'",
            "Invalid header value char",
        ),
        ("Invalid HTTP header: b'Authorization: Bearer s3cret'", "Invalid HTTP header"),
        ('Bad request line:\n  "GET /s3cret HTTP/1.1"', "Bad request line"),
        ("b'Authorization: Bearer s3cret'", "malformed request"),
        # Regression (review): a long URL's error left "bytearray(" behind.
        (
            "Got more than 8190 bytes when reading: bytearray(b'GET /s3cret')",
            "Got more than 8190 bytes when reading",
        ),
        # Bytes holding a quote are written b"...".
        (
            'Got more than 8190 bytes when reading: bytearray(b"GET /it\'s-s3cret")',
            "Got more than 8190 bytes when reading",
        ),
        ("Can not decode content-encoding: brotli", "Can not decode content-encoding: brotli"),
    ],
)
def test_a_client_fault_is_one_info_line_without_the_bytes_it_quotes(
    message: str, reason: str
) -> None:
    record = _handling_error(HttpProcessingError(code=400, message=message))
    assert _ClientFaultsAsInfo().filter(record)
    assert (record.levelno, record.levelname) == (logging.INFO, "INFO")
    assert record.getMessage() == f"Error handling request: 400 {reason}"
    assert record.exc_info is None and record.exc_text is None


def test_our_faults_stay_errors_and_a_drained_bad_body_is_logged_once() -> None:
    for code in (500, 399):
        record = _handling_error(HttpProcessingError(code=code, message="x"))
        assert _ClientFaultsAsInfo().filter(record)
        assert record.levelno == logging.ERROR and record.exc_info is not None, code
    cause = HttpProcessingError(code=400, message="Can not decode content-encoding: br")
    payload = RequestPayloadError("Response payload is not completed")
    payload.__cause__ = cause
    record = _handling_error(payload)
    assert _ClientFaultsAsInfo().filter(record)
    assert record.getMessage() == "Error handling request: 400 Can not decode content-encoding: br"
    # The same body again, when aiohttp drains it after a route that did not read it
    # answered: not logged twice.
    assert not _ClientFaultsAsInfo().filter(_handling_error(payload, "Unhandled exception"))
    long = _handling_error(HttpProcessingError(code=400, message="x" * 300))
    assert _ClientFaultsAsInfo().filter(long)
    assert len(long.getMessage()) == len("Error handling request: 400 ") + 100


def test_a_flood_of_malformed_requests_is_a_line_a_minute_per_reason() -> None:
    # Regression (review, served soak): anyone who can connect, token or not, wrote one
    # INFO line per malformed request (~4,000 lines a second from one client sending
    # too many header lines), where refused checks cost a line a minute: journald's rate
    # limit then dropped the service's own warnings with them.
    now = [1000.0]
    faults = _ClientFaultsAsInfo(clock=lambda: now[0])
    too_many = HttpProcessingError(code=400, message="Too many headers received")
    passed = [faults.filter(_handling_error(too_many)) for _ in range(1000)]
    assert passed.count(True) == 1 and passed[0]
    # Another reason has a line of its own.
    chunk = HttpProcessingError(code=400, message="Invalid character in chunk size: b'zz'")
    assert faults.filter(_handling_error(chunk))
    now[0] += 61
    record = _handling_error(too_many)
    assert faults.filter(record)
    assert record.getMessage() == (
        "Error handling request: 400 Too many headers received"
        " (999 more since the last such line, not logged)"
    )
    # Reasons the client words itself (its Content-Encoding) cannot make a line each.
    codings = [
        faults.filter(_handling_error(HttpProcessingError(
            code=400, message=f"Can not decode content-encoding: x{i}"
        )))
        for i in range(1000)
    ]  # fmt: skip
    assert codings.count(True) <= 64


def test_reasons_of_a_flood_that_ended_leave_room_for_others() -> None:
    # Regression (review): a reason with lines held back was never forgotten, once its
    # quiet time was up, until it came again: 64 of them sent twice in a minute took
    # every slot for good, and an hour later two other reasons still shared one line.
    now = [1000.0]
    faults = _ClientFaultsAsInfo(clock=lambda: now[0])
    for i in range(64):
        for _ in range(2):
            coding = HttpProcessingError(code=400, message=f"Can not decode content-encoding: x{i}")
            faults.filter(_handling_error(coding))
    now[0] += 3600
    for reason in ("Invalid character in chunk size", "Too many headers received"):
        record = _handling_error(HttpProcessingError(code=400, message=reason))
        assert faults.filter(record), reason
        assert record.getMessage() == f"Error handling request: 400 {reason}"
