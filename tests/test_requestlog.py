"""Log formatting: timestamps rendered once per second, identical to logging's own; JSON lines."""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path

import pytest

from scorer.requestlog import (
    _JournalHandler,
    _JsonFormatter,
    _TextFormatter,
    print_error,
    stderr_is_journal,
)


def _record(created: float) -> logging.LogRecord:
    record = logging.LogRecord("rdns_scorer.requests", logging.INFO, "x", 1, "check", None, None)
    record.created = created
    record.msecs = (created - int(created)) * 1000
    return record


def test_second_cached_timestamps_match_logging_across_second_boundaries() -> None:
    reference = logging.Formatter()
    for formatter in (_TextFormatter(), _JsonFormatter()):
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
