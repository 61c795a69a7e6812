"""The two error types of the scenes package."""
from __future__ import annotations

from game.errors import CoplayError


class ExperimentError(CoplayError, ValueError):
    """The experiment definition is wrong; the message says where and how to fix it."""

    code = "invalid_experiment"


class AnswerError(CoplayError, ValueError):
    """A participant's answers (or other `advance` data) were refused.

    `errors` maps each bad question id to what is wrong with its answer; the message
    joins them, e.g. "question 'q1': an answer is required; question 'q2': ...".
    General problems (data that is not an object at all) use the key "*".
    """

    code = "invalid_answer"

    def __init__(self, errors: dict[str, str]) -> None:
        self.errors = dict(errors)
        parts = [f"question {key!r}: {why}" if key != "*" else why for key, why in self.errors.items()]
        super().__init__("; ".join(parts))
