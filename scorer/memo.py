"""Memos keyed on client text, bounded in memory as well as in entries.

A memo entry holds its key, and a client may send up to 1,024 characters per field
(four bytes each when they are not ASCII): 8,192 entries of such keys, in each of
several memos and the reply cache, would be hundreds of megabytes. No valid HELO,
host name or address is longer than ``MAX_MEMO_CHARS``, so longer text is worked
out every time and never remembered: only odd or hostile requests pay for that.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from typing import ParamSpec, Protocol, TypeVar, cast

MAX_MEMO_CHARS = 256

T = TypeVar("T")
P = ParamSpec("P")
R_co = TypeVar("R_co", covariant=True)


class Memoised(Protocol[P, R_co]):
    """A memoised function, typed as the function it wraps."""

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R_co: ...

    def cache_clear(self) -> None: ...


def memoise(maxsize: int) -> Callable[[Callable[P, T]], Memoised[P, T]]:
    """``functools.lru_cache(maxsize)`` that keeps the function's signature for mypy:
    typeshed types lru_cache's wrapper as taking any hashable arguments, so no call of
    a function decorated with it was checked."""
    return cast(Callable[[Callable[P, T]], Memoised[P, T]], functools.lru_cache(maxsize=maxsize))


def memo_sized(texts: Iterable[str | bytes | None]) -> bool:
    """Whether every one of ``texts`` is short enough to be part of a memo's key."""
    # A loop, not all() over a generator (ruff's SIM110): asked twice a check, of three
    # or four fields, each a resumption of the generator's frame (~4.4k instructions a
    # cold check, bench/instructions.py).
    for text in texts:  # noqa: SIM110
        if text is not None and len(text) > MAX_MEMO_CHARS:
            return False
    return True


def memoise_short_arg(maxsize: int, index: int) -> Callable[[Callable[P, T]], Memoised[P, T]]:
    """``memoise(maxsize)`` for a pure function whose positional argument ``index`` is
    text, from a request field (cut at 1,024 characters) or from DNS (a PTR name in
    ``\\DDD`` escapes is up to ~1,000 characters): a call with that text longer than
    ``MAX_MEMO_CHARS`` is worked out afresh, never remembered. A closure, not a class:
    an instance's ``__call__`` cost ~200 ns more a call than lru_cache alone, this ~75."""

    def decorate(function: Callable[P, T]) -> Memoised[P, T]:
        cached = functools.lru_cache(maxsize=maxsize)(function)

        @functools.wraps(function)
        def memoised(*args: P.args, **kwargs: P.kwargs) -> T:
            text = args[index]
            if type(text) is str and len(text) > MAX_MEMO_CHARS:
                return function(*args, **kwargs)
            return cached(*args, **kwargs)  # type: ignore[arg-type]

        memoised.cache_clear = cached.cache_clear  # type: ignore[attr-defined]
        return cast(Memoised[P, T], memoised)

    return decorate
