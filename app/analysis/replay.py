"""Re-simulating a recorded match and checking every checksum the peers reported.

The server's own checksums (seat "server", from its re-simulation) decide where they exist;
the seats' checksums of those frames are compared too but a mismatch there is a
client-reported one, listed apart (a lying seat or a diverged browser does not fail an
honest match). Older recordings have no server checksums: every seat's decide, except a
seat the server found at fault (`desync_settled`) in that episode.

The game comes from its spec in the recording's header; its current source must hash
to the recorded `game_source_sha256`, or the replay is refused. Pass a game class to
replay with another source anyway, or `recorded_game` to run the exact source stored
in the recording.
"""
from __future__ import annotations

import hashlib
import inspect
import sys
from dataclasses import dataclass, field
from typing import Any, Callable

from app.data.recording import Recording, read_recording
from game.hashing import state_hash
from game.errors import CoplayError
from game.loader import class_from_source, load_class
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
    """The game class built from the source text stored in the recording."""
    return class_from_source(recording.header["game_source"], recording.header["game"])


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
