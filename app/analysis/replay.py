"""Re-simulating a recorded match and checking every checksum the peers reported.

The server's own checksums (seat "server", from its re-simulation) decide where they exist;
the seats' checksums of those frames are compared too but a mismatch there is a
client-reported one, listed apart (a lying seat or a diverged browser does not fail an
honest match). Older recordings have no server checksums: every seat's decide, except a
seat the server found at fault (`desync_settled`) in that episode.

The game comes from its spec in the recording's header; its current source must hash
to the recorded `game_source_sha256`, or the replay is refused. Pass a game class to
replay with another source anyway, or `recorded_game` to run the exact source stored
in the recording: its whole source tree (`game_tree`, the game's folder with its modules
and sub-packages, as browsers got it), or in recordings made before trees were stored, the
text of the game's one module (`game_source`).
"""
from __future__ import annotations

import hashlib
import importlib
import inspect
import sys
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from app.data.recording import Recording, read_recording, tree_sha256
from game.hashing import state_hash
from game.errors import CoplayError
from game.adapters.seeds import wrap as wrap_seeds
from game.loader import ADAPTERS, LoadError, class_from_source, load_class
from game.lockstep import Lockstep
from netcode.client import SERVER


class ReplayError(CoplayError):
    """The recording cannot be replayed as asked; the message says why and what to do."""

    code = "replay_failed"


@dataclass
class Mismatch:
    episode: int
    frame: int
    seat: str
    recorded: str
    replayed: str
    state: Any = None   # the replayed state at that frame


@dataclass
class ReplayResult:
    frames: int = 0
    checked: int = 0
    mismatches: list[Mismatch] = field(default_factory=list)
    client_mismatches: list[Mismatch] = field(default_factory=list)   # seats' reports the server overrules
    truncated: bool = False
    last_frames: dict[int, int] = field(default_factory=dict)   # episode -> last frame replayed
    end_reason: str | None = None   # the recorded match_end's reason ("interrupted": its server died), or None

    @property
    def ok(self) -> bool:
        """No compared checksum differs (see `verdict` for whether any was compared)."""
        return not self.mismatches

    @property
    def verdict(self) -> str:
        """"mismatch"; "ok" (checksums compared, all equal); "unverified" (frames replayed but no checksum
        compared); or "empty" (no frames and no checksum: nothing to verify)."""
        if self.mismatches:
            return "mismatch"
        if self.checked:
            return "ok"
        return "unverified" if self.frames else "empty"

    @property
    def passed(self) -> bool:
        """What `coplay replay` exits 0 for: every compared checksum matches and, given frames, some were compared."""
        return self.verdict in ("ok", "empty")

    @property
    def interrupted(self) -> bool:
        """The match's server stopped while it ran (closed as interrupted at the next start)."""
        return self.end_reason == "interrupted"


def resolve_game(recording: Recording, game_class: type | None = None) -> type:
    """The recorded game class; refused when its source differs from the recorded one, unless given explicitly."""
    if game_class is not None:
        return game_class
    cls = load_class(recording.header["game"])
    source = inspect.getsource(sys.modules[cls.__module__])
    if hashlib.sha256(source.encode()).hexdigest() != recording.header["game_source_sha256"]:
        raise ReplayError(
            f"the source of {recording.header['game']} differs from the one recorded with match "
            f"{recording.header['match']}; pass the game explicitly (--game FILE.py:Class) to replay with "
            f"another source, or --recorded-source to run the source stored in the recording")
    return cls


def recorded_game(recording: Recording) -> type:
    """The game class built from the source stored in the recording: its source tree, else (older
    recordings) its one module's text."""
    tree = recorded_tree(recording)
    if tree is not None:
        return class_from_tree(tree)
    return class_from_source(recording.header["game_source"], recording.header["game"])


def recorded_tree(recording: Recording) -> dict[str, Any] | None:
    """The recorded source tree, when it is what to run: it has files, or names an adapter game. A game
    of coplay's own packages has an empty tree: its recorded module text (`game_source`) runs instead."""
    tree = recording.header.get("game_tree")
    if not isinstance(tree, dict) or not isinstance(tree.get("game"), str):
        return None
    return tree if tree.get("files") or tree["game"].partition(":")[0] in ADAPTERS else None


