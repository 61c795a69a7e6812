"""Surveys: Likert, multiple-choice and free-text questions, and answer validation.

Answers come from the network, so `Survey.validate` trusts nothing about their
types and refuses anything odd with an `AnswerError` naming each bad question.
Question texts are plain text (the client shows them as text, not HTML).
"""
from __future__ import annotations

from typing import Any, Sequence

from scenes.base import Resolver, Scene, check_text, why_not_slug
from scenes.errors import AnswerError, ExperimentError

MAX_TEXT_LIMIT = 20_000


def _kind_of(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates, which JSON can carry
        return False
    return True


class Question:
    """Base class of the question types; `kind` is the descriptor's "kind"."""

    kind = "question"

    def __init__(self, id: str, text: str, required: bool) -> None:
        self.id = id
        self.text = text
        self.required = required

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.id!r})"

    def check(self) -> None:
        reason = why_not_slug(self.id)
        if reason:
            raise ExperimentError(f"question id {reason}")
        check_text(self.text, f"question {self.id!r}: text", max_length=5000, empty=False)
        if not isinstance(self.required, bool):
            raise ExperimentError(f"question {self.id!r}: required must be True or False, got {self.required!r}")

    def clean(self, value: Any) -> Any:
        """The cleaned answer (None = unanswered). Raises ValueError saying what is wrong."""
        raise NotImplementedError

    def to_client(self) -> dict[str, Any]:
        return {"id": self.id, "kind": self.kind, "text": self.text, "required": self.required}


class Likert(Question):
    """A rating from 1 to `scale`; `labels` name the low and high ends."""

    kind = "likert"

    def __init__(self, id: str, text: str, *, scale: int = 7, labels: Sequence[str] = ("", ""),
                 required: bool = True) -> None:
        super().__init__(id, text, required)
        self.scale = scale
        self.labels = labels

    def check(self) -> None:
        super().check()
        if type(self.scale) is not int or not 2 <= self.scale <= 11:
            raise ExperimentError(f"question {self.id!r} has scale {self.scale!r}; a Likert scale needs 2 to 11 points")
        labels = self.labels
        if not isinstance(labels, (list, tuple)) or len(labels) != 2 or not all(isinstance(x, str) for x in labels):
            raise ExperimentError(
                f"question {self.id!r}: labels must be two strings (low end, high end), got {labels!r:.80}")

    def clean(self, value: Any) -> Any:
        if type(value) is not int or not 1 <= value <= self.scale:
            got = value if type(value) is int else _kind_of(value)
            raise ValueError(f"expected a whole number from 1 to {self.scale}, got {got}")
        return value

    def to_client(self) -> dict[str, Any]:
        return {**super().to_client(), "scale": self.scale, "labels": list(self.labels)}


class Choice(Question):
    """One option out of `options` (a string), or with `multiple=True` a list of distinct options."""

    kind = "choice"

    def __init__(self, id: str, text: str, *, options: Sequence[str], multiple: bool = False,
                 required: bool = True) -> None:
        super().__init__(id, text, required)
        self.options = options
        self.multiple = multiple

    def check(self) -> None:
        super().check()
        if not isinstance(self.multiple, bool):
            raise ExperimentError(f"question {self.id!r}: multiple must be True or False, got {self.multiple!r}")
        least = 1 if self.multiple else 2
        options = self.options
        if (not isinstance(options, (list, tuple)) or len(options) < least
                or not all(isinstance(o, str) and o.strip() for o in options)):
            raise ExperimentError(
                f"question {self.id!r}: options must be a list of at least {least} non-empty strings, "
                f"got {options!r:.80}")
        for index, option in enumerate(options):
            check_text(option, f"question {self.id!r}: option {index + 1}", max_length=500)
            if option in options[:index]:
                raise ExperimentError(f"question {self.id!r} lists option {option!r} twice")

    def clean(self, value: Any) -> Any:
        if not self.multiple:
            if not isinstance(value, str) or value not in self.options:
                raise ValueError(f"expected one of the options, got {value!r:.40}")
            return value
        if not isinstance(value, list) or not all(isinstance(v, str) and v in self.options for v in value):
            raise ValueError(f"expected a list of options, got {value!r:.40}")
        if len(set(value)) != len(value):
            raise ValueError("lists an option twice")
        if not value:
            return None  # nothing ticked: unanswered
        return [o for o in self.options if o in value]  # in the options' order

    def to_client(self) -> dict[str, Any]:
        return {**super().to_client(), "options": list(self.options), "multiple": self.multiple}


