"""The scene types: Consent, Page, End (here), Survey (scenes.survey), Match (scenes.match).

Also `Outcome`: how the experiment ends for a participant who does not complete it
(the End page, completion code and redirect for "waiting_timeout", "excluded", ...).
"""
from __future__ import annotations

import re
from typing import Any, Mapping
from urllib.parse import quote

from scenes.base import ClientContext, Resolver, Scene, body_html, check_body, check_text
from scenes.errors import AnswerError, ExperimentError
from scenes.match import Match, WaitingRoom
from scenes.survey import Choice, FreeText, Likert, Question, Survey

__all__ = [
    "OUTCOMES", "Choice", "Consent", "End", "FreeText", "Likert", "Match", "Outcome", "Page",
    "Question", "Scene", "Survey", "WaitingRoom", "fill_placeholders",
]

_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")

# outcome name -> (title, default html)
OUTCOMES: dict[str, tuple[str, str]] = {
    "completed": ("Thank you", "<p>Thank you for taking part.</p>"),
    "declined": ("Thank you", "<p>You chose not to take part, so the study ends here. Thank you for your time.</p>"),
    "waiting_timeout": ("No partner found", (
        "<p>We could not find a partner for you in time, so the study ends here. "
        "Thank you for your patience.</p>")),
    "partner_dropped": ("Your partner left", (
        "<p>Your partner left the study, so it ends here. Thank you for taking part.</p>")),
    "excluded": ("Thank you", "<p>You cannot continue with this study. Thank you for your interest.</p>"),
    "timed_out": ("Session timed out", (
        "<p>You were away from the study for too long, so your session has ended. Thank you for your time.</p>")),
    "error": ("Something went wrong", (
        "<p>Something went wrong on our side and the study cannot continue. "
        "We are sorry; please contact the researchers.</p>")),
}


def fill_placeholders(template: str, values: Mapping[str, str]) -> str:
    """Replace each `{name}` by `values[name]`, URL-encoded (missing names become "")."""
    return _PLACEHOLDER.sub(lambda m: quote(str(values.get(m.group(1), "")), safe=""), template)


def _check_ending(completion_code: Any, redirect: Any) -> None:
    """Shared by End and Outcome."""
    if completion_code is not None:
        check_text(completion_code, "completion_code", max_length=64, empty=False)
        if any(ch.isspace() or not ch.isprintable() for ch in completion_code):
            raise ExperimentError(
                f"completion_code {completion_code!r} must not contain spaces or control characters")
    if redirect is not None:
        check_text(redirect, "redirect", max_length=2000, empty=False)
        if not redirect.startswith(("https://", "http://")):
            raise ExperimentError(f"redirect {redirect!r:.80} must start with https:// or http://")
        rest = _PLACEHOLDER.sub("", redirect)
        if "{" in rest or "}" in rest:
            raise ExperimentError(f"redirect {redirect!r:.80} has a stray brace; "
                                  "placeholders look like {participant} or {PROLIFIC_PID}")


class Page(Scene):
    """A static page (instructions, debriefing...). Advanced with `{}`."""

    kind = "page"

    def __init__(self, id: str, title: str, html: str | None = None, markdown: str | None = None) -> None:
        super().__init__(id, title)
        self.html = html
        self.markdown = markdown

    def check(self, resolve: Resolver | None = None) -> None:
        super().check(resolve)
        check_body(self.html, self.markdown, required=True)

    def to_client(self, context: ClientContext | None = None) -> dict[str, Any]:
        return {**super().to_client(context), "html": body_html(self.html, self.markdown)}


class Consent(Page):
    """The consent form. The participant goes on with `{"accept": true}`; `{"accept": false}` declines."""

    kind = "consent"

    def __init__(self, id: str, title: str = "Consent", *, html: str | None = None,
                 markdown: str | None = None) -> None:
        super().__init__(id, title, html, markdown)

    def parse_advance(self, data: Any) -> dict[str, Any]:
        """`{"accept": true}` -> `{"accept": True}`; `{"accept": false}` -> `{"accept": False}` (declined)."""
        super().parse_advance(data)
        if type(data.get("accept")) is not bool:
            raise AnswerError({"*": 'consent needs {"accept": true} or {"accept": false}'})
        return {"accept": data["accept"]}


class End(Scene):
    """The last page. `redirect` may hold placeholders: `{participant}` (the participant's id),
    `{completion_code}`, or any URL parameter such as `{PROLIFIC_PID}`; values are URL-encoded.
    `outcome` is "completed" for the experiment's last scene, else the outcome it is the page of."""

    kind = "end"
    outcome = "completed"

    def __init__(self, id: str, title: str = "Thank you", *, html: str | None = None,
                 markdown: str | None = None, completion_code: str | None = None,
                 redirect: str | None = None) -> None:
        super().__init__(id, title)
        self.html = html
        self.markdown = markdown
        self.completion_code = completion_code
        self.redirect = redirect

    def check(self, resolve: Resolver | None = None) -> None:
        super().check(resolve)
        check_body(self.html, self.markdown, required=False)
        _check_ending(self.completion_code, self.redirect)

    def redirect_for(self, context: ClientContext) -> str | None:
        """The redirect URL with its placeholders filled for this participant."""
        if self.redirect is None:
            return None
        values = {**context.params, "completion_code": self.completion_code or "", "participant": context.participant}
        return fill_placeholders(self.redirect, values)

    def parse_advance(self, data: Any) -> dict[str, Any]:
        raise AnswerError({"*": "this is the last scene; there is nothing to advance to"})

    def to_client(self, context: ClientContext | None = None) -> dict[str, Any]:
        context = context or ClientContext()
        return {
            **super().to_client(context),
            "html": body_html(self.html, self.markdown, OUTCOMES["completed"][1]),
            "outcome": self.outcome,
            "completion_code": self.completion_code,
            "redirect": self.redirect_for(context),
        }


class Outcome:
    """How the study ends for one outcome: page text, completion code, redirect (see End)."""

    def __init__(self, *, completion_code: str | None = None, redirect: str | None = None,
                 title: str | None = None, html: str | None = None, markdown: str | None = None) -> None:
        self.completion_code = completion_code
        self.redirect = redirect
        self.title = title
        self.html = html
        self.markdown = markdown

    def check(self) -> None:
        if self.title is not None:
            check_text(self.title, "title")
        check_body(self.html, self.markdown, required=False)
        _check_ending(self.completion_code, self.redirect)

    def end_scene(self, name: str) -> End:
        """The End page shown for outcome `name`; its id is "end:<name>" (never a user scene id)."""
        title, default_html = OUTCOMES[name]
        html = self.html if self.html is not None or self.markdown is not None else default_html
        end = End("end", self.title if self.title is not None else title, html=html, markdown=self.markdown,
                  completion_code=self.completion_code, redirect=self.redirect)
        end.id = end.base_id = f"end:{name}"
        end.outcome = name
        return end