_tree_classes: dict[str, type] = {}
_tree_lock = threading.Lock()   # imports from a tree swap sys.modules and sys.path for a moment


def class_from_tree(tree: dict[str, Any]) -> type:
    """The game class of a recorded source tree ({"game", "paths", "files"}; app/pyodide/bundle.py's
    `game_tree`), imported from a copy of the tree, apart from any module of the same name this process
    already imported (those are put back afterwards). Cached per tree content."""
    key = tree_sha256(tree)
    with _tree_lock:
        if key not in _tree_classes:
            with tempfile.TemporaryDirectory(prefix="coplay-recorded-tree-") as folder:
                _tree_classes[key] = _import_tree(tree, Path(folder))
        return _tree_classes[key]


def _import_tree(tree: dict[str, Any], folder: Path) -> type:
    files, roots = tree.get("files") or {}, list(tree.get("paths") or [])
    paths = [str(folder / root) for root in roots]
    for relative, text in files.items():
        target = (folder / relative).resolve()
        if not target.is_relative_to(folder.resolve()):
            raise ReplayError(f"the recorded source tree names a file outside itself: {relative!r}")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    names = {relative[len(root) + 1:].split("/")[0].removesuffix(".py")
             for relative in files for root in roots if relative.startswith(root + "/")}
    saved = {name: module for name, module in sys.modules.items() if name.partition(".")[0] in names}
    for name in saved:
        del sys.modules[name]
    sys.path[:0] = paths
    importlib.invalidate_caches()
    try:
        return _tree_class(str(tree["game"]))
    finally:
        for name in [n for n in sys.modules if n.partition(".")[0] in names]:
            del sys.modules[name]
        sys.modules.update(saved)
        for path in paths:
            sys.path.remove(path)
        importlib.invalidate_caches()


def _tree_class(spec: str) -> type:
    """The class of a tree's `game` spec, imported now (not from game.loader's cache)."""
    prefix, _, rest = spec.partition(":")
    if prefix == "seeds":
        return wrap_seeds(_tree_class(rest))
    if prefix in ADAPTERS:
        return load_class(spec)   # the library's env: nothing of it is in the tree
    module_name, _, class_name = spec.rpartition(":")
    try:
        cls = getattr(importlib.import_module(module_name), class_name, None)
    except Exception as exc:
        raise LoadError(f"the recorded source tree of {spec} failed to import: {type(exc).__name__}: {exc}") from exc
    if not isinstance(cls, type):
        raise LoadError(f"the recorded source tree defines no class {class_name!r} in {module_name}")
    return cls


def episode_lengths(recording: Recording) -> dict[int, int]:
    """{episode: frames to re-simulate}: the recorded inputs, cut at the episode's recorded end."""
    ends: dict[Any, int] = {}
    for e in recording.events:
        if e.get("kind") == "episode_end" and isinstance(e.get("frame"), int):
            ends[e.get("episode")] = min(e["frame"], ends.get(e.get("episode"), e["frame"]))
    return {e: min(len(d["inputs"]), ends.get(e, len(d["inputs"]))) for e, d in recording.episodes.items()}


def faulty_seats(recording: Recording) -> dict[int, set[str]]:
    """{episode: seats the server found at fault in it} from the `desync_settled` events."""
    faulty: dict[int, set[str]] = {}
    for event in recording.events:
        data, episode = event.get("data"), event.get("episode")
        if event.get("kind") == "desync_settled" and isinstance(data, dict) and isinstance(episode, int):
            faulty.setdefault(episode, set()).add(str(data.get("seat")))
    return faulty


def deciding(recorded: dict[str, str], faulty: set[str]) -> tuple[dict[str, str], dict[str, str]]:
    """One frame's recorded checksums split into (those the replay must match, seats' reports it only lists)."""
    if SERVER in recorded:
        return {SERVER: recorded[SERVER]}, {s: c for s, c in recorded.items() if s != SERVER}
    return ({s: c for s, c in recorded.items() if s not in faulty},
            {s: c for s, c in recorded.items() if s in faulty})


