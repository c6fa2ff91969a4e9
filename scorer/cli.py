"""The ``rdns-scorer`` command line: serve, health, check, generic, config."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import errno
import io
import json
import logging
import math
import os
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from scorer import __version__
from scorer.allowlist import ALLOWLIST_SYMBOLS, Allowlist, matched_entry
from scorer.checks.ptr import PtrFacts
from scorer.config import (
    ENV_LISTEN,
    ENV_TOKEN,
    MAX_WORKERS,
    Config,
    ConfigError,
    ServerConfig,
    applied_variables,
    as_written,
    load_config,
    local_address,
    parse_listen,
    read_toml,
    with_overrides,
)
from scorer.configshow import render
from scorer.dns.layer import Consequences
from scorer.dns.outcomes import TempFail, describe
from scorer.files import file_error
from scorer.generic.cli import run_generic
from scorer.hangup import defer_hangups
from scorer.integrations import rspamd as rspamd_integration
from scorer.integrations import spamassassin
from scorer.launch import INTERRUPTED_STATUS
from scorer.lookups import Facts
from scorer.names import decimal_in, host_port, load_public_suffixes
from scorer.pipeline import Pipeline, build_dns_layer
from scorer.protocol import (
    MAX_FIELD_CHARS,
    CheckReply,
    CheckRequest,
    RequestError,
    parse_request,
)
from scorer.report import render_report
from scorer.requestlog import (
    configure_command_logging,
    configure_logging,
    name_the_processes,
    print_error,
    print_warning,
)
from scorer.security import (
    exposed_token_files,
    exposure_warning,
    refuse_public_without_token,
    unused_token_warning,
)
from scorer.symbols import SYMBOLS, markdown_table, reports_a_failure
from scorer.text import escape_unprintable


def _add_config_file_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="FILE", help="TOML config file (default: built-in)")


def _add_config_options(parser: argparse.ArgumentParser) -> None:
    _add_config_file_option(parser)
    parser.add_argument(
        "--nameserver",
        action="append",
        metavar="IP[:PORT]",
        help="resolver to query, by address; repeat for several (default: RDNS_SCORER_NAMESERVERS, "
        "then [dns] nameservers, then /etc/resolv.conf)",
    )


def _config(args: argparse.Namespace, listen: str | None = None, *, token: bool = True) -> Config:
    config = load_config(args.config, token=token)
    return with_overrides(config, listen=listen, nameservers=args.nameserver)


def _positive_seconds(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not 0 < seconds <= 3600:  # nan too
        raise argparse.ArgumentTypeError(f"expected seconds above 0 (up to 3600), got {text!r}")
    return seconds


def _worker_count(text: str) -> int:
    count = decimal_in(text, 1, MAX_WORKERS)
    if count is None:
        raise argparse.ArgumentTypeError(f"expected 1 to {MAX_WORKERS}, got {text!r}")
    return count


def _serve(args: argparse.Namespace) -> int:
    from scorer.workers import listen_exit_status, listen_failure, serve  # late: `check`

    defer_hangups()  # scorer.launch did already; main() may also be called directly
    config = _served_config(args)
    host, port = parse_listen(config.server.listen)
    try:
        refuse_public_without_token(config)  # the same rule as for reloads and config check
    except ConfigError as refusal:
        print_error(f"rdns-scorer serve: {refusal}")
        return 2

    def loader() -> Config:
        # A reload that drops the token must not open the socket already bound.
        reloaded = _served_config(args)
        refuse_public_without_token(reloaded, bound_host=host)
        return reloaded

    configure_logging(*config.server.logging_settings)
    workers = config.server.workers
    if workers > 1:
        name_the_processes()  # the workers will write the same lines to one stderr
    resolvers = ", ".join(config.dns.nameservers) or "from /etc/resolv.conf"
    logging.getLogger("rdns_scorer").info(
        "rdns-scorer %s starting on %s (%d worker%s), config: %s, resolvers: %s, token: %s",
        __version__, host_port(host, port), workers, "" if workers == 1 else "s",
        args.config or "the embedded defaults",  # which file a reload will read again
        resolvers, "required" if config.server.token else "none",
    )  # fmt: skip
    for warning in config.warnings():
        logging.getLogger("rdns_scorer").warning("%s", warning)
    try:
        return serve(config, loader, host, port, workers)
    except Exception as error:
        if not isinstance(error, OSError) or (failure := listen_failure(error, host, port)) is None:
            # A bug, or an OSError no bind explains: whole, but through the log, as a
            # worker's is (review: Python's own traceback reached journald unprefixed,
            # at "info", so `journalctl -p err` missed the crash, and a JSON log got
            # lines that are no JSON). Exit status 1, as an uncaught exception's.
            logging.getLogger("rdns_scorer").exception(
                "rdns-scorer serve failed (pid %d)", os.getpid()
            )
            return 1
        print_error(f"rdns-scorer serve: {failure}")
        return listen_exit_status(error)


def _served_config(args: argparse.Namespace) -> Config:
    """The config as ``serve`` runs it, at start and at each reload: its ``--listen`` and
    ``--workers`` applied to both, so a reload compares like with like
    (Config.reload_warnings): the file's workers edited under ``--workers N`` is not
    what runs, nor what a restart runs, and warned that it would apply then."""
    config = _with_source_warnings(_config(args, listen=args.listen))
    if args.workers is None:
        return config
    server = dataclasses.replace(config.server, workers=args.workers)
    return dataclasses.replace(config, server=server)


def _health(args: argparse.Namespace) -> int:
    """GET /healthz where ``serve`` with the same config and flags listens: 0 if it
    answers 200 (a container healthcheck, a monitoring probe), else 1.

    Only the listen address is read (flag, then RDNS_SCORER_LISTEN, then ``[server]
    listen``): an edited config or allowlist that would not load yet is no reason to
    call a service that serves its last good one unhealthy (and have it restarted).
    """
    where = "rdns-scorer health"
    try:
        address = _health_address(args)
    except OSError as error:
        # A monitoring agent's user, which may not read a config holding the token
        # (0640 root:rdns-scorer, README): it needs the address only (review: it was told
        # "Permission denied" and nothing more, the service reported down).
        hint = (
            ": give the service's address with --listen HOST:PORT (or RDNS_SCORER_LISTEN) "
            "instead, which reads no file"
            if isinstance(error, PermissionError)
            else ""
        )
        print_error(f"{where}: {file_error(args.config, error)}{hint}")
        return 1
    except ValueError as error:  # not TOML, no name, no HOST:PORT
        print_error(f"{where}: {error}")
        return 1
    try:
        url = f"http://{address}/{'readyz' if args.ready else 'healthz'}"
        where = f"{where}: {url}"
        # Straight to the loopback: an http_proxy in the environment must not carry it.
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(url, timeout=args.timeout) as reply:
            body = reply.read()
    except urllib.error.HTTPError as error:
        # /readyz's 503 says why in its body: the runbooks' first question.
        print_error(f"{where}: HTTP {error.code}: {_readiness(error.read())}")
        return 1
    except urllib.error.URLError as error:  # refused, no such host: urllib wraps them
        print_error(f"{where}: {error.reason}")  # not "<urlopen error [Errno 111] ...>"
        return 1
    except (OSError, ValueError) as error:  # a timeout once connected
        print_error(f"{where}: {error}")
        return 1
    if args.ready:
        print(_readiness(body))
    return 0


def _readiness(body: bytes) -> str:
    """The ``status`` of a /readyz reply (the reason it is not ready), else the body."""
    try:
        status = json.loads(body)["status"]
    except (ValueError, TypeError, KeyError):
        return escape_unprintable(body.decode("utf-8", "replace")[:200])
    return escape_unprintable(str(status))


def _health_address(args: argparse.Namespace) -> str:
    """The address to probe where ``serve`` with these flags and config listens;
    ValueError naming where a value that is no ``HOST:PORT`` came from (a bad one in
    the file was ignored, and the default probed: a port the config never named)."""
    if args.listen is not None:  # `--listen "$UNSET"` is refused, as serve refuses it
        listen, source = args.listen, "--listen"
    elif os.environ.get(ENV_LISTEN):
        listen, source = os.environ[ENV_LISTEN], ENV_LISTEN
    else:
        listen, source = _listen_in(args.config), f"[server] listen ({args.config})"
    if listen is None:
        return local_address(ServerConfig().listen)
    if not isinstance(listen, str):
        raise ValueError(f"{source}: expected a string, HOST:PORT, got {as_written(listen)}")
    try:
        return local_address(listen)
    except ValueError as error:
        raise ValueError(f"{source}: {error}") from None


def _listen_in(path: str | None) -> object:
    """``[server] listen`` of the TOML file at ``path`` as written, if it sets one."""
    if path is None:
        return None
    if not path:  # `--config "$UNSET"`: Path("") is the working directory (load_config)
        raise ValueError("the config file name is empty")
    server = read_toml(path).get("server")
    return server.get("listen") if isinstance(server, dict) else None


# `rdns-scorer check` at a terminal: one check, no service and no /readyz; its
# *_TEMPFAIL fix lines speak of the client's zones, but the resolver is at fault.
ONE_CHECK = Consequences(
    silent="lookups fail and score 0 (*_TEMPFAIL); the resolver is at fault, not the "
    "client's zones",
    untrusted="this check reports them as DNS failures (zero weight)",
)

#: `check`'s exit status when a lookup failed (a *_TEMPFAIL symbol): the score is not
#: the whole verdict, and a script re-scoring clients must not read it as "clean".
EXIT_INCOMPLETE = 3


def _check(args: argparse.Namespace) -> int:
    config = _config(args, token=False)  # it checks in process: no request to authorize
    data = {
        "ip": args.ip,
        "helo": args.helo,
        "mail_from": args.mail_from,
        "hostname": args.hostname,
    }
    try:
        request = parse_request({k: v for k, v in data.items() if v is not None}).request
    except RequestError as error:
        print_error(f"rdns-scorer check: {error.message}")  # it names the field
        return 2
    configure_command_logging("rdns-scorer check")
    config = _with_source_warnings(config)
    for warning in [*config.warnings(), *_cut_fields(args)]:
        print_warning(f"rdns-scorer check: warning: {warning}")
    # Its resolver warnings speak of this one check, not of a service's checks to come.
    pipeline = Pipeline(config, build_dns_layer(config, consequences=ONE_CHECK))
    # The report names the client the checks judged: a NAT64 one's IPv4 host.
    request = pipeline.as_checked(request)
    load_public_suffixes()  # built before the clock starts, as a worker does

    async def judged() -> tuple[float, Facts | None, CheckReply]:
        # As the service does, a resolver that says the root does not exist gets no
        # verdict from its NXDOMAIN and NODATA (DnsLayer.check_root). Asked beside the
        # check, not before it: a silent resolver cost its timeout, then the deadline.
        probe = asyncio.ensure_future(pipeline.dns.check_root())
        trust_changes = pipeline.dns.trust_changes
        started = time.perf_counter()
        facts, reply = await pipeline.check_with_facts(request)
        await probe
        if pipeline.dns.trust_changes != trust_changes:
            # The probe found the resolver untrusted: its "no"s are asked again, and
            # reported as the failures they then are.
            facts, reply = await pipeline.check_with_facts(request)
        return (time.perf_counter() - started) * 1000, facts, reply

    elapsed_ms, facts, reply = asyncio.run(judged())
    if args.json:
        print(reply.to_json(elapsed_ms).decode())  # the very bytes /v1/check sends
    else:
        ptr_names = ", ".join(facts.ptr.names_judged()) if facts is not None else ""
        report = render_report(request, reply, elapsed_ms, ptr_names or None, pipeline.dns.silent)
        sys.stdout.write(report)
        for note in _allowlist_notes(config.allowlist_entries, request, facts, reply):
            print(f"\nnote: {note}")
    return EXIT_INCOMPLETE if any(reports_a_failure(s.name) for s in reply.symbols) else 0


def _allowlist_notes(
    allowlist: Allowlist, request: CheckRequest, facts: Facts | None, reply: CheckReply
) -> list[str]:
    """Where each allowlist entry that applied is written, to undo it; or why an entry the
    admin wrote for this client seems to do nothing."""
    applied = [
        (symbol.name, match)
        for symbol in reply.symbols
        if symbol.name in ALLOWLIST_SYMBOLS
        for match in symbol.options
    ]
    notes = [
        f"{name}: entry `{matched_entry(match)}` is written at {'; '.join(places)}"
        for name, match in applied
        if (places := allowlist.where_written(match))
    ]
    if facts is not None and not any(name == "RL_ALLOWLISTED" for name, _ in applied):
        notes += allowlist.unapplied(
            request.ip,
            request.helo,
            facts.ptr.forward,
            facts.ptr.confirmed_names(),
            facts.ptr.failed_names(),
            _ptr_unknown(facts.ptr),
            facts.ptr.names_not_looked_up(),
        )
    return notes


def _ptr_unknown(ptr: PtrFacts) -> str | None:
    """Why the client's PTR names are not known, for the allowlist notes: a HELO that
    is none of those looked up may be one of them (None: they are). Names beyond [dns]
    max_ptr_names are known, only not looked up: the notes name those apart
    (PtrFacts.names_not_looked_up), and a HELO none of them is no PTR name of the client."""
    if isinstance(ptr.ptr, TempFail):
        return f"the PTR lookup failed ({describe(ptr.ptr)}); check again"
    return None


def _cut_fields(args: argparse.Namespace) -> list[str]:
    """What to say of the options longer than the service reads of a field."""
    given = {"--helo": args.helo, "--from": args.mail_from, "--hostname": args.hostname}
    return [
        f"{option} is {len(value):,} characters; judged by its first {MAX_FIELD_CHARS:,}, "
        "as the service judges the field"
        for option, value in given.items()
        if value is not None and len(value) > MAX_FIELD_CHARS
    ]


def _generic(args: argparse.Namespace) -> int:
    if (args.ip is None) != (args.hostname is None):
        print_error("rdns-scorer generic: give both IP and HOSTNAME, or neither")
        return 2
    pair = None if args.ip is None else (args.ip, args.hostname)
    if pair is None and isinstance(sys.stdin, io.TextIOWrapper):
        # Mail logs carry bytes that are not UTF-8: each makes its line an error line
        # (shown as \xNN), not a UnicodeDecodeError that loses the rest of the batch.
        sys.stdin.reconfigure(errors="surrogateescape")
    return run_generic(pair, args.confirmed, sys.stdin, sys.stdout)


def _symbols(args: argparse.Namespace) -> int:
    if args.format == "markdown":
        sys.stdout.write(markdown_table())
    else:
        rows = [
            {
                "name": s.name,
                "family": str(s.family),
                "weight": s.weight,
                "description": s.description,
            }
            for s in SYMBOLS.values()
        ]
        print(json.dumps(rows, indent=2))
    return 0


def _with_source_warnings(config: Config) -> Config:
    """``config`` with what its file warns about (``Config.source_warnings``), which
    ``warnings`` then says: serve logs it at start and at each reload, config check
    prints it."""
    exposed = [exposure_warning(path) for path in exposed_token_files(config)]
    unused = unused_token_warning(config)
    found = (*exposed, *([unused] if unused else []))
    return dataclasses.replace(config, source_warnings=found)


def _add_config_file_argument(parser: argparse.ArgumentParser) -> None:
    """FILE, or ``--config FILE`` as every other command takes the config."""
    parser.add_argument("file", metavar="FILE", nargs="?", help="the config file")
    parser.add_argument(
        "--config", dest="config_file", metavar="FILE", help="the config file, as FILE"
    )


def _config_file(args: argparse.Namespace) -> str | None:
    """The file given as FILE or as --config; ValueError for two different ones."""
    given = {name for name in (args.file, args.config_file) if name is not None}
    if len(given) > 1:  # an empty name is one too: load_config says what is wrong with it
        raise ValueError(f"two config files given: {args.file} and --config {args.config_file}")
    return given.pop() if given else None


def _config_check(args: argparse.Namespace) -> int:
    try:
        path = _config_file(args)
    except ValueError as error:
        print_error(f"rdns-scorer config check: {error}")
        return 2
    if path is None:
        print_error("rdns-scorer config check: give the config FILE (or --config FILE)")
        return 2
    # With the environment, like `serve`: the token or listen address may come from it.
    config = load_config(path)
    refuse_public_without_token(config)
    # Escaped as its errors are (print_error): a name with a line break or a terminal
    # escape in it split the line, or reached the terminal (and journald, from the unit's
    # ExecReload) as it was.
    print(escape_unprintable(f"{path}: OK"))
    for warning in _with_source_warnings(config).warnings():
        print_warning(f"rdns-scorer config check: warning: {warning}")
    return 0


def _config_show(args: argparse.Namespace) -> int:
    # As `serve --config FILE` reads it: the environment's overrides too. Its relative
    # file names anchored to an absolute directory: "conf/allow.txt" of `config show
    # conf/scorer.toml` would be conf/conf/allow.txt in the output saved beside it.
    try:
        path = _config_file(args)
    except ValueError as error:
        print_error(f"rdns-scorer config show: {error}")
        return 2
    config = load_config(path and Path(path).absolute())
    # What serve would refuse to run is no config it would run with.
    refuse_public_without_token(config)
    # Those load_config applied, by its own reading: one set but naming nothing is not.
    applied = applied_variables()
    source = path or "the embedded defaults"
    if applied:
        source += f", with {', '.join(applied)} from the environment"
    sys.stdout.write(render(config, source, token_from_env=ENV_TOKEN in applied))
    return 0


class _Parser(argparse.ArgumentParser):
    """argparse's parser, whose usage errors are errors for journald too (print_error):
    ``serve --workers 0`` in a unit is one, as a config error is. Its subcommands' parsers
    are of this class too (add_subparsers takes the parent's)."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        print_error(f"{self.prog}: error: {message}")
        sys.exit(2)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="rdns-scorer",
        description="Score SMTP clients by reverse DNS, HELO and MAIL FROM, for rspamd "
        "and SpamAssassin.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the HTTP service")
    _add_config_options(serve)
    serve.add_argument(
        "--listen",
        metavar="HOST:PORT",
        help="address to bind (default: RDNS_SCORER_LISTEN, then [server] listen, "
        "then 127.0.0.1:11340)",
    )
    serve.add_argument(
        "--workers",
        type=_worker_count,
        metavar="N",
        help="processes sharing the port via SO_REUSEPORT (default: [server] workers, 1)",
    )
    serve.set_defaults(func=_serve)

    health = commands.add_parser(
        "health",
        help="probe a running service's /healthz (exit 0 if it answers) or /readyz",
        description="GET /healthz (/readyz with --ready) at the address `serve` with the "
        "same --config, --listen and RDNS_SCORER_* variables listens on (a wildcard "
        "address: its loopback).",
    )
    _add_config_file_option(health)
    health.add_argument("--listen", metavar="HOST:PORT", help="the service's address")
    health.add_argument(
        "--timeout", type=_positive_seconds, default=2.0, metavar="SECONDS", help="default 2"
    )
    health.add_argument(
        "--ready",
        action="store_true",
        help="ask /readyz instead: print its status, exit 1 with the reason when not ready",
    )
    health.set_defaults(func=_health)

    check = commands.add_parser(
        "check",
        help="check one client without a server",
        description="Check one client as the service would, asking DNS afresh, and print "
        "a report (or, with --json, the /v1/check reply body). Exit 0 with a verdict, 3 "
        "when a lookup failed (a *_TEMPFAIL symbol: the score is not the whole verdict), "
        "2 for a bad option or config.",
    )
    check.add_argument("--ip", required=True, help="client IP address")
    check.add_argument("--helo", help="HELO/EHLO name")
    check.add_argument(
        "--from", dest="mail_from", metavar="ADDR", help="envelope sender; '' for <>"
    )
    check.add_argument(
        "--hostname",
        metavar="NAME",
        help="the client's name as the MTA resolved it (the API's hostname field)",
    )
    check.add_argument("--json", action="store_true", help="print the /v1/check reply body")
    _add_config_options(check)
    check.set_defaults(func=_check)

    generic = commands.add_parser(
        "generic",
        help="classify a hostname as generic or not",
        description="With IP and HOSTNAME, print the verdict (exit 2 for a pair it cannot "
        "judge). With neither, read IP<TAB>HOSTNAME lines on stdin and print "
        "'generic|legit|error<TAB>confidence<TAB>evidence' (exit 1 after any error line).",
    )
    generic.add_argument("ip", nargs="?", help="client IP address")
    generic.add_argument("hostname", nargs="?", help="its PTR or HELO name")
    generic.add_argument("--confirmed", action="store_true", help="the name is forward-confirmed")
    generic.set_defaults(func=_generic)

    # Integrations register their own subcommands here (one line each).
    rspamd_integration.add_commands(commands)
    spamassassin.add_commands(commands)

    symbols = commands.add_parser("symbols", help="print the symbol table")
    symbols.add_argument("--format", choices=["markdown", "json"], default="markdown")
    symbols.set_defaults(func=_symbols)

    config = commands.add_parser("config", help="work with config files")
    config_commands = config.add_subparsers(dest="config_command", required=True, metavar="ACTION")
    config_check = config_commands.add_parser("check", help="validate a config file")
    _add_config_file_argument(config_check)
    config_check.set_defaults(func=_config_check)
    config_show = config_commands.add_parser(
        "show",
        help="print the config serve would run with, as TOML",
        description="Print every key of the config `serve --config FILE` would run with "
        "(no FILE: the embedded defaults), defaults filled in and RDNS_SCORER_* variables "
        "applied, as TOML that loads back as the same config. The token is never shown.",
    )
    _add_config_file_argument(config_show)
    config_show.set_defaults(func=_config_show)
    return parser


