"""Frames of a recorded match for the replay viewer: re-simulated once, then served by range.

For each episode the recorded game (the exact source stored in the recording, see
`app.analysis.replay.recorded_game`) is re-simulated from the recorded seed and inputs
(`game.lockstep`), in CPython. Frame f is the state after f steps (0 is the reset state, the last one
is the state after the episode's last recorded inputs); for it we keep the env's
`render()` primitives, the inputs recorded for frame f with the rewards of that step
(None at the last frame), and the recorded checksums of frame f against the replayed one.

Each frame is kept as its encoded JSON text, so a range is served by joining strings.
Episodes are simulated lazily, only as far as asked, and kept in a small LRU; the
simulation pauses every few frames (`pause`, e.g. `socketio.sleep(0)`) so live matches on
the same server keep running.
"""
from __future__ import annotations

import json
import os
import threading
from collections import OrderedDict
from typing import Any, Callable

from app.data.recording import Recording, read_recording, recording_path
from app.analysis.replay import (
    ReplayError, deciding, episode_lengths, episode_sim, faulty_seats, recorded_game, resolve_game,
)
from game.errors import CoplayError

PAUSE_EVERY = 100   # frames between two pauses
MAX_COUNT = 600     # frames per request
EPISODE_LINE = b'{"type":"episode",'   # how RecordingWriter starts an episode record


class UnknownMatch(CoplayError, LookupError):
    """No recording for this match id (or the id cannot name a recording)."""

    code = "unknown_match"


class SimulationError(ReplayError):
    """The recorded game failed while re-simulating; the message names the frame."""

    code = "simulation_failed"


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), allow_nan=False)


class EpisodeFrames:
    """One episode, re-simulated up to the frame asked for; thread-safe."""

    def __init__(self, recording: Recording, cls: type, episode: int, length: int,
                 pause: Callable[[], None]) -> None:
        self.episode = episode
        self.length = length                 # steps; frames 0..length can be shown
        self.players = recording.players
        self._checksums: dict[int, dict[str, str]] = recording.episodes[episode]["checksums"]
        self._faulty = faulty_seats(recording).get(episode, set())
        self._pause = pause
        self._lock = threading.Lock()
        self.entries: list[str] = []         # encoded frames 0..len-1
        self.checked = 0
        self.mismatches: list[int] = []      # frames whose replayed checksum differs from a deciding one
        self._sim = episode_sim(recording, cls, episode, length)
        self._renders = callable(getattr(self._sim.env, "render", None))

    @property
    def states(self) -> int:
        return self.length + 1

    @property
    def complete(self) -> bool:
        return len(self.entries) == self.states

    def ensure(self, upto: int) -> None:
        """Simulate until frames 0..`upto` (clipped to the episode) are available."""
        upto = min(upto, self.length)
        with self._lock:
            while len(self.entries) <= upto:
                self._next()
                if len(self.entries) % PAUSE_EVERY == 0:
                    self._pause()

    def _next(self) -> None:
        sim = self._sim
        frame = sim.frame
        try:
            primitives = sim.env.render() if self._renders else []
            recorded = self._checksums.get(frame)
            checksum = None
            if recorded:
                replayed = sim.checksum()
                ok = all(c == replayed for c in recorded.values())
                self.checked += len(recorded)
                decide, _ = deciding(recorded, self._faulty)   # the episode's verdict, as `coplay replay` judges
                if any(c != replayed for c in decide.values()):
                    self.mismatches.append(frame)
                checksum = {"recorded": recorded, "replayed": replayed, "ok": ok}
            actions = rewards = None
            if not sim.done:
                actions = sim.actions()
                rewards = sim.step().get("rewards")
            entry = {"frame": frame, "primitives": primitives, "actions": actions, "rewards": rewards,
                     "checksum": checksum}
            self.entries.append(_dumps(entry))
        except Exception as error:
            raise SimulationError(f"episode {self.episode}, frame {frame}: the game failed while re-simulating: "
                                  f"{type(error).__name__}: {error}") from error

    def summary(self) -> dict[str, Any]:
        """Checksum results (complete once every frame has been simulated)."""
        return {"checked": self.checked, "mismatches": len(self.mismatches),
                "first_mismatch": self.mismatches[0] if self.mismatches else None}


