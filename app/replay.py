"""Re-simulating a recorded match and checking every checksum the peers reported."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from app.loading import load_class
from app.recording import Recording, read_recording
from game.hashing import state_hash


class ReplayError(Exception):
    """The recording cannot be replayed as asked; the message says why and what to do."""


@dataclass
class Mismatch:
    episode: int
    frame: int
    seat: str
    recorded: str
    replayed: str


@dataclass
class ReplayResult:
    frames: int = 0
    checked: int = 0
    mismatches: list[Mismatch] = field(default_factory=list)
    truncated: bool = False

    @property
    def ok(self) -> bool:
        return not self.mismatches


def resolve_game(recording: Recording, game_class: type | None = None) -> type:
    """The recorded game class; refused when its source differs from the recorded one, unless given explicitly."""
    if game_class is not None:
        return game_class
    import inspect
    import sys

    cls = load_class(recording.header["game"])
    source = inspect.getsource(sys.modules[cls.__module__])
    if hashlib.sha256(source.encode()).hexdigest() != recording.header["game_source_sha256"]:
        raise ReplayError(
            f"the source of {recording.header['game']} differs from the one recorded with match "
            f"{recording.header['match']}; pass the game class explicitly to replay with the current source")
    return cls


def replay(path: str, game_class: type | None = None) -> ReplayResult:
    """Re-simulate every episode of the recording at `path` and compare every recorded checksum."""
    recording = read_recording(path)
    cls = resolve_game(recording, game_class)
    players = recording.players
    result = ReplayResult(truncated=recording.truncated)
    ends = {e["episode"]: e["frame"] for e in recording.events if e.get("kind") == "episode_end"}
    for episode, data in sorted(recording.episodes.items()):
        env = cls(recording.header["config"])
        env.reset(data["seed"])
        checksums = data["checksums"]
        frames = min(len(data["inputs"]), ends.get(episode, len(data["inputs"])))
        for frame in range(frames + 1):
            for seat, recorded in checksums.get(frame, {}).items():
                replayed = state_hash(env.get_state())
                result.checked += 1
                if replayed != recorded:
                    result.mismatches.append(Mismatch(episode, frame, seat, recorded, replayed))
            if frame < frames:
                env.step(dict(zip(players, data["inputs"][frame])))
                result.frames += 1
    return result


def summary(result: ReplayResult) -> dict[str, Any]:
    return {"frames": result.frames, "checked": result.checked, "ok": result.ok, "truncated": result.truncated,
            "mismatches": [m.__dict__ for m in result.mismatches[:10]]}
