"""The game bundle: every piece of Python source a participant's browser worker needs.

The server builds it once at start (`build_bundle`) and serves it as `/bundle.json`;
the worker's `LOAD` (docs/worker.md) writes `files` into Pyodide's file system under
one root folder, puts each of `paths` (relative to that root) on `sys.path`, and then
imports a game by the `module:Class` that `games` maps the match's spec to:

    {"files":    {"game/__init__.py": "...", "user/0/mygame.py": "...", ...},
     "paths":    [".", "user/0"],
     "games":    {"/abs/path/mygame.py:MyGame": "mygame:MyGame",      # a FILE.py game
                  "game.games.pong:Pong": "game.games.pong:Pong"},    # a module of game/
     "packages": ["numpy"],                                           # from Pyodide's index URL
     "wheels":   [{"name": "more-itertools", "url": "/static/packages/<sha>/more_itertools-….whl",
                   "sha256": "…"}],                                   # from the server's package folder
     "unavailable": {"gymnasium:CartPole-v1": "… cannot run in browsers: …"},
     "onnx":     {"runtime": "/static/vendor/onnxruntime-web@1.31.1/",           # only with ONNX AI seats
                  "models": {"onnx:<digest>": {"base64": "…", "sha256": "…", "observation_keys": ["ball.1"]}}}}

- `game/` and `netcode/` go in whole (every .py file, recursively); `netcode/worker_glue.py`
  is the worker's Python side, which static/worker_core.js imports once the files are written.
- A `FILE.py:Class` game brings its folder, as the server loads it with that folder on
  `sys.path`: the folder's .py files and its packages (sub-folders with an
  `__init__.py`, recursively), under `user/<n>/`.
- A `module:Class` game from elsewhere (an installed module) is sent when it is one
  stand-alone .py file; a module inside a package is refused with a clear error.
- Adapter specs: `seeds:FILE.py:Class` brings the wrapped file's folder like a FILE.py game (the
  adapter itself is in game/adapters/); `gymnasium:` and `pettingzoo:` games need their library
  and numpy in the browser, so they add those to the packages (`ADAPTER_PACKAGES`). An adapter
  game that cannot reach browsers does not stop the server (headless participants and server
  bots play it): `unavailable` says why, the server warns at start, and the worker refuses to
  START it with that message.
- An AI seat with runs="browser" brings its policy class like a game; an ONNX policy brings its model
  (`onnx`, named by `game.adapters.onnx_policy.worker_model_name`), which the worker runs with
  onnxruntime-web from `runtime` (this server's copy, app/web/assets.py).
- `Match(packages=[...])` is resolved by app/pyodide/packages.py: a wheel in the server's
  package folder becomes a `wheels` entry the worker installs at LOAD; a package of Pyodide's
  own index stays in `packages` (`pyodide.loadPackage`).

`game_tree(spec)` is one game's share of the bundle (its folders, not coplay's packages):
what a recording stores so a replay needs nothing else. `game_bundle(spec)` is the bundle of
one game, which `check-env --runtime pyodide` and `replay --runtime pyodide` load in Pyodide.

Anything that cannot reach the browser raises `BundleError` (an `ExperimentError`), so
the server refuses to start rather than failing in a participant's browser.
"""
from __future__ import annotations

import base64
import gzip
import hashlib
import importlib.util
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from app.pyodide.packages import PackageError, PackageSource, resolve_packages
from game.loader import ADAPTERS, USER_MODULE_PREFIX
from scenes.ai_seat import browser_policy_spec, onnx_policy_of
from scenes.errors import ExperimentError

