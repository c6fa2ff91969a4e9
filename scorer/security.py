"""Start-up safety: a service reachable from the network must demand a token, and the
token must not be readable by every local user."""

from __future__ import annotations

import ipaddress
from pathlib import Path

from scorer.config import ENV_TOKEN, Config, ConfigError, ServerConfig, parse_listen


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":  # names are case-insensitive (RFC 4343 section 3)
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False  # a hostname may resolve to anything: treat it as public
    # ::ffff:127.0.0.1 is 127.0.0.1 on a dual-stack socket (RFC 4291 section 2.5.5.2):
    # Python 3.13's ipaddress says so, 3.11's and 3.12's do not, so it is unwrapped here.
    mapped = address.ipv4_mapped if isinstance(address, ipaddress.IPv6Address) else None
    return (mapped or address).is_loopback


def public_bind_refusal(host: str, server: ServerConfig) -> str | None:
    """Why the service must not start on ``host``, or None if it may."""
    if is_loopback(host) or server.token or server.allow_public_without_token:
        return None
    return (
        f"refusing to listen on {host}, which is not loopback, without a token: set "
        "[server] token (and the same token in the rspamd/SpamAssassin plugin), or set "
        "[server] allow_public_without_token = true if a firewall protects the port"
    )


def refuse_public_without_token(config: Config, bound_host: str | None = None) -> None:
    """Raise ConfigError if ``config`` would leave a non-loopback listener open.

    ``bound_host`` is the address the running service holds: ``listen`` only
    changes on restart, so a reload must keep that socket protected as well as
    the one the new config names.
    """
    hosts = [parse_listen(config.server.listen)[0]]
    if bound_host is not None:
        hosts.append(bound_host)
    for host in hosts:
        refusal = public_bind_refusal(host, config.server)
        if refusal is not None:
            raise ConfigError(refusal)


def unused_token_warning(config: Config) -> str | None:
    """The warning for a ``[server] token`` written in the config file that is not the
    token served, because RDNS_SCORER_TOKEN or ``token_file`` comes first: a rotation
    that writes the new token there changes nothing, and `rspamd install` hands out
    the one served. Never shows either token."""
    source = config.source
    if source is None or not config.server.token:
        return None
    written = source.server.get("token")
    if not isinstance(written, str) or not written or written == config.server.token:
        return None
    return (
        f"[server] token in {source.path} is not the token served: {ENV_TOKEN} or "
        "token_file comes first (docs/configuration.md); change the token there"
    )


def exposed_token_files(config: Config) -> list[Path]:
    """The files holding the service's token that every local user may read: the config
    file when it sets ``[server] token`` or ``previous_tokens``, and ``[server]
    token_file``. The token lets anyone with it run checks and ``POST /v1/reload``
    (docs/security.md)."""
    holders: list[Path] = []
    source = config.source
    if source is not None and (source.server.get("token") or source.server.get("previous_tokens")):
        holders.append(source.path)
    if config.server.token_file:
        holders.append(Path(config.server.token_file))
    return [path for path in holders if _world_readable(path)]


def _world_readable(path: Path) -> bool:
    try:
        return bool(path.stat().st_mode & 0o004)
    except OSError:  # missing, or in a directory the caller may not search (not others)
        return False


def exposure_warning(path: Path) -> str:
    return (
        f"{path} is world-readable and holds the token: chown root:rdns-scorer {path} && "
        f"chmod 640 {path} (the group the service runs as, which `adduser --system --group "
        "--no-create-home rdns-scorer` makes; docs/monitoring.md, systemd)"
    )
