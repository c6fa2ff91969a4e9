"""The symbol table is the single source of truth; docs and plugins must agree with it."""

from __future__ import annotations

import ast
import dataclasses
import re
import string
from pathlib import Path

import pytest

from scorer.protocol import parse_request
from scorer.report import hint_fields
from scorer.symbols import SYMBOLS, Family, default_weights, markdown_table

ROOT = Path(__file__).parent.parent


def test_docs_table_is_generated_from_the_symbol_table() -> None:
    text = (ROOT / "docs" / "symbols.md").read_text()
    match = re.search(r"<!-- symbols:begin -->\n(.*?)<!-- symbols:end -->", text, re.S)
    assert match is not None
    assert match.group(1) == markdown_table(), "run: rdns-scorer symbols > table in docs/symbols.md"


def test_every_symbol_is_well_formed() -> None:
    for name, symbol in SYMBOLS.items():
        assert re.fullmatch(r"RL_[A-Z0-9_]+", name)
        assert symbol.description and symbol.reason and symbol.hint
        if name.endswith("_TEMPFAIL") or symbol.family is Family.PLUGIN:
            assert symbol.weight == 0.0, f"{name}: failures must never be scored"


def test_every_symbol_the_code_names_is_in_the_table() -> None:
    """The checks build hits, and policy, metrics, config and the report compare against
    them, by the symbol's name as a string: a misspelt or renamed one would never fire,
    or never match, and nothing else would say so."""
    named: dict[str, list[str]] = {}
    defined_in = ROOT / "scorer" / "symbols.py"
    for path in sorted(set((ROOT / "scorer").rglob("*.py")) - {defined_in}):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not isinstance(node, ast.Constant) or not isinstance(node.value, str):
                continue
            if re.fullmatch(r"RL_[A-Z0-9_]+", node.value):
                named.setdefault(node.value, []).append(f"{path.name}:{node.lineno}")
    assert len(named) > len(SYMBOLS) // 2  # the scan finds them: the checks name most
    unknown = {name: where for name, where in named.items() if name not in SYMBOLS}
    assert not unknown, unknown


def test_article_ordering_of_default_weights() -> None:
    weights = default_weights()
    assert weights["RL_PTR_MISSING"] > weights["RL_PTR_UNVERIFIED"] > 0
    assert max(w for n, w in weights.items() if n.startswith("RL_HELO_") and "FORGED" not in n) < (
        min(w for n, w in weights.items() if n.startswith("RL_MAILFROM_") and w > 0)
    )


def test_every_hint_names_only_fields_the_report_fills() -> None:
    # A misspelt field would make `rdns-scorer check` fail with a KeyError.
    request = parse_request(
        {"ip": "192.0.2.7", "helo": "mx.example.net", "mail_from": "a@example.org"}
    ).request
    filled = set(hint_fields(request, "mx.example.net"))
    for name, symbol in SYMBOLS.items():
        named = {field for _, field, _, _ in string.Formatter().parse(symbol.hint) if field}
        assert named <= filled, f"{name}: {named - filled}"


def test_the_table_cannot_be_changed_through_what_it_hands_out() -> None:
    with pytest.raises(TypeError):
        SYMBOLS["RL_NEW"] = SYMBOLS["RL_PTR_MISSING"]  # type: ignore[index]
    with pytest.raises(dataclasses.FrozenInstanceError):
        SYMBOLS["RL_PTR_MISSING"].weight = 0.0  # type: ignore[misc]
    weights = default_weights()
    weights["RL_PTR_MISSING"] = 0.0  # what a [weights] table does to its copy
    assert default_weights()["RL_PTR_MISSING"] == SYMBOLS["RL_PTR_MISSING"].weight > 0