REPO_ROOT = Path(__file__).resolve().parents[2]
BUNDLED_PACKAGES = ("game", "netcode")
USER_DIR = "user"
MAX_BUNDLE_BYTES = 16 * 1024 * 1024   # a browser downloads this before every first match
# Modules that the experiment loader names after a file it imported (game.loader's is USER_MODULE_PREFIX).
EXPERIMENT_MODULE_PREFIX = "coplay_experiment_"
# What an adapter's library needs in the browser (pure-Python wheels from PyPI, numpy from Pyodide).
ADAPTER_PACKAGES = {
    "gymnasium": ("numpy", "gymnasium", "cloudpickle", "typing-extensions", "farama-notifications"),
    "pettingzoo": ("numpy", "gymnasium", "cloudpickle", "typing-extensions", "farama-notifications", "pettingzoo"),
}


class BundleError(ExperimentError):
    """A game's source cannot be sent to the browser; the message says how to fix it."""

    code = "game_not_bundlable"


def package_files(root: Path = REPO_ROOT, packages: tuple[str, ...] = BUNDLED_PACKAGES) -> dict[str, str]:
    """The .py sources of `packages` under `root`, keyed by path relative to `root` (posix)."""
    files: dict[str, str] = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            if "__pycache__" not in path.relative_to(root).parts:
                files[path.relative_to(root).as_posix()] = path.read_text(encoding="utf-8")
    if not files:
        raise FileNotFoundError(f"no sources of {packages} under {root}")
    return files


def folder_files(folder: Path) -> dict[str, str]:
    """What the browser needs to import from `folder` as a sys.path entry: its .py files and the
    packages in it (sub-folders with an `__init__.py`, recursively), keyed relative to `folder`.

    Hidden files and folders, `__pycache__`, and copies of the bundled `game` / `netcode`
    packages are left out (the bundle has those at its root)."""
    files: dict[str, str] = {}

    def add(path: Path) -> None:
        files[path.relative_to(folder).as_posix()] = path.read_text(encoding="utf-8")

    def add_package(directory: Path) -> None:
        for path in sorted(directory.iterdir()):
            if path.name.startswith(".") or path.name == "__pycache__":
                continue
            if path.is_dir():
                add_package(path)
            elif path.suffix == ".py" and path.is_file():
                add(path)

    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or path.name in BUNDLED_PACKAGES or path.name == "__pycache__":
            continue
        if path.is_file() and path.suffix == ".py" and path.stem not in BUNDLED_PACKAGES:
            add(path)
        elif path.is_dir() and (path / "__init__.py").is_file():
            add_package(path)
    return files


def _top_level_names(files: dict[str, str]) -> set[str]:
    """The importable top-level names of a folder's files (modules and packages)."""
    names = set()
    for name in files:
        first, sep, _ = name.partition("/")
        names.add(first if sep else first.removesuffix(".py"))
    return names


@dataclass
class _Folder:
    root: str                  # "user/<n>"
    source: Path               # where it came from
    files: dict[str, str]      # relative to `source`


