"""Per-match recordings: append-only JSON Lines, one file per match.

`DATA/<experiment_id>/recordings/<match_id>.jsonl` holds a header line, then episode,
inputs, checksum and event records in the order the server saw them. The format is
documented in docs/recording.md.

Durability: each record is one write(2) of one whole line to a file opened with
O_APPEND, with no buffering in Python (an unbuffered `io.FileIO`, whose write a green-thread
library does not wrap: one system call per record). When a `RecordingWriter` method returns, the
line is in the operating system's hands and survives the process being killed; a
kill during a write leaves at most one partial last line, which `read_recording`
reports as `truncated` and skips. `fsync_every=` seconds also guards against power loss.
A server starting after such a kill closes the recording with `close_after_crash`, the
one write to an existing recording: it removes a partial last line, then appends `match_end`.
Files and the recordings folder get the data modes of app/data/modes.py.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import platform
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from app.data.modes import make_folder, open_file
from app.pyodide.bundle import BundleError, game_tree as bundle_tree
from game.errors import CoplayError

FORMAT = "coplay-recording"
FORMAT_VERSION = 1
HEADER_FIELDS = ("match", "experiment", "scene", "created_at", "coplay_version", "python", "game",
                 "game_source_sha256", "game_source", "config", "players", "seats", "netcode", "fps")
_SAFE_ID = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}")


class RecordingError(CoplayError, ValueError):
    """A recording file cannot be read (not a recording, too new, malformed)."""

    code = "invalid_recording"


def recording_path(experiment_dir: str, match_id: str) -> str:
    """Where a match's recording lives: `<experiment_dir>/recordings/<match_id>.jsonl`."""
    if not _SAFE_ID.fullmatch(match_id):
        raise ValueError(f"match id {match_id!r} cannot be a file name (use letters, digits, '.', '_', '-')")
    return os.path.join(experiment_dir, "recordings", f"{match_id}.jsonl")


def coplay_version() -> str:
    """The installed coplay's version, or 'unknown' when running from an uninstalled checkout."""
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version("coplay")
    except PackageNotFoundError:
        return "unknown"


def make_header(*, match: str, experiment: str, scene: str, created_at: str, game: str, game_source: str,
                config: dict[str, Any], players: list[str], seats: dict[str, dict[str, Any]],
                netcode: dict[str, Any], fps: int, game_tree: dict[str, Any] | None = None) -> dict[str, Any]:
    """A complete header; fills in coplay and Python versions and the game source's SHA-256.

    `seats` maps each seat address to {"players": [...], "kind": "human" | "ai",
    "participant": id | None, "policy": spec | None, "ai": settings | None}; an AI seat's settings
    (scenes/ai_seat.py AISeat.record) are its policy spec, where it runs, its seed, reaction delay,
    action repeat, reveal, and its model file's sha256 for an ONNX policy. `game_tree` is the game's whole
    source tree (app/pyodide/bundle.py's `game_tree`, what browsers were sent); by default it is looked up
    for `game`, and left out (null) for a spec no browser could load.
    """
    tree = game_tree if game_tree is not None else source_tree(game)
    return {"match": match, "experiment": experiment, "scene": scene, "created_at": created_at,
            "coplay_version": coplay_version(), "python": platform.python_version(), "game": game,
            "game_source_sha256": hashlib.sha256(game_source.encode()).hexdigest(), "game_source": game_source,
            "game_tree": tree, "game_tree_sha256": tree_sha256(tree) if tree is not None else None,
            "config": config, "players": list(players), "seats": seats, "netcode": netcode, "fps": fps}


def source_tree(game: str) -> dict[str, Any] | None:
    """The source tree of the game spec `game`, or None when it names no game a browser could load."""
    try:
        return bundle_tree(game)
    except (BundleError, OSError, UnicodeDecodeError):
        return None


