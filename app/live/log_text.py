"""Text from clients, made safe for a log line.

A browser can send anything as an error message, a user agent or a platform id. Before
such text reaches a log line, `log_text` escapes control characters (newlines included,
so a client cannot forge log lines) and caps its length.
"""
from __future__ import annotations

from typing import Any

MAX_LOG_CHARS = 500


def log_text(value: Any, limit: int = MAX_LOG_CHARS) -> str:
    """`value` (text, or the repr of anything else) on one line: its first `limit` characters with
    control characters escaped (`\\n`, `\\x1b`, ...), then how many more were cut."""
    text = value if isinstance(value, str) else repr(value)
    safe = "".join(_escape(char) for char in text[:limit])
    return safe if len(text) <= limit else f"{safe}... ({len(text) - limit} more characters)"


def _escape(char: str) -> str:
    if char.isprintable() or char == " ":
        return char
    return char.encode("unicode_escape").decode("ascii")