class ReplayFrames:
    """Recordings of one experiment, read and re-simulated on demand, with small caches."""

    def __init__(self, experiment_dir: str, pause: Callable[[], None] = lambda: None,
                 keep_episodes: int = 6, keep_recordings: int = 8) -> None:
        self.experiment_dir = experiment_dir
        self.pause = pause
        self.keep_episodes = keep_episodes
        self.keep_recordings = keep_recordings
        self._lock = threading.Lock()
        self._recordings: OrderedDict[str, tuple[tuple[int, int], Recording]] = OrderedDict()
        self._episodes: OrderedDict[tuple[Any, ...], EpisodeFrames] = OrderedDict()
        self._classes: dict[str, type] = {}
        self._summaries: OrderedDict[tuple[Any, ...], dict[str, Any]] = OrderedDict()
        self._counts: OrderedDict[tuple[str, int, int], int] = OrderedDict()

    def path(self, match_id: str) -> str:
        """The recording's path; UnknownMatch for an id that cannot be a recording or has none."""
        try:
            path = recording_path(self.experiment_dir, match_id)
        except ValueError:
            raise UnknownMatch(f"no match {match_id!r}") from None
        if not os.path.isfile(path):
            raise UnknownMatch(f"no recording of match {match_id!r}")
        return path

    def episode_count(self, match_id: str) -> int | None:
        """How many episodes the recording started (None without a recording), by scanning its lines."""
        try:
            path = self.path(match_id)
            info = os.stat(path)
        except (UnknownMatch, OSError):
            return None
        stamp = (path, info.st_size, info.st_mtime_ns)
        with self._lock:
            if stamp in self._counts:
                return self._counts[stamp]
        with open(path, "rb") as file:
            count = sum(1 for line in file if line.startswith(EPISODE_LINE))
        with self._lock:
            self._counts[stamp] = count
            _trim(self._counts, 4096)
        return count

    def recording(self, match_id: str) -> Recording:
        """The recording, read again only when the file changed (a live match grows)."""
        path = self.path(match_id)
        info = os.stat(path)
        stamp = (info.st_size, info.st_mtime_ns)
        with self._lock:
            cached = self._recordings.get(match_id)
            if cached is not None and cached[0] == stamp:
                self._recordings.move_to_end(match_id)
                return cached[1]
        recording = read_recording(path)
        with self._lock:
            self._recordings[match_id] = (stamp, recording)
            _trim(self._recordings, self.keep_recordings)
        return recording

    def game_class(self, recording: Recording) -> type:
        """The class from the source stored in the recording (what participants ran); the installed
        game when that source cannot be run on its own but the installed one hashes the same."""
        sha = recording.header["game_source_sha256"]
        with self._lock:
            if sha in self._classes:
                return self._classes[sha]
        try:
            cls = recorded_game(recording)
        except Exception as error:
            try:
                cls = resolve_game(recording)
            except Exception:
                raise ReplayError(f"cannot run the game recorded with match {recording.header['match']}: "
                                  f"{type(error).__name__}: {error}") from error
        with self._lock:
            self._classes[sha] = cls
        return cls

    def episode(self, match_id: str, episode: int) -> EpisodeFrames:
        """The (cached) frames of one episode; KeyError when the match has no such episode."""
        recording = self.recording(match_id)
        if episode not in recording.episodes:
            raise KeyError(f"match {match_id} has no episode {episode} (it has {sorted(recording.episodes)})")
        length = episode_lengths(recording)[episode]
        key = (match_id, episode, length, len(recording.episodes[episode]["checksums"]))
        with self._lock:
            frames = self._episodes.get(key)
            if frames is not None:
                self._episodes.move_to_end(key)
                return frames
        frames = EpisodeFrames(recording, self.game_class(recording), episode, length, self.pause)
        with self._lock:
            frames = self._episodes.setdefault(key, frames)
            _trim(self._episodes, self.keep_episodes)
        return frames

    def episodes(self, match_id: str) -> dict[str, Any]:
        """The match and, per episode, its frames, seed and checksum verification (simulating it all once)."""
        recording = self.recording(match_id)
        header = recording.header
        lengths = episode_lengths(recording)
        listed = []
        for episode in sorted(recording.episodes):
            data = recording.episodes[episode]
            key = (match_id, episode, lengths[episode], len(data["checksums"]))
            with self._lock:
                summary = self._summaries.get(key)
            if summary is None:
                frames = self.episode(match_id, episode)
                frames.ensure(frames.length)
                summary = frames.summary()
                with self._lock:
                    self._summaries[key] = summary
                    _trim(self._summaries, 256)
            recorded = sum(len(seats) for frame, seats in data["checksums"].items() if frame <= lengths[episode])
            listed.append({"episode": episode, "frames": lengths[episode], "states": lengths[episode] + 1,
                           "seed": data["seed"], "fps": header["fps"], "players": recording.players,
                           "checksums": {"recorded": recorded, **summary},
                           "verified": summary["checked"] > 0 and summary["mismatches"] == 0})
        return {"match": header["match"], "scene": header["scene"], "game": header["game"],
                "created_at": header["created_at"], "fps": header["fps"], "players": recording.players,
                "seats": header["seats"], "truncated": recording.truncated, "ended": recording.ended,
                "episodes": listed}

    def frames_json(self, match_id: str, episode: int, start: int, count: int) -> str:
        """A JSON object with frames start..start+count-1 (clipped to the episode) of `episode`."""
        frames = self.episode(match_id, episode)
        if not 0 <= start < frames.states:
            raise IndexError(f"start must be between 0 and {frames.states - 1} (episode {episode} has "
                             f"{frames.states} frames), got {start}")
        stop = min(start + count, frames.states)
        frames.ensure(stop - 1)
        head = _dumps({"match": match_id, "episode": episode, "start": start, "count": stop - start,
                       "states": frames.states, "players": frames.players})
        return f'{head[:-1]},"frames":[{",".join(frames.entries[start:stop])}]}}'


def _trim(cache: OrderedDict[Any, Any], size: int) -> None:
    while len(cache) > size:
        cache.popitem(last=False)