class FreeText(Question):
    """A text answer of at most `max_length` characters (surrounding whitespace is trimmed)."""

    kind = "text"

    def __init__(self, id: str, text: str, *, max_length: int = 1000, required: bool = False) -> None:
        super().__init__(id, text, required)
        self.max_length = max_length

    def check(self) -> None:
        super().check()
        if type(self.max_length) is not int or not 1 <= self.max_length <= MAX_TEXT_LIMIT:
            raise ExperimentError(
                f"question {self.id!r} has max_length {self.max_length!r}; use 1 to {MAX_TEXT_LIMIT} characters")

    def clean(self, value: Any) -> Any:
        if not isinstance(value, str):
            raise ValueError(f"expected text, got {_kind_of(value)}")
        if not _utf8(value):
            raise ValueError("the text contains invalid characters")
        value = value.strip()
        if len(value) > self.max_length:
            raise ValueError(f"is {len(value)} characters long; the limit is {self.max_length}")
        return value or None

    def to_client(self) -> dict[str, Any]:
        return {**super().to_client(), "max_length": self.max_length}


class Survey(Scene):
    """A page of questions. `validate(answers)` checks a participant's answers."""

    kind = "survey"

    def __init__(self, id: str, title: str = "", *, questions: Sequence[Question]) -> None:
        super().__init__(id, title)
        self.questions = questions

    def check(self, resolve: Resolver | None = None) -> None:
        super().check(resolve)
        if not isinstance(self.questions, (list, tuple)) or not self.questions:
            raise ExperimentError("questions must be a non-empty list of Likert, Choice or FreeText")
        seen: set[str] = set()
        for index, question in enumerate(self.questions):
            if not isinstance(question, Question):
                raise ExperimentError(
                    f"question {index + 1} is a {type(question).__name__}; expected Likert, Choice or FreeText")
            question.check()
            if question.id in seen:
                raise ExperimentError(f"two questions have the id {question.id!r}")
            seen.add(question.id)

    def validate(self, answers: Any) -> dict[str, Any]:
        """Cleaned answers, one per question (None when unanswered), or AnswerError."""
        if not isinstance(answers, dict):
            raise AnswerError({"*": f"answers must be an object of {{question id: answer}}, got {_kind_of(answers)}"})
        known = {q.id: q for q in self.questions}
        errors: dict[str, str] = {}
        unknown = [key for key in answers if key not in known]
        for key in unknown[:5]:
            errors[f"{key!s:.40}"] = "is not a question of this survey"
        cleaned: dict[str, Any] = {}
        for qid, question in known.items():
            value = answers.get(qid)
            try:
                cleaned[qid] = None if value is None else question.clean(value)
            except ValueError as exc:
                errors[qid] = str(exc)
                continue
            if cleaned[qid] is None and question.required:
                errors[qid] = "an answer is required"
        if errors:
            raise AnswerError(errors)
        return cleaned

    def parse_advance(self, data: Any) -> dict[str, Any]:
        """`{"answers": {...}}` -> `{"answers": cleaned}`."""
        super().parse_advance(data)
        return {"answers": self.validate(data.get("answers", {}))}

    def to_client(self, context: Any = None) -> dict[str, Any]:
        return {**super().to_client(context), "questions": [q.to_client() for q in self.questions]}
