"""A tiny Markdown-to-HTML converter for scene texts (no third-party packages).

Supported: `#` to `######` headings, paragraphs (blank-line separated), `*em*` /
`_em_`, `**strong**` / `__strong__`, `` `code` ``, `[text](url)` links, `-`/`*`/`+`
bullet lists and `1.` numbered lists (one level; indented lines continue an item),
and `---` rules. Everything else is text: any HTML in the input is escaped, and
links only keep http(s), mailto and relative URLs.
"""
from __future__ import annotations

import html
import re

_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_BULLET = re.compile(r"^\s{0,3}[-*+]\s+(.*)$")
_NUMBERED = re.compile(r"^\s{0,3}\d{1,9}[.)]\s+(.*)$")
_RULE = re.compile(r"^\s{0,3}([-*_])(\s*\1){2,}\s*$")
_CODE = re.compile(r"`([^`]+)`")
_LINK = re.compile(r"\[([^\]]+)\]\(([^)\s]+)\)")
_STRONG = re.compile(r"\*\*(.+?)\*\*|(?<![\w])__(.+?)__(?![\w])")
_EM = re.compile(r"\*(.+?)\*|(?<![\w])_(.+?)_(?![\w])")
_TOKEN = re.compile("\x00(\\d+)\x00")
_SAFE_URL = re.compile(r"^(https?://|mailto:|/|#|\.{0,2}/)|^[^:]*$", re.IGNORECASE)


def _inline(text: str) -> str:
    """Escape `text` and apply code spans, links and emphasis."""
    kept: list[str] = []

    def keep(fragment: str) -> str:
        kept.append(fragment)
        return f"\x00{len(kept) - 1}\x00"

    def link(match: re.Match[str]) -> str:
        label, url = match.group(1), html.unescape(match.group(2))
        if "\x00" in url or not _SAFE_URL.match(url):
            return label
        return keep(f'<a href="{html.escape(url)}">') + label + keep("</a>")

    out = html.escape(text)
    out = _CODE.sub(lambda m: keep(f"<code>{m.group(1)}</code>"), out)
    out = _LINK.sub(link, out)
    out = _STRONG.sub(lambda m: f"<strong>{m.group(1) or m.group(2)}</strong>", out)
    out = _EM.sub(lambda m: f"<em>{m.group(1) or m.group(2)}</em>", out)
    return _TOKEN.sub(lambda m: kept[int(m.group(1))], out)


def markdown_to_html(text: str) -> str:
    """Convert the Markdown subset described above to HTML."""
    blocks: list[str] = []
    paragraph: list[str] = []
    items: list[str] = []
    list_tag = ""

    def flush() -> None:
        nonlocal list_tag
        if paragraph:
            blocks.append(f"<p>{_inline(' '.join(paragraph))}</p>")
            paragraph.clear()
        if items:
            body = "".join(f"<li>{_inline(item)}</li>" for item in items)
            blocks.append(f"<{list_tag}>{body}</{list_tag}>")
            items.clear()
            list_tag = ""

    for raw in text.replace("\x00", "").replace("\r\n", "\n").split("\n"):
        line = raw.rstrip()
        heading = _HEADING.match(line)
        bullet, numbered = _BULLET.match(line), _NUMBERED.match(line)
        if not line.strip():
            flush()
        elif _RULE.match(line):
            flush()
            blocks.append("<hr>")
        elif heading:
            flush()
            level = len(heading.group(1))
            blocks.append(f"<h{level}>{_inline(heading.group(2))}</h{level}>")
        elif bullet or numbered:
            tag = "ul" if bullet else "ol"
            if paragraph or (items and tag != list_tag):
                flush()
            list_tag = tag
            items.append((bullet or numbered).group(1))  # type: ignore[union-attr]
        elif items and raw[:1] in (" ", "\t"):
            items[-1] += " " + line.strip()
        else:
            if items:
                flush()
            paragraph.append(line.strip())
    flush()
    return "\n".join(blocks)
