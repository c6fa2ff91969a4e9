"""``rdns-scorer config show``: the config the service would run with, as TOML.

What an admin tuning weights and allowlists wants to see is not the file they wrote
but what it amounts to: every key, defaults filled in, the environment's overrides
applied, relative file names anchored (as ``serve`` reads them). The output loads back
as the same config, so it is also a starting point for a complete file. The token is
never printed: a comment says it is set and where it comes from.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from scorer.config import ENV_TOKEN, SECTIONS, Config

WRAP_AT = 88  # a list longer than this on one line gets one item per line


def _value(value: Any) -> str:
    """``value`` as a TOML value: a string, number, boolean or list of strings."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        # JSON's escapes are TOML's (basic strings); DEL, which JSON leaves bare, is not.
        return json.dumps(value).replace("\x7f", "\\u007f")
    items = [_value(item) for item in value]
    one_line = f"[{', '.join(items)}]"
    if len(one_line) <= WRAP_AT:
        return one_line
    return "[\n" + "".join(f"  {item},\n" for item in items) + "]"


def _token_comment(config: Config, token_from_env: bool) -> str | None:
    if not config.server.token or config.server.token_file:
        return None  # none, or token_file (shown) is where it comes from
    where = ENV_TOKEN if token_from_env else "the config file"
    return f"# token: set (from {where}), not shown"


def render(config: Config, source: str, token_from_env: bool = False) -> str:
    """``config`` as a TOML file that loads back as ``config`` (but for the token)."""
    lines = [f"# rdns-scorer: the effective config of {source}", ""]
    for name in SECTIONS:
        section = getattr(config, name)
        lines.append(f"[{name}]")
        for field in dataclasses.fields(section):
            if name == "server" and field.name == "token":
                comment = _token_comment(config, token_from_env)
                lines += [comment] if comment else []
                continue
            lines.append(f"{field.name} = {_value(getattr(section, field.name))}")
        lines.append("")
    lines.append("[weights]")
    lines += [f"{symbol} = {_value(weight)}" for symbol, weight in config.weights.items()]
    return "\n".join(lines) + "\n"
