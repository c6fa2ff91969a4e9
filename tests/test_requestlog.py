"""Request log timestamps: rendered once per second, identical to logging's own."""

from __future__ import annotations

import logging

from scorer.requestlog import _JsonFormatter, _TextFormatter


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
