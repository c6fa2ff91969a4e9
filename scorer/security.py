"""Start-up safety: a service reachable from the network must demand a token."""

from __future__ import annotations

import ipaddress

from scorer.config import ServerConfig


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a hostname may resolve to anything: treat it as public


def public_bind_refusal(host: str, server: ServerConfig) -> str | None:
    """Why the service must not start on ``host``, or None if it may."""
    if is_loopback(host) or server.token or server.allow_public_without_token:
        return None
    return (
        f"refusing to listen on {host}, which is not loopback, without a token: set "
        "[server] token (and the same token in the rspamd/SpamAssassin plugin), or set "
        "[server] allow_public_without_token = true if a firewall protects the port"
    )
