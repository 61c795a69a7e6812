"""What every scene shares: an id, a title, a body, a client descriptor, checks.

Constructors only store their arguments; `check()` (called by
`Experiment.validate`) raises `ExperimentError` with a message relative to the
scene, which the experiment prefixes with the scene's position.
"""
from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from scenes.errors import AnswerError, ExperimentError
from scenes.markdown import markdown_to_html

# resolve(spec) -> class, for "FILE.py:Class" / "package.module:Class" specs (may do file I/O)
Resolver = Callable[[str], type]

_SLUG = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
SLUG_RULE = "use 1 to 64 letters, digits, '_', '-' or '.', starting with a letter or digit"


def why_not_slug(value: Any) -> str | None:
    """Why `value` is not a safe id (or None when it is)."""
    if not isinstance(value, str) or not _SLUG.match(value):
        return f"{value!r:.70} is not a valid id; {SLUG_RULE}"
    return None


def check_text(value: Any, what: str, *, max_length: int = 200, empty: bool = True) -> None:
    """Raise unless `value` is a str of at most `max_length` characters (non-empty unless `empty`)."""
    if not isinstance(value, str):
        raise ExperimentError(f"{what} must be a string, got {type(value).__name__}")
    if not empty and not value.strip():
        raise ExperimentError(f"{what} must not be empty")
    if len(value) > max_length:
        raise ExperimentError(f"{what} is {len(value)} characters long; the limit is {max_length}")


def check_body(html: Any, markdown: Any, *, required: bool) -> None:
    """At most one of html= / markdown= (exactly one when `required`), each a string."""
    if html is not None and markdown is not None:
        raise ExperimentError("give html= or markdown=, not both")
    if required and html is None and markdown is None:
        raise ExperimentError("give its text as html= or markdown=")
    if html is not None:
        check_text(html, "html", max_length=200_000)
    if markdown is not None:
        check_text(markdown, "markdown", max_length=200_000)


def body_html(html: str | None, markdown: str | None, default: str = "") -> str:
    """The body as HTML: `html` as written (researchers' HTML is trusted), or converted Markdown."""
    if html is not None:
        return html
    if markdown is not None:
        return markdown_to_html(markdown)
    return default


@dataclass(frozen=True)
class ClientContext:
    """What a descriptor may depend on: the participant's id and URL parameters (End's redirect)."""

    participant: str = ""
    params: Mapping[str, str] = field(default_factory=dict)


class Scene:
    """Base class of Consent, Page, Survey, Match and End.

    `id` is unique in the experiment; a visit made by `Repeat` has the id
    "base#n" (n >= 2), and `base_id` / `visit` tell them apart.
    """

    kind = "scene"

    def __init__(self, id: str, title: str = "") -> None:
        self.id = id
        self.title = title
        self.base_id = id
        self.visit = 1

    @property
    def label(self) -> str:
        """How messages name this scene, e.g. "survey 'feedback'"."""
        return f"{self.kind} {self.base_id!r}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.id!r})"

    def revisit(self, n: int) -> Scene:
        """A shallow copy for the n-th visit (n >= 2), with id "base#n"."""
        twin = copy.copy(self)
        twin.id = f"{self.base_id}#{n}" if n > 1 else self.base_id
        twin.visit = n
        return twin

    def check(self, resolve: Resolver | None = None) -> None:
        """Raise ExperimentError if the scene is misconfigured. Subclasses extend this."""
        reason = why_not_slug(self.base_id)
        if reason:
            raise ExperimentError(f"id {reason}")
        check_text(self.title, "title")

    def to_client(self, context: ClientContext | None = None) -> dict[str, Any]:
        """The JSON-able descriptor sent in the `scene` event (docs/protocol.md)."""
        return {"kind": self.kind, "id": self.id, "title": self.title}

    def parse_advance(self, data: Any) -> dict[str, Any]:
        """Validate the `data` of an `advance` event; return what to record. Raises AnswerError."""
        if not isinstance(data, dict):
            raise AnswerError({"*": f"advance data must be an object, got {type(data).__name__}"})
        return {}