class _Builder:
    def __init__(self, with_packages: bool = True) -> None:
        self.files = package_files() if with_packages else {}
        self.paths = ["."] if with_packages else []
        self.games: dict[str, str] = {}
        self.packages: list[str] = []
        self.folders: dict[Path, _Folder] = {}
        self.modules: dict[str, _Folder] = {}   # stand-alone installed modules, by module name
        self.used: dict[str, list[_Folder]] = {}   # spec -> the folders its game came from
        self._touched: list[_Folder] = []          # the folders the game being added came from
        self.needs: dict[str, list[str]] = {}      # adapter spec -> the packages its library needs
        self.unavailable: dict[str, str] = {}      # adapter spec -> why browsers cannot run it

    def add_game(self, spec: str) -> str:
        """Add the game `spec` (once) and answer the `module:Class` the worker imports for it."""
        if spec not in self.games:
            self._touched = []
            prefix = spec.partition(":")[0]
            try:
                self.games[spec] = self.game(spec)
            except BundleError as error:
                if prefix not in ADAPTERS:
                    raise
                self.games[spec] = spec
                self.unavailable[spec] = f"game {spec} cannot run in browsers: {error}"
            self.used[spec] = self._touched
            if prefix in ADAPTER_PACKAGES:
                self.needs[spec] = list(ADAPTER_PACKAGES[prefix])
        return self.games[spec]

    def add_package(self, name: str) -> None:
        if name not in self.packages:
            self.packages.append(name)

    def game(self, spec: str) -> str:
        """The `module:Class` the worker imports for the absolute spec `spec`."""
        prefix, _, rest = spec.partition(":")
        if prefix == "seeds":
            return f"seeds:{self.game(rest)}"   # game/adapters/seeds.py wraps the class the browser imports
        if prefix in ADAPTERS:
            return spec   # the library comes as packages (ADAPTER_PACKAGES)
        target, sep, name = spec.rpartition(":")
        if not sep or not target or not name:
            raise BundleError(f"game {spec!r} is not of the form FILE.py:Class or package.module:Class")
        if target.endswith(".py"):
            return self._file_game(Path(target), name, spec)
        if target.partition(".")[0] in BUNDLED_PACKAGES:
            relative = target.replace(".", "/")
            if not any((REPO_ROOT / f"{relative}{tail}").is_file() for tail in (".py", "/__init__.py")):
                raise BundleError(f"game {spec!r}: there is no module {target} in the bundled packages")
            return spec
        module = sys.modules.get(target)
        file = getattr(module, "__file__", None)
        if target.startswith(USER_MODULE_PREFIX) and file:   # a class a FILE.py spec loaded
            return self._file_game(Path(file), name, spec)
        if target.startswith(EXPERIMENT_MODULE_PREFIX):
            raise BundleError(
                f"game {name} is defined in the experiment file, which the browser cannot import (it needs "
                f"the server's packages); move the class to a file of its own and use game='FILE.py:{name}'")
        return self._module_game(target, name, spec)

    def _file_game(self, path: Path, name: str, spec: str) -> str:
        path = path.resolve()
        if not path.is_file():
            raise BundleError(f"game {spec!r}: no such file {path}")
        stem = path.stem
        if not stem.isidentifier():
            raise BundleError(f"game {spec!r}: the browser imports the file as module {stem!r}, which is not a "
                              "Python name; rename the file (letters, digits and _ only)")
        if stem in BUNDLED_PACKAGES:
            raise BundleError(f"game {spec!r}: a game file named {path.name} would hide coplay's own {stem!r} "
                              "package in the browser; rename the file")
        self._add_folder(path.parent)
        return f"{stem}:{name}"

    def _module_game(self, target: str, name: str, spec: str) -> str:
        try:
            found = importlib.util.find_spec(target)
        except (ImportError, ValueError) as error:
            raise BundleError(f"game {spec!r}: cannot find module {target!r}: {error}") from None
        if found is None:
            raise BundleError(f"game {spec!r}: cannot find module {target!r}")
        hint = f"put the class in a .py file and use game='path/to/file.py:{name}' (its folder is sent along)"
        if "." in target or found.submodule_search_locations is not None:
            raise BundleError(
                f"game {spec!r}: module {target!r} is part of a package, and the browser bundle takes only "
                f"stand-alone modules from outside coplay; {hint}")
        origin = found.origin
        if not origin or not origin.endswith(".py") or not Path(origin).is_file():
            raise BundleError(f"game {spec!r}: module {target!r} is not a pure-Python source file "
                              f"({origin}); {hint}")
        if target not in self.modules:
            root = self._next_root()
            folder = _Folder(root, Path(origin).parent, {f"{target}.py": Path(origin).read_text(encoding="utf-8")})
            self._check_clashes(folder)
            self.modules[target] = folder
            self._add(folder)
        self._touched.append(self.modules[target])
        return spec

    def _add_folder(self, directory: Path) -> _Folder:
        if directory not in self.folders:
            folder = _Folder(self._next_root(), directory, folder_files(directory))
            self._check_clashes(folder)
            self.folders[directory] = folder
            self._add(folder)
        self._touched.append(self.folders[directory])
        return self.folders[directory]

    def _next_root(self) -> str:
        return f"{USER_DIR}/{len(self.folders) + len(self.modules)}"

    def _check_clashes(self, new: _Folder) -> None:
        """Two folders on sys.path defining one module name would hide one from the other."""
        names = _top_level_names(new.files)
        for old in [*self.folders.values(), *self.modules.values()]:
            for clash in sorted(names & _top_level_names(old.files)):
                mine = {k: v for k, v in new.files.items() if k.partition("/")[0] in (clash, f"{clash}.py")}
                theirs = {k: v for k, v in old.files.items() if k.partition("/")[0] in (clash, f"{clash}.py")}
                if mine != theirs:
                    raise BundleError(
                        f"module {clash!r} exists both in {old.source} and in {new.source}; the browser puts "
                        "both folders on sys.path, so one would hide the other: rename one of them")

    def _add(self, folder: _Folder) -> None:
        self.paths.append(folder.root)
        for relative, text in folder.files.items():
            self.files[f"{folder.root}/{relative}"] = text

    def tree(self, spec: str) -> dict[str, Any]:
        """One game's share: the worker's spec, and its folders' files and sys.path entries."""
        folders = self.used.get(spec, [])
        return {"game": self.games[spec], "paths": [f.root for f in folders],
                "files": {f"{f.root}/{rel}": text for f in folders for rel, text in f.files.items()}}

    def result(self, source: PackageSource | None = None) -> dict[str, Any]:
        size = sum(len(text.encode("utf-8")) for text in self.files.values())
        if size > MAX_BUNDLE_BYTES:
            sources = ", ".join(str(f.source) for f in self.folders.values()) or "the bundled packages"
            raise BundleError(
                f"the game bundle would be {size // 1024} KiB of Python source (at most {MAX_BUNDLE_BYTES // 1024} "
                f"KiB): keep each game in a folder of its own with only what it imports (now: {sources})")
        source = source or PackageSource()
        packages, wheels = resolve_packages(self.packages, source)
        for spec, needs in self.needs.items():
            try:
                more, more_wheels = resolve_packages([n for n in needs if n not in self.packages], source)
            except PackageError as error:
                self.unavailable.setdefault(spec, f"game {spec} cannot run in browsers: {error}")
                continue
            packages += [name for name in more if name not in packages]
            wheels += [wheel for wheel in more_wheels if wheel not in wheels]
        return {"files": self.files, "paths": self.paths, "games": self.games, "packages": packages,
                "wheels": [wheel.entry() for wheel in wheels], "unavailable": self.unavailable}


