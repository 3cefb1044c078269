"""Server-sent events as OpenAI streams them: one ``data: <json>`` event per chunk, then ``data: [DONE]``."""

from __future__ import annotations

import json
from typing import Any

DONE = b"data: [DONE]\n\n"


def sse_event(payload: Any) -> bytes:
    """One event. Compact JSON never contains a raw newline (JSON escapes them), so one ``data:``
    line always carries the whole chunk."""
    return b"data: " + json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8") + b"\n\n"
