"""``rdns-scorer config show``: the config the service would run with, as TOML.

What an admin tuning weights and allowlists wants to see is not the file they wrote
but what it amounts to: every key, defaults filled in, the environment's overrides
applied, relative file names anchored (as ``serve`` reads them). The output loads back
as the same config, so it is also a starting point for a complete file. The tokens are
never printed: a comment says the token is set and where it comes from, and how many
previous tokens are.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from scorer.config import ENV_TOKEN, SECTIONS, Config, ConfigError

WRAP_AT = 88  # a list longer than this on one line gets one item per line


def _escaped(char: str) -> str:
    """``char`` in a TOML basic string: ASCII as it is but for the escapes, anything
    else by its code point. Not JSON's escapes: an astral character is a surrogate pair
    there ("\\ud83d\\ude00"), which TOML refuses (no Unicode scalar value)."""
    code = ord(char)
    if char in '"\\':
        return "\\" + char
    if 0x20 <= code < 0x7F:
        return char
    if 0xD800 <= code <= 0xDFFF:  # a byte that was no UTF-8 (a file name's): no TOML for it
        raise ValueError("a name that is not UTF-8, which TOML cannot hold")
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def _value(value: Any) -> str:
    """``value`` as a TOML value: a string, number, boolean or list of strings."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return '"' + "".join(_escaped(char) for char in value) + '"'
    items = [_value(item) for item in value]
    one_line = f"[{', '.join(items)}]"
    if len(one_line) <= WRAP_AT:
        return one_line
    return "[\n" + "".join(f"  {item},\n" for item in items) + "]"


def _token_comment(config: Config, token_from_env: bool) -> str | None:
    if not config.server.token:
        # Said too: without it the output named no token at all, as if there were none
        # to set (every other key is shown).
        return "# token: not set (checks need no bearer token; POST /v1/reload is refused)"
    if config.server.token_file and not token_from_env:
        return None  # token_file (shown) is where it comes from
    # RDNS_SCORER_TOKEN wins over token_file too: said, or the file shown would pass for it.
    where = ENV_TOKEN if token_from_env else "the config file"
    return f"# token: set (from {where}), not shown"


def render(config: Config, source: str, token_from_env: bool = False) -> str:
    """``config`` as a TOML file that loads back as ``config`` (but for the tokens)."""
    # A file name is any characters: a line break or DEL in this comment broke the TOML.
    shown = "".join(c if c.isprintable() else ascii(c)[1:-1] for c in source)
    lines = [f"# rdns-scorer: the effective config of {shown}", ""]
    for name in SECTIONS:
        section = getattr(config, name)
        lines.append(f"[{name}]")
        for field in dataclasses.fields(section):
            if name == "server" and field.name == "token":
                comment = _token_comment(config, token_from_env)
                lines += [comment] if comment else []
                continue
            if name == "server" and field.name == "previous_tokens" and section.previous_tokens:
                lines.append(f"# previous_tokens: {len(section.previous_tokens)} set, not shown")
                continue
            try:
                lines.append(f"{field.name} = {_value(getattr(section, field.name))}")
            except ValueError as error:
                raise ConfigError(f"[{name}] {field.name}: {error}") from None
        lines.append("")
    lines.append("[weights]")
    lines += [f"{symbol} = {_value(weight)}" for symbol, weight in config.weights.items()]
    return "\n".join(lines) + "\n"