ONNXRUNTIME_WEB = "onnxruntime-web"
# What the worker loads of onnxruntime-web: its wasm build's ES module, which imports the second and
# instantiates the wasm (one thread: no SharedArrayBuffer, so no cross-origin isolation needed).
ONNXRUNTIME_WEB_FILES = ("ort.wasm.min.mjs", "ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm")


def onnxruntime_web_folder() -> Path | None:
    """onnxruntime-web's dist/ folder (npm, package.json), or None when it is not installed."""
    from app.pyodide.node import node_modules_dir   # node imports this module
    folder = node_modules_dir() / ONNXRUNTIME_WEB / "dist"
    return folder if all((folder / name).is_file() for name in ONNXRUNTIME_WEB_FILES) else None


def onnxruntime_web_version() -> str | None:
    """The installed onnxruntime-web's version, or None when it is not installed."""
    folder = onnxruntime_web_folder()
    try:
        version = json.loads((folder.parent / "package.json").read_text())["version"] if folder else None
    except (OSError, ValueError, KeyError):
        return None
    return version if isinstance(version, str) and version.replace(".", "").isalnum() else None


def onnxruntime_web_url() -> str:
    """Where the worker loads onnxruntime-web from: this server, under a URL naming the version (immutable)."""
    version = onnxruntime_web_version()
    if version is None:
        raise BundleError(f"an ONNX policy with runs='browser' needs onnxruntime-web, which is not installed "
                          f"(node_modules/{ONNXRUNTIME_WEB}): run scripts/setup (npm ci)")
    return f"/static/vendor/{ONNXRUNTIME_WEB}@{version}/"


