"""The three outcomes every lookup ends in. Checks only ever see these, never exceptions."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")
# Covariant: an Answer of addresses is an Answer of objects, as its records are read only.
T_co = TypeVar("T_co", covariant=True)


class NotFoundKind(enum.StrEnum):
    NXDOMAIN = "nxdomain"  # the name does not exist (RFC 8020: nor anything below it)
    NODATA = "nodata"  # the name exists but has no record of this type


class FailureKind(enum.StrEnum):
    TIMEOUT = "timeout"
    SERVFAIL = "servfail"
    REFUSED = "refused"
    NETWORK = "network"
    MALFORMED = "malformed"  # an answer we could not parse
    DEADLINE = "deadline"  # the request's deadline passed first
    # A "no" from a resolver that says the root does not exist (it serves only its own
    # data, or rewrites answers): every name would look missing (DnsLayer.check_root).
    UNTRUSTED = "untrusted"


@dataclass(frozen=True, slots=True)
class MxRecord:
    preference: int
    exchange: str  # lower case, no final dot; "" for the root (RFC 7505 null MX)

    @property
    def is_null(self) -> bool:
        return self.exchange == ""


@dataclass(frozen=True, slots=True)
class Answer(Generic[T_co]):
    """The name has records of the asked type."""

    records: tuple[T_co, ...]
    ttl: int


@dataclass(frozen=True, slots=True)
class NotFound:
    """NXDOMAIN or NODATA: a definite, authoritative "no"."""

    kind: NotFoundKind
    ttl: int
    # The name the "no" is about when a CNAME chain led there (RFC 2308 section 2.1:
    # the last name of the chain), e.g. the target of an RFC 2317 reverse CNAME; None
    # for the asked name itself.
    alias_target: str | None = None


@dataclass(frozen=True, slots=True)
class TempFail:
    """We could not learn the answer; never evidence against the sender."""

    kind: FailureKind
    detail: str = ""


def network_failure(error: BaseException, context: str = "") -> TempFail:
    """A NETWORK TempFail naming ``error`` (an OS error, or a bug that must not become a
    5xx), its text capped so a long message never bloats evidence or logs."""
    return TempFail(FailureKind.NETWORK, f"{context}{type(error).__name__}: {error}"[:200])


Lookup = Answer[T] | NotFound | TempFail
# A lookup's outcome whatever was asked, as the transport, the cache and metrics hold it.
# The record type follows the type asked (wire decodes each its own way): DnsLayer's ptr,
# addresses and mx give it back.
Outcome = Lookup[object]


def describe(outcome: Outcome) -> str:
    """A short evidence string for an outcome, e.g. ``nxdomain``, ``timeout: no answer
    within 0.5s`` or ``malformed: CNAME loop`` (a failure's detail says why)."""
    if isinstance(outcome, Answer):
        return ", ".join(str(r) for r in outcome.records)
    if isinstance(outcome, NotFound):
        if outcome.alias_target is not None:
            # The root is written "" (as an MX's exchange is): named "." here, as dig
            # and zone files name it, not "nodata at  (CNAME target)".
            return f"{outcome.kind} at {outcome.alias_target or '.'} (CNAME target)"
        return str(outcome.kind)
    if outcome.detail and outcome.detail.lower() != outcome.kind:
        return f"{outcome.kind}: {outcome.detail}"
    return str(outcome.kind)
