"""The one error base of coplay: every error the project raises on purpose derives from `CoplayError`."""
from __future__ import annotations


class CoplayError(Exception):
    """Something coplay cannot do as asked; the message says what went wrong and how to fix it.

    `code` is a short stable id callers (the CLI, clients, tests) can switch on: each subclass sets a
    default, and a raise may name a more precise one (`CoplayError("...", code="no_such_file")`).
    `exit_code` is the status `coplay` exits with when the error ends a command: 2 for bad input or
    usage, 1 for a check that ran and failed.
    """

    code = "coplay_error"
    exit_code = 2

    def __init__(self, message: str = "", *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
