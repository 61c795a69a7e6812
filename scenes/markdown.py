"""Scene texts from Markdown to HTML: CommonMark (markdown-it-py), raw HTML off.

Any HTML in the input is escaped, and links and images only keep http(s), mailto and
relative URLs (markdown-it's own check refuses only a few schemes such as javascript:).
A refused link stays as its literal text.
"""
from __future__ import annotations

import re

from markdown_it import MarkdownIt

_SAFE_URL = re.compile(r"^(https?://|mailto:|/|#|\.{0,2}/)|^[^:]*$", re.IGNORECASE)

_MARKDOWN = MarkdownIt("commonmark", {"html": False})
_MARKDOWN.validateLink = lambda url: _SAFE_URL.match(url) is not None  # type: ignore[method-assign]


def markdown_to_html(text: str) -> str:
    """Convert CommonMark `text` to HTML (without the trailing newline)."""
    return _MARKDOWN.render(text).rstrip("\n")