# What a shell reports for a command killed by SIGPIPE (128 + 13).
BROKEN_PIPE_STATUS = 141


def main(argv: Sequence[str] | None = None) -> int:
    if sys.stdout is None:  # started with fd 1 closed (`>&-`): output goes nowhere
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - for the process's lifetime
    if isinstance(sys.stdout, io.TextIOWrapper):
        # A name in U-labels on an ASCII or Latin-1 terminal (LANG=C over ssh): shown
        # as \xNN escapes rather than a UnicodeEncodeError after the work is done.
        sys.stdout.reconfigure(errors="backslashreplace")
    args = build_parser().parse_args(argv)
    try:
        result: int = args.func(args)
        # Now, not at the interpreter's exit (outside this handler): output smaller
        # than stdout's buffer (not PYTHONUNBUFFERED) meets a closed pipe only here.
        sys.stdout.flush()
    except ConfigError as error:
        print_error(f"rdns-scorer: config error: {error}")
        return 2
    except KeyboardInterrupt:
        return INTERRUPTED_STATUS  # Ctrl-C during a slow check: no traceback
    except BrokenPipeError:
        # `rdns-scorer symbols --format json | head`: the reader left, which is no
        # error of ours.
        _discard_stdout()
        return BROKEN_PIPE_STATUS
    except OSError as error:
        if error.errno not in OUTPUT_ERRORS:
            raise
        print_error(f"rdns-scorer: cannot write the output: {error.strerror}")
        _discard_stdout()
        return 1
    return result


# Write errors of stdout (`> /dev/full`, a full disk or quota, a vanished terminal):
# one line, not a traceback.
OUTPUT_ERRORS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EIO})


def _discard_stdout() -> None:
    """Point stdout at /dev/null, so that the flush at exit, of what could not be
    written, cannot fail again (the recipe of Python's signal module documentation)."""
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
