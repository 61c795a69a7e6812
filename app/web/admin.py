"""The admin token that guards researcher-only pages (the replay viewer).

The token comes from the environment variable `COPLAY_ADMIN_TOKEN` when it is set (at
least 16 characters), otherwise it is generated on first use and kept, readable by its
owner only, in `DATA/<experiment>/admin_token`. It is never printed or hard-coded.
"""
from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from typing import Callable

from app.data.modes import SECRET_MODE, open_file
from game.errors import CoplayError

ENV_VAR = "COPLAY_ADMIN_TOKEN"
TOKEN_FILE = "admin_token"
MIN_LENGTH = 16


class AdminTokenError(CoplayError, ValueError):
    """A secret cannot be used (COPLAY_ADMIN_TOKEN too short, an empty secret file); the message says why."""

    code = "unusable_admin_token"


def generated_secret(path: str, make: Callable[[], str] = lambda: secrets.token_urlsafe(32)) -> str:
    """The secret kept in the file at `path`, created (mode 0600 whatever the umask, never overwritten) with
    `make()` on first use."""
    if not os.path.exists(path):
        try:
            fd = open_file(path, os.O_WRONLY | os.O_EXCL, SECRET_MODE)
        except FileExistsError:
            pass   # another process created it first: use theirs
        else:
            with os.fdopen(fd, "w") as handle:
                handle.write(make())
    with open(path) as handle:
        secret = handle.read().strip()
    if not secret:
        raise AdminTokenError(f"{path} is empty (a process died while creating it?); delete it to generate a new one")
    return secret


def token_path(experiment_dir: str) -> str:
    """Where the generated admin token is kept."""
    return os.path.join(experiment_dir, TOKEN_FILE)


def admin_token(experiment_dir: str) -> str:
    """`COPLAY_ADMIN_TOKEN` if set, else the token generated into `experiment_dir/admin_token`."""
    token = os.environ.get(ENV_VAR, "").strip()   # set but empty counts as unset
    if token:
        if len(token) < MIN_LENGTH:
            raise AdminTokenError(f"{ENV_VAR} must be at least {MIN_LENGTH} characters long (it has {len(token)}); "
                                  f"unset it to use a generated token kept in {token_path(experiment_dir)}")
        return token
    return generated_secret(token_path(experiment_dir))


def token_location(experiment_dir: str) -> str:
    """Where an admin finds the token, for messages (never the token itself)."""
    if os.environ.get(ENV_VAR, "").strip():
        return f"the {ENV_VAR} environment variable"
    return f"{token_path(experiment_dir)} (or set {ENV_VAR})"


def is_admin(request_token: str | None, expected: str) -> bool:
    """True when `request_token` is the admin token (compared in constant time)."""
    if not request_token or not expected:
        return False
    return hmac.compare_digest(request_token.encode(), expected.encode())


def fingerprint(token: str) -> str:
    """A short digest of the token kept in the signed session, so a changed token ends old admin sessions."""
    return hashlib.sha256(b"coplay-admin:" + token.encode()).hexdigest()[:32]
