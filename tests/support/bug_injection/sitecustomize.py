"""A bug on demand, for a ``python -m scorer serve`` started with this directory on
PYTHONPATH (``ScorerProcess(with_bug=True)``): a /v1/check body holding the text of
INJECTED_BUG_MARKER raises in ``Service.answer_at_once`` (what the handler calls), as a
bug in a check would, so the service's 500, its metrics and the alert on them are seen
end to end. Nothing real gives a 500."""

from __future__ import annotations

import os
from typing import Any


def _inject(marker: bytes) -> None:
    from scorer.app import Service

    answer_at_once = Service.answer_at_once

    def answer_with_a_bug(self: Service, pipeline: Any, body: bytes, *args: Any) -> Any:
        if marker in body:
            raise RuntimeError("a bug injected by tests/support/bug_injection")
        return answer_at_once(self, pipeline, body, *args)

    Service.answer_at_once = answer_with_a_bug  # type: ignore[method-assign,assignment]


_inject(os.environ["INJECTED_BUG_MARKER"].encode())