def tree_sha256(tree: dict[str, Any]) -> str:
    """The SHA-256 (hex) naming a source tree's content."""
    return hashlib.sha256(json.dumps(tree, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _line(record: dict[str, Any]) -> bytes:
    try:
        text = json.dumps(record, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as error:
        raise ValueError(f"a {record.get('type')} record must be JSON-able (no NaN/Infinity): {error}") from None
    return (text + "\n").encode()


def _inputs_line(episode: int, frame: int, actions: list[Any]) -> bytes:
    """An inputs record's line; actions that are all plain ints (most games) skip the JSON encoder."""
    if all(type(action) is int for action in actions):
        return (f'{{"type":"inputs","episode":{episode},"frame":{frame},"actions":[{",".join(map(str, actions))}]}}\n'
                .encode())
    return _line({"type": "inputs", "episode": episode, "frame": frame, "actions": list(actions)})


def _write_all(file: io.FileIO, line: bytes) -> None:
    """Write `line` to `file` (a regular file takes it in one write; loop in case not)."""
    written = file.write(line) or 0
    if written < len(line):
        view = memoryview(line)[written:]
        while view:
            view = view[file.write(view) or 0:]


_held: list[RecordingWriter] | None = None   # inside `held_writes`: the writers with lines waiting


@contextmanager
def held_writes() -> Iterator[None]:
    """Recording lines written inside wait, and go out at the end in one write per file: the match
    channel pump holds them over a round of frames, so that a relay costs no write of its own. Close
    the block before sending what was relayed, so a packet a peer got is on disk first. The block holds
    every writer's lines (no thread-local: a green one costs more than the write it saves), so its
    caller keeps other writers out, as the pump does by holding the lock every match writes under."""
    global _held
    if _held is not None:
        yield
        return
    _held = []
    try:
        yield
    finally:
        writers, _held = _held, None
        for writer in writers:
            writer._release()


class RecordingWriter:
    """Appends one match's records to a new file; every method writes through to the OS before returning
    (but inside `held_writes`, at its end).

    Episodes are numbered 0, 1, 2... and each episode's inputs are frames 0, 1, 2... with
    no gap or repeat (inputs for frame f step the game from frame f to f + 1).
    Thread-safe: records from several threads are serialised by a lock.
    """

    def __init__(self, path: str, header: dict[str, Any], fsync_every: float | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        missing = [name for name in HEADER_FIELDS if name not in header]
        if missing:
            raise ValueError(f"recording header lacks {missing}; build it with make_header()")
        players = header["players"]
        if not isinstance(players, list) or not players or not all(isinstance(p, str) for p in players):
            raise ValueError(f"header players must be a non-empty list of str, got {players!r:.80}")
        self.path = path
        self.players: list[str] = list(players)
        self.fsync_every = fsync_every
        self._clock = clock
        self._lock = threading.Lock()
        self._next_frame: dict[int, int] = {}  # episode -> the frame whose inputs come next
        self._pending: list[bytes] = []        # lines held by `held_writes`
        first = _line({"type": "header", "format": FORMAT, "version": FORMAT_VERSION, **header})
        make_folder(os.path.dirname(os.path.abspath(path)))
        try:
            self._fd: int | None = open_file(path, os.O_WRONLY | os.O_EXCL | os.O_APPEND)
        except FileExistsError:
            raise FileExistsError(f"recording {path} already exists; recordings are never overwritten") from None
        self._file = io.FileIO(self._fd, "w", closefd=False)
        self._last_sync = clock()
        try:
            with self._lock:
                self._write(first)
        except BaseException:
            self.close()
            raise

    def _write(self, line: bytes) -> None:
        """Write one whole line (or hold it, inside `held_writes`), holding the lock."""
        if self._fd is None:
            raise ValueError(f"recording {self.path} is closed")
        held = _held
        if held is not None:
            if not self._pending:
                held.append(self)
            self._pending.append(line)
            return
        self._write_through(line)

    def _write_through(self, data: bytes) -> None:
        _write_all(self._file, data)
        if self.fsync_every is not None and self._clock() - self._last_sync >= self.fsync_every:
            self._sync()

    def _release(self) -> None:
        """Write the lines `held_writes` held."""
        with self._lock:
            data = self._take_pending()
            if data and self._fd is not None:
                self._write_through(data)

    def _take_pending(self) -> bytes:
        """The lines `held_writes` held, joined, and none held any more (the caller holds the lock)."""
        data, self._pending = b"".join(self._pending), []
        return data

    def _sync(self) -> None:
        assert self._fd is not None
        os.fsync(self._fd)
        self._last_sync = self._clock()

    def episode(self, episode: int, seed: int) -> None:
        """Start episode `episode` (0 first, then one more each time), reset with `seed`."""
        line = _line({"type": "episode", "episode": episode, "seed": seed})
        with self._lock:
            expected = len(self._next_frame)
            if episode != expected:
                raise ValueError(f"episode {episode} out of order: the next episode is {expected}")
            self._write(line)
            self._next_frame[episode] = 0

    def inputs(self, episode: int, frame: int, actions: list[Any]) -> None:
        """Record the confirmed actions of `frame`, one per player in the header's order."""
        if len(actions) != len(self.players):
            raise ValueError(f"frame {frame}: {len(actions)} actions for {len(self.players)} players {self.players}")
        line = _inputs_line(episode, frame, actions)
        with self._lock:
            if episode not in self._next_frame:
                raise ValueError(f"inputs for episode {episode}, which has not started")
            expected = self._next_frame[episode]
            if frame != expected:
                problem = "repeats a recorded frame" if frame < expected else "skips frames"
                raise ValueError(f"episode {episode}: inputs for frame {frame} {problem}; the next frame is {expected}")
            self._write(line)
            self._next_frame[episode] = frame + 1

    def checksum(self, episode: int, frame: int, checksum: str, seat: str) -> None:
        """Record the checksum `seat` reported for the state at `frame`."""
        line = _line({"type": "checksum", "episode": episode, "frame": frame, "checksum": checksum, "seat": seat})
        with self._lock:
            if episode not in self._next_frame:
                raise ValueError(f"checksum for episode {episode}, which has not started")
            self._write(line)

    def event(self, kind: str, data: dict[str, Any] | None = None,
              episode: int | None = None, frame: int | None = None) -> None:
        """Record an event: 'desync', 'seat_changed', 'episode_end', 'match_end', ..."""
        line = _line({"type": "event", "episode": episode, "frame": frame, "kind": kind, "data": data or {}})
        with self._lock:
            self._write(line)

    def next_frame(self, episode: int) -> int:
        """The frame whose inputs `inputs()` expects next in `episode`."""
        return self._next_frame[episode]

    @property
    def closed(self) -> bool:
        return self._fd is None

    def sync(self) -> None:
        """fsync the file now (survives power loss, not only a process kill)."""
        self._release()
        with self._lock:
            if self._fd is not None:
                self._sync()

    def close(self) -> None:
        """Close the file (fsyncing it first when `fsync_every` is set); safe to call twice."""
        with self._lock:
            if self._fd is None:
                return
            try:
                data = self._take_pending()
                if data:
                    _write_all(self._file, data)
                if self.fsync_every is not None:
                    self._sync()
            finally:
                os.close(self._fd)
                self._fd = None

    def __enter__(self) -> RecordingWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def close_after_crash(path: str, data: dict[str, Any], episode: int | None = None) -> int:
    """Append a `match_end` event (with `data`) to the recording of a match whose server died, and fsync it.

    What `read_recording` would skip is removed first, so the event is a line of its own and the
    file stays readable: a last line cut short (its writer never returned, so nobody was told it
    was written) or a damaged last line (power loss). Returns the number of bytes removed, also
    recorded as the event's `dropped_bytes`. Raises RecordingError when not even the header line
    is complete, and FileNotFoundError when there is no file.
    """
    fd = os.open(path, os.O_RDWR | os.O_APPEND)
    try:
        size = os.fstat(fd).st_size
        last_newline = _rfind_newline(fd, size)
        end = last_newline + 1
        start = _rfind_newline(fd, last_newline) + 1 if last_newline > 0 else 0
        if start > 0 and not _is_record(os.pread(fd, last_newline - start, start)):
            end = start
        if end == 0:
            raise RecordingError(f"{path}: no complete header line; the match's process died before writing it")
        if end < size:
            os.ftruncate(fd, end)
        dropped = {"dropped_bytes": size - end} if end < size else {}
        _write_all(io.FileIO(fd, "w", closefd=False), _line({"type": "event", "episode": episode, "frame": None, "kind": "match_end",
                              "data": {**data, **dropped}}))
        os.fsync(fd)
        return size - end
    finally:
        os.close(fd)


def _rfind_newline(fd: int, before: int, chunk: int = 65536) -> int:
    """The offset of the last newline in the file before offset `before`, or -1."""
    position = before
    while position > 0:
        start = max(0, position - chunk)
        found = os.pread(fd, position - start, start).rfind(b"\n")
        if found >= 0:
            return start + found
        position = start
    return -1


def _is_record(raw: bytes) -> bool:
    try:
        return isinstance(json.loads(raw), dict)
    except ValueError:
        return False


@dataclass
class Recording:
    """A recording read back.

    `episodes[e]` is {"seed": s, "inputs": [actions of frame 0, of frame 1, ...],
    "checksums": {frame: {seat: checksum}}}. `truncated` is True when the last line was
    cut short (the process died while writing it) and was skipped.
    """

    path: str
    header: dict[str, Any]
    episodes: dict[int, dict[str, Any]] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)
    truncated: bool = False

    @property
    def players(self) -> list[str]:
        return list(self.header["players"])

    @property
    def complete_frames(self) -> dict[int, int]:
        """{episode: number of frames with recorded inputs} (frames 0 .. n-1)."""
        return {episode: len(data["inputs"]) for episode, data in self.episodes.items()}

    @property
    def ended(self) -> bool:
        """True when the server recorded the match's end (a 'match_end' event)."""
        return self.end_reason is not None

    @property
    def end_reason(self) -> str | None:
        """The first 'match_end' event's reason ('completed', ..., 'interrupted'), or None while unended."""
        for event in self.events:
            if event.get("kind") == "match_end":
                data = event.get("data")
                return str(data.get("reason", "unknown")) if isinstance(data, dict) else "unknown"
        return None


def read_recording(path: str) -> Recording:
    """Read a recording, skipping a cut-short last line; raises RecordingError when it cannot be read."""
    with open(path, "rb") as file:
        lines = file.read().split(b"\n")
    # A complete file ends with "\n", so the last piece is b"". Anything else there is a cut-short line.
    cut_short = lines.pop() != b""
    if not lines:
        raise RecordingError(f"{path}: no header line; the match's process died before writing it")
    header = _parse_header(path, lines[0])
    recording = Recording(path=path, header=header, truncated=cut_short)
    for number, raw in enumerate(lines[1:], start=2):
        try:
            record = json.loads(raw)
            if not isinstance(record, dict):
                raise ValueError("not a JSON object")
        except ValueError as error:
            if number == len(lines) and not cut_short:
                recording.truncated = True  # a damaged final line (e.g. after power loss): same as cut short
                break
            raise RecordingError(f"{path}, line {number}: not a JSON object ({error})") from None
        _add_record(recording, record, f"{path}, line {number}")
    return recording


def _parse_header(path: str, raw: bytes) -> dict[str, Any]:
    try:
        header = json.loads(raw)
    except ValueError:
        raise RecordingError(f"{path}: the header line is not JSON; not a complete coplay recording") from None
    if not isinstance(header, dict) or header.get("type") != "header" or header.get("format") != FORMAT:
        raise RecordingError(f"{path}: not a coplay recording (its first line is not a {FORMAT} header)")
    version = header.get("version")
    if type(version) is not int or version < 1:
        raise RecordingError(f"{path}: unknown recording format version {version!r}")
    if version > FORMAT_VERSION:
        raise RecordingError(f"{path}: recording format version {version} is newer than this coplay "
                             f"understands ({FORMAT_VERSION}); upgrade coplay")
    return header


def _add_record(recording: Recording, record: dict[str, Any], where: str) -> None:
    """Fold one record into `recording`; unknown record types are skipped (see the versioning policy)."""
    kind = record.get("type")
    try:
        if kind == "episode":
            if record["episode"] in recording.episodes:
                raise RecordingError(f"{where}: episode {record['episode']} starts a second time")
            recording.episodes[record["episode"]] = {"seed": record["seed"], "inputs": [], "checksums": {}}
        elif kind == "inputs":
            inputs = _episode(recording, record["episode"])["inputs"]
            if record["frame"] != len(inputs):
                raise RecordingError(f"{where}: inputs for frame {record['frame']}, expected frame {len(inputs)}")
            inputs.append(record["actions"])
        elif kind == "checksum":
            checksums = _episode(recording, record["episode"])["checksums"]
            checksums.setdefault(record["frame"], {})[record["seat"]] = record["checksum"]
        elif kind == "event":
            recording.events.append(record)
    except KeyError as error:
        raise RecordingError(f"{where}: a {kind} record lacks the field {error}") from None
    except (LookupError, TypeError) as error:
        raise RecordingError(f"{where}: {error}") from None


def _episode(recording: Recording, episode: int) -> dict[str, Any]:
    if episode not in recording.episodes:
        raise LookupError(f"a record for episode {episode}, which has not started")
    return recording.episodes[episode]
