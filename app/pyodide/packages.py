"""Extra Python packages for the browser (`Match(packages=[...])`), served by the coplay server itself.

Each name is resolved once, at server start, in this order:

1. a wheel in the server's package folder (`packages/` beside the experiment file, or
   `--packages-dir`): a pure-Python wheel (`py3-none-any`, e.g. from `coplay packages fetch`)
   or a Pyodide build (`..._pyodide_2024_0_wasm32.whl`, from the Pyodide distribution). The
   server serves it at `/static/packages/<sha256 prefix>/<file>` (immutable) and the worker
   installs it at LOAD, before any match (`pyodide.unpackArchive(..., "wheel")`);
2. a package of Pyodide's own index (pyodide-lock.json) that the index the page loads Pyodide
   from really has (another `--pyodide-url`, or its file placed in the local distribution):
   the worker loads it with `pyodide.loadPackage`.

Anything else raises `PackageError` naming the package and the fix, so the server does not
start. Dependencies are not resolved: list every package a game imports (see README).
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scenes.errors import ExperimentError

URL_PREFIX = "/static/packages/"
# The platform tags a browser's Pyodide 0.27.7 can install besides pure-Python wheels.
PYODIDE_PLATFORMS = ("pyodide_2024_0_wasm32", "emscripten_3_1_58_wasm32")
PYODIDE_RELEASE = "the Pyodide 0.27.7 distribution (pyodide-0.27.7.tar.bz2 of Pyodide's GitHub release)"


class PackageError(ExperimentError):
    """A package a Match lists cannot be served to browsers; the message says what to do."""

    code = "package_not_servable"


def normalize(name: str) -> str:
    """A distribution name as PEP 503 compares them: lower case, runs of -_. as one '-'."""
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass(frozen=True)
class Wheel:
    """A wheel file of the package folder, as the bundle names it."""

    name: str
    path: Path
    sha256: str

    @property
    def url(self) -> str:
        return f"{URL_PREFIX}{self.sha256[:16]}/{self.path.name}"

    def entry(self) -> dict[str, Any]:
        return {"name": self.name, "url": self.url, "sha256": self.sha256}


@dataclass(frozen=True)
class PackageSource:
    """Where packages come from: the package folder (or None), the local Pyodide distribution (or
    None), and whether the page loads Pyodide from another index URL (which has Pyodide's packages)."""

    folder: Path | None = None
    pyodide_folder: Path | None = None
    remote_index: bool = False

    def fix(self) -> str:
        return str(self.folder) if self.folder else "a package folder (`packages/` beside the experiment file)"


def wheel_tags(file: str) -> tuple[str, str] | None:
    """(normalized distribution name, platform tag) of a wheel file name, or None if it is not one."""
    parts = file.removesuffix(".whl").split("-")
    if not file.endswith(".whl") or len(parts) not in (5, 6):
        return None
    return normalize(parts[0]), parts[-1]


def folder_wheels(folder: Path | None) -> dict[str, list[Path]]:
    """The wheels in `folder` by normalized distribution name."""
    found: dict[str, list[Path]] = {}
    if folder is None or not folder.is_dir():
        return found
    for path in sorted(folder.glob("*.whl")):
        tags = wheel_tags(path.name)
        if tags is not None:
            found.setdefault(tags[0], []).append(path)
    return found


def pyodide_index(pyodide_folder: Path | None) -> dict[str, dict[str, Any]]:
    """The packages of Pyodide's own index (pyodide-lock.json), by normalized name; {} without one."""
    if pyodide_folder is None:
        return {}
    try:
        packages = json.loads((pyodide_folder / "pyodide-lock.json").read_text())["packages"]
    except (OSError, ValueError, KeyError):
        return {}
    return {normalize(name): info for name, info in packages.items()}


def resolve_packages(names: list[str], source: PackageSource) -> tuple[list[str], list[Wheel]]:
    """(names for `pyodide.loadPackage`, wheels to serve) for `names`; PackageError for one that cannot be served."""
    if not names:
        return [], []
    wheels_here = folder_wheels(source.folder)
    index = pyodide_index(source.pyodide_folder)
    from_index: list[str] = []
    wheels: list[Wheel] = []
    for name in names:
        key = normalize(name)
        if key in wheels_here:
            wheels.append(_wheel(name, wheels_here[key], source))
        elif key in index and (source.remote_index or _local(index[key], source)):
            from_index.append(index[key].get("name", name))
        elif source.remote_index and not index:   # no local index to check the name against: trust the remote one
            from_index.append(name)
        else:
            raise PackageError(_missing(name, index.get(key), source))
    return from_index, wheels


def _local(info: dict[str, Any], source: PackageSource) -> bool:
    return source.pyodide_folder is not None and (source.pyodide_folder / str(info.get("file_name"))).is_file()


def _wheel(name: str, paths: list[Path], source: PackageSource) -> Wheel:
    if len(paths) > 1:
        raise PackageError(f"package {name!r}: {source.folder} holds {len(paths)} wheels of it "
                           f"({', '.join(p.name for p in paths)}); keep the one the games should use")
    path = paths[0]
    platform = (wheel_tags(path.name) or ("", ""))[1]
    if platform != "any" and not any(platform.endswith(tag) for tag in PYODIDE_PLATFORMS):
        raise PackageError(
            f"package {name!r}: {path.name} is built for {platform}, which a browser cannot run; use a pure-Python "
            f"wheel (…-py3-none-any.whl, `coplay packages fetch`) or the Pyodide build from {PYODIDE_RELEASE}")
    return Wheel(name, path, hashlib.sha256(path.read_bytes()).hexdigest())


def _missing(name: str, info: dict[str, Any] | None, source: PackageSource) -> str:
    where = source.fix()
    if info is not None and info.get("package_type") != "cpython_module" and not str(
            info.get("file_name", "")).endswith("-none-any.whl"):
        return (f"package {name!r} cannot be served to browsers: it has compiled code, so it needs the Pyodide "
                f"build {info.get('file_name')}, which the npm package of Pyodide does not ship and PyPI does not "
                f"host. Copy that file from {PYODIDE_RELEASE} into {where}, and try again (restart the server)")
    return (f"package {name!r} cannot be served to browsers: there is no wheel of it in {where}. Run "
            f"`coplay packages fetch EXPERIMENT.py` (it downloads the pure-Python wheels the experiment lists "
            f"from PyPI into that folder), or place its …-py3-none-any.whl there, and try again (restart the server)")


def served_file(wheels: list[dict[str, Any]], folder: Path | None, digest: str, file: str) -> Path | None:
    """The wheel file behind `/static/packages/<digest>/<file>` if the bundle lists it and its
    content still has that digest, else None."""
    wanted = f"{URL_PREFIX}{digest}/{file}"
    entry = next((w for w in wheels if w.get("url") == wanted), None)
    if entry is None or folder is None:
        return None
    path = folder / file
    if not path.is_file() or hashlib.sha256(path.read_bytes()).hexdigest() != entry["sha256"]:
        return None
    return path
