"""``record``: an immutable dataclass that costs what a plain one costs to make.

A frozen dataclass's ``__init__`` sets each field through ``object.__setattr__`` (its
own ``__setattr__`` refuses): ~1,200 instructions a field, where a plain slotted
dataclass stores it in a few dozen. A check makes a few dozen such values (the facts
it looked up, the hits), which was ~5 % of a cold check's instructions
(bench/instructions.py).

Only for values that live as long as one check: what a memo or a cache hands to every
later caller and module constants stay immutable at run time (tests/test_generic.py).
The memoised values a new client or sender makes afresh in every check (a parsed HELO
or sender, a generic verdict and its evidence) are NamedTuples, which cost what a
record does to make; DNS outcomes and constants are frozen dataclasses.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TypeVar, dataclass_transform

T = TypeVar("T")


@dataclass_transform(frozen_default=True, field_specifiers=(field,))
def record(cls: type[T]) -> type[T]:
    """``@dataclass(frozen=True, slots=True)`` as mypy reads it, which refuses any
    assignment to a field; at run time a slotted dataclass whose fields are set as plain
    attributes are. Equality and hashing are a frozen dataclass's (field by field:
    ``unsafe_hash``, what ``frozen`` implies)."""
    return dataclass(slots=True, unsafe_hash=True)(cls)