def _model_entry(onnx: Any) -> dict[str, Any]:
    """An ONNX model as the bundle ships it: its bytes (base64), sha256 and observation_keys."""
    if onnx.file is None:
        raise BundleError(f"{onnx!r} was not loaded (the experiment's check loads it)")
    with open(onnx.file, "rb") as file:
        model = file.read()
    if hashlib.sha256(model).hexdigest() != onnx.sha256:
        raise BundleError(f"{onnx.file} changed since the server loaded it; restart the server")
    keys = None if onnx.observation_keys is None else list(onnx.observation_keys)
    return {"base64": base64.b64encode(model).decode("ascii"), "sha256": onnx.sha256, "observation_keys": keys}


# The trees of the games the last build_bundle sent, by spec: what participants' browsers run,
# recorded with every match even if a file changed on disk since the server started.
_served_trees: dict[str, dict[str, Any]] = {}


def build_bundle(experiment: Any, resolve_spec: Callable[[Any], str],
                 packages: PackageSource | None = None) -> dict[str, Any]:
    """The bundle for every Match of `experiment` (all arms).

    `resolve_spec(scene.game)` gives the spec as the server sends it in `match_start.game`
    (`game.loader.GameLoader.absolute`: a FILE.py made absolute, a class as module:qualname);
    `games` is keyed by exactly that. `packages` says where the scenes' `packages` come from.
    Raises BundleError when a game cannot be sent, PackageError when a package cannot be served.
    """
    builder = _Builder()
    models: dict[str, dict[str, Any]] = {}   # ONNX models of browser-run AI seats, of every scene
    for scene in experiment.match_scenes():
        spec = resolve_spec(scene.game)
        try:
            builder.add_game(spec)
        except BundleError as error:
            raise BundleError(f"match scene {scene.id!r}: {error}") from None
        for package in scene.packages:
            builder.add_package(package)
        seat_settings = getattr(scene, "seat_settings", None)   # `coplay play`'s stand-in scenes have none
        for player, ai in (seat_settings()[0] if seat_settings else {}).items():
            if ai.runs != "browser":
                continue
            try:   # the participant's worker plays it: its class (or ONNX model) ships too
                onnx = onnx_policy_of(ai)
                if onnx is not None:
                    models[browser_policy_spec(ai)] = _model_entry(onnx)
                else:
                    builder.add_game(browser_policy_spec(ai))
            except BundleError as error:
                raise BundleError(f"match scene {scene.id!r}, AI player {player!r}: {error}") from None
    bundle = builder.result(packages)
    if models:
        bundle["onnx"] = {"runtime": onnxruntime_web_url(), "models": models}
    _served_trees.update({spec: builder.tree(spec) for spec in builder.games})
    return bundle


def game_bundle(spec: str, packages: PackageSource | None = None) -> dict[str, Any]:
    """The bundle of the one game `spec` (absolute, as `game.loader.absolute_spec` makes it)."""
    builder = _Builder()
    builder.add_game(spec)
    return builder.result(packages)


def game_tree(spec: str) -> dict[str, Any]:
    """The source tree of the game `spec`: {"game": the spec to import from it, "paths": its sys.path
    entries, "files": {path: text}}, without coplay's own packages: the tree this process's server
    sent to browsers when there is one, else read from disk now."""
    if spec in _served_trees:
        return _served_trees[spec]
    builder = _Builder(with_packages=False)
    builder.add_game(spec)
    return builder.tree(spec)


@dataclass(frozen=True)
class EncodedBundle:
    """The bundle as served: JSON bytes, their gzip, and an ETag naming the content."""

    body: bytes
    gzipped: bytes
    etag: str


def encode_bundle(bundle: dict[str, Any]) -> EncodedBundle:
    body = json.dumps(bundle, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    return EncodedBundle(body, gzip.compress(body, compresslevel=9, mtime=0),
                         hashlib.sha256(body).hexdigest()[:32])
