"""File modes of everything coplay writes: the database, recordings, secrets, exports.

Data is private to the account running coplay: folders 0700, files 0600. With
`COPLAY_DATA_GROUP_ACCESS=1` (or `--data-group-access`) the owner's group may read it too:
folders 0750, files 0640. Secrets (the session key, the admin token) stay 0600 either way.
Modes are set explicitly after creation (`fchmod`/`chmod`), so the umask changes nothing.
"""
from __future__ import annotations

import os
import stat
from dataclasses import dataclass

GROUP_ACCESS_ENV = "COPLAY_DATA_GROUP_ACCESS"
SECRET_MODE = 0o600
SECRET_FILES = ("secret_key", "admin_token")


@dataclass(frozen=True)
class Modes:
    """The modes for new data folders and files."""

    folder: int
    file: int


PRIVATE = Modes(folder=0o700, file=0o600)
GROUP = Modes(folder=0o750, file=0o640)


def env_flag(name: str) -> bool:
    """True when the environment variable `name` says yes (1, true, yes, on)."""
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def group_access() -> bool:
    """True when COPLAY_DATA_GROUP_ACCESS asks for group-readable data."""
    return env_flag(GROUP_ACCESS_ENV)


def data_modes() -> Modes:
    """The modes in force: PRIVATE, or GROUP when group access is on."""
    return GROUP if group_access() else PRIVATE


def make_folder(path: str) -> None:
    """Create `path` and any missing parents with the data folder mode (existing folders are left alone)."""
    path = os.path.abspath(path)
    if os.path.isdir(path):
        return
    make_folder(os.path.dirname(path))
    try:
        os.mkdir(path, data_modes().folder)
    except FileExistsError:
        return   # created meanwhile by another process or thread
    os.chmod(path, data_modes().folder)


def open_file(path: str, flags: int, mode: int | None = None) -> int:
    """`os.open(path, flags | O_CREAT)` with the file's mode set exactly (data mode unless `mode` given)."""
    mode = data_modes().file if mode is None else mode
    fd = os.open(path, flags | os.O_CREAT, mode)
    try:
        os.fchmod(fd, mode)
    except BaseException:
        os.close(fd)
        raise
    return fd


def create_file(path: str) -> None:
    """Create `path` empty (truncating it if it exists) with the data file mode, for a writer that opens it by name."""
    os.close(open_file(path, os.O_WRONLY | os.O_TRUNC))


def opener(path: str, flags: int) -> int:
    """An `opener=` for `open()` that creates files with the data file mode."""
    return open_file(path, flags)


def tighten(folder: str) -> list[str]:
    """Remove permission bits beyond the data modes from `folder` and everything in it; returns what changed.

    Only ever removes bits (a folder made private by hand stays private); symlinks are not followed.
    """
    modes = data_modes()
    changed: list[str] = []

    def fix(path: str, allowed: int) -> None:
        current = stat.S_IMODE(os.lstat(path).st_mode)
        if current & ~allowed:
            os.chmod(path, current & allowed)
            changed.append(f"{path} {current:04o} -> {current & allowed:04o}")

    if not os.path.isdir(folder):
        return changed
    for root, folders, files in os.walk(folder):
        fix(root, modes.folder)
        for name in files:
            path = os.path.join(root, name)
            if not os.path.islink(path):
                fix(path, SECRET_MODE if name in SECRET_FILES and root == folder else modes.file)
        folders[:] = [name for name in folders if not os.path.islink(os.path.join(root, name))]
    return changed
