"""Command-line helper for the generic-PTR classifier (the lead wires it into argparse).

Two modes:

* one address: ``run_generic(("100.12.35.33", "33-35-12-100.example-isp.net"), ...)`` prints
  a human-readable verdict;
* batch: with no pair (None), reads ``IP<TAB>HOSTNAME`` lines from ``stdin`` and writes
  ``generic|legit|error<TAB>confidence<TAB>evidence; evidence`` per line, so admins can run
  it over addresses and names pulled from mail logs.

Both read an address and a name as the service does (``protocol.parse_ip``: brackets,
``::ffff:`` mapped; a name in U-labels judged by its A-label, ``names.to_ascii``), so a
verdict here is the one a check would give the same pair.
"""

from __future__ import annotations

import sys
from typing import TextIO

from scorer.generic.classifier import classify
from scorer.generic.hostparts import normalize_hostname
from scorer.generic.verdict import GenericVerdict
from scorer.names import IPAddress, to_ascii
from scorer.protocol import parse_ip
from scorer.requestlog import print_error
from scorer.text import escape

#: Exit status for usage errors (argparse uses the same).
EXIT_USAGE = 2
#: Exit status of a batch with malformed lines: scripts can tell (grep's "trouble" is 2).
EXIT_BAD_LINES = 1
ERROR_LABEL = "error\t"


class BadPair(ValueError):
    """An address or name the classifier cannot judge; its message says which, escaped."""


def parse_pair(ip: str, hostname: str) -> tuple[IPAddress, str]:
    """The client address and the A-label form of ``hostname``, as a check reads them;
    BadPair if either is unusable."""
    try:
        address = parse_ip(ip)
    except ValueError:
        raise BadPair(f"invalid IP address '{escape(ip.strip())}'") from None
    name = to_ascii(hostname.strip())
    if name is None or normalize_hostname(name) is None:
        raise BadPair(f"invalid hostname '{escape(hostname.strip())}'")
    return address, name


def run_generic(
    pair: tuple[str, str] | None, confirmed: bool, stdin: TextIO, stdout: TextIO
) -> int:
    """Classify one ``(ip, hostname)`` pair, or every line of ``stdin`` if it is None.

    ``confirmed`` states that the names are forward-confirmed (applies to every batch line).
    Returns the process exit status: 0 on success, 2 on an invalid single-mode argument
    (the message goes to standard error), 1 when a batch had malformed lines (each still
    gets its ``error`` line, and the others their verdicts).
    """
    if pair is None:
        if stdin.isatty():  # else it would wait, silently, for lines nobody knows to type
            print("reading IP<TAB>HOSTNAME lines (end with Ctrl-D)", file=sys.stderr)
        return EXIT_BAD_LINES if _run_batch(stdin, stdout, confirmed) else 0
    try:
        address, name = parse_pair(*pair)
    except BadPair as error:
        print_error(f"rdns-scorer generic: {error}")
        return EXIT_USAGE
    verdict = classify(address, name, confirmed)
    _print_report(address, pair[1].strip(), name, confirmed, verdict, stdout)
    return 0


def _print_report(
    address: IPAddress,
    hostname: str,
    name: str,
    confirmed: bool,
    verdict: GenericVerdict,
    stdout: TextIO,
) -> None:
    """Write the verdict of one pair for a person to read (``name``: the A-label form of
    ``hostname``, shown too where it differs more than in case)."""
    state = "forward-confirmed" if confirmed else "not forward-confirmed"
    shown = escape(hostname)  # a name from a log can carry terminal escapes
    if name != hostname.lower().rstrip("."):
        shown += f" ({name})"
    stdout.write(f"{address}  {shown}  ({state})\n")
    stdout.write(f"verdict:    {'generic' if verdict.generic else 'legit'}\n")
    stdout.write(f"confidence: {verdict.confidence:.2f}\n")
    lines = verdict.describe() or ["(no evidence)"]
    stdout.write("evidence:\n")
    for line in lines:
        stdout.write(f"  - {line}\n")


def _run_batch(stdin: TextIO, stdout: TextIO, confirmed: bool) -> int:
    """Classify ``IP<TAB>HOSTNAME`` lines (blank lines and ``#`` comments are skipped);
    the number of malformed ones."""
    malformed = 0
    for raw in stdin:
        line = raw.rstrip("\r\n")
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        output = _batch_line(line, confirmed)
        malformed += output.startswith(ERROR_LABEL)
        stdout.write(output + "\n")
    return malformed


def _batch_line(line: str, confirmed: bool) -> str:
    """The output line for one input line (an ``error`` line for malformed input)."""
    fields = line.split("\t")
    if len(fields) < 2:
        return _error("expected IP<TAB>HOSTNAME")
    try:
        address, name = parse_pair(fields[0], fields[1])
    except BadPair as error:
        return _error(str(error))
    verdict = classify(address, name, confirmed)
    label = "generic" if verdict.generic else "legit"
    return f"{label}\t{verdict.confidence:.2f}\t{'; '.join(verdict.describe())}"


def _error(reason: str) -> str:
    """An ``error`` output line (``reason`` escaped: no tab or newline breaks the format)."""
    return f"{ERROR_LABEL}0.00\t{reason}"