def episode_sim(recording: Recording, cls: type, episode: int, length: int | None = None) -> Lockstep:
    """A fresh `cls` env re-simulating `episode` of the recording, up to `length` steps."""
    data = recording.episodes[episode]
    return Lockstep(cls(recording.header["config"]), data["seed"], recording.players, data["inputs"], length)


def replay(
    path: str, game_class: type | None = None, first: int = 0, last: int | None = None,
    progress: Callable[[int, int], None] | None = None, keep_states: bool = False,
) -> ReplayResult:
    """Re-simulate every episode of the recording at `path` and compare the recorded checksums
    of frames `first`..`last`; `progress(done, total)` is called now and then."""
    recording = read_recording(path)
    cls = resolve_game(recording, game_class)
    result = ReplayResult(truncated=recording.truncated, end_reason=recording.end_reason)
    lengths = episode_lengths(recording)
    if last is not None:
        lengths = {e: min(n, last) for e, n in lengths.items()}
    total, done = sum(lengths.values()), 0
    faulty = faulty_seats(recording)
    for episode, data in sorted(recording.episodes.items()):
        sim = episode_sim(recording, cls, episode, lengths[episode])
        checksums = data["checksums"]
        for frame in sim.frames():
            recorded_here = checksums.get(frame) if frame >= first else None
            if recorded_here:
                state = sim.state()
                replayed = state_hash(state)
                decide, listed = deciding(recorded_here, faulty.get(episode, set()))
                for mismatches, reports in ((result.mismatches, decide), (result.client_mismatches, listed)):
                    for seat, recorded in reports.items():
                        result.checked += 1
                        if replayed != recorded:
                            mismatches.append(
                                Mismatch(episode, frame, seat, recorded, replayed, state if keep_states else None))
            if progress is not None and frame and (done + frame) % 2000 == 0:
                progress(done + frame, total)
        done += sim.frame
        result.frames += sim.frame
        result.last_frames[episode] = sim.frame
    if progress is not None:
        progress(done, total)
    return result


def state_at(recording: Recording, cls: type, episode: int, frame: int) -> Any:
    """The state of `episode` at `frame`, re-simulated with `cls`."""
    sim = episode_sim(recording, cls, episode)
    sim.run_to(frame)
    return sim.state()


def diff_states(expected: Any, actual: Any, path: str = "state", limit: int = 20) -> list[str]:
    """Readable lines naming where two states differ (at most `limit`)."""
    lines: list[str] = []

    def walk(a: Any, b: Any, where: str) -> None:
        if len(lines) >= limit:
            return
        if isinstance(a, dict) and isinstance(b, dict):
            for key in sorted(set(a) | set(b)):
                if key not in a or key not in b:
                    lines.append(f"{where}[{key!r}]: only in {'actual' if key not in a else 'expected'}")
                else:
                    walk(a[key], b[key], f"{where}[{key!r}]")
        elif isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)) and len(a) == len(b):
            for index, (x, y) in enumerate(zip(a, b)):
                walk(x, y, f"{where}[{index}]")
        elif a != b or type(a) is not type(b):
            lines.append(f"{where}: expected {a!r:.60}, got {b!r:.60}")

    walk(expected, actual, path)
    return lines


def summary(result: ReplayResult) -> dict[str, Any]:
    return {"frames": result.frames, "checked": result.checked, "ok": result.passed, "verdict": result.verdict,
            "truncated": result.truncated, "end": result.end_reason,
            "mismatches": [_plain(m) for m in result.mismatches[:10]],
            "client_mismatches": len(result.client_mismatches),
            "client_mismatches_first": [_plain(m) for m in result.client_mismatches[:10]]}


def _plain(mismatch: Mismatch) -> dict[str, Any]:
    return {k: v for k, v in mismatch.__dict__.items() if k != "state"}
