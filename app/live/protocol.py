"""Validation of client socket events.

Each validator takes the raw payload (anything the network sent) and returns a clean
dict or raises `ProtocolError` with a reason the client sees in an `error` event.
See docs/protocol.md.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

from netcode.frame_ranges import MAX_REPORTED_RANGES
from game.errors import CoplayError

MAX_PACKET_CHARS = 16 * 1024
MAX_ID_CHARS = 64
MAX_ADVANCE_CHARS = 64 * 1024
MAX_REPORTED_PLAYERS = 64   # players one episode_done may report predictions for


class ProtocolError(CoplayError, ValueError):
    """A client event that is malformed or not allowed now; nothing was changed."""

    code = "invalid_event"


def _object(payload: Any, event: str) -> dict[str, Any]:
    if not isinstance(payload, dict):
        raise ProtocolError(f"{event} takes a JSON object, got {type(payload).__name__}")
    return payload


def _int(payload: dict[str, Any], key: str, low: int = 0, high: int = 1 << 31) -> int:
    value = payload.get(key)
    if type(value) is not int or not low <= value <= high:
        raise ProtocolError(f"{key} must be an int in [{low}, {high}], got {value!r:.40}")
    return value


def _str(payload: dict[str, Any], key: str, max_chars: int = MAX_ID_CHARS) -> str:
    value = payload.get(key)
    if not isinstance(value, str) or not 0 < len(value) <= max_chars:
        raise ProtocolError(f"{key} must be a non-empty string of at most {max_chars} characters")
    return value


def _only(payload: dict[str, Any], event: str, keys: set[str]) -> None:
    extra = set(payload) - keys
    if extra:
        raise ProtocolError(f"{event} has unexpected fields {sorted(map(str, extra))[:5]}")


def parse_advance(payload: Any) -> tuple[int, dict[str, Any]]:
    """`advance`: (scene index, data)."""
    payload = _object(payload, "advance")
    _only(payload, "advance", {"index", "data"})
    data = payload.get("data", {})
    if not isinstance(data, dict):
        raise ProtocolError("data must be a JSON object")
    if len(repr(data)) > MAX_ADVANCE_CHARS:
        raise ProtocolError(f"data is larger than {MAX_ADVANCE_CHARS} characters")
    return _int(payload, "index"), data


def parse_ready(payload: Any) -> int:
    """`ready`: the match scene index."""
    payload = _object(payload, "ready")
    _only(payload, "ready", {"index"})
    return _int(payload, "index")


class PacketEvent(NamedTuple):
    """A netcode packet `data` for seat `to` (a named tuple: one is built per relayed packet)."""

    match: str
    episode: int
    to: str
    data: str


def parse_packet(payload: Any) -> PacketEvent:
    """`packet`: a netcode packet for another seat (decoded and checked later by the match)."""
    payload = _object(payload, "packet")
    _only(payload, "packet", {"match", "episode", "to", "data"})
    return PacketEvent(
        _str(payload, "match"), _int(payload, "episode"), _str(payload, "to"),
        _str(payload, "data", MAX_PACKET_CHARS),
    )


@dataclass(frozen=True)
class EpisodeDone:
    """A seat's end of an episode. `predicted` is {remote player: [[start, end), ...]}, the
    frames the seat ever simulated with a predicted input of that player; None when the
    client did not say (an older client), which means unknown."""

    match: str
    episode: int
    frame: int
    checksum: str
    predicted: dict[str, list[list[int]]] | None = None


def parse_episode_done(payload: Any) -> EpisodeDone:
    """`episode_done`; which players `predicted` may name is checked by the match room."""
    payload = _object(payload, "episode_done")
    _only(payload, "episode_done", {"match", "episode", "frame", "checksum", "predicted"})
    frame = _int(payload, "frame")
    predicted = _predicted(payload["predicted"], frame) if "predicted" in payload else None
    return EpisodeDone(_str(payload, "match"), _int(payload, "episode"), frame, _str(payload, "checksum"), predicted)


def _predicted(value: Any, frame: int) -> dict[str, list[list[int]]]:
    """{player: sorted, non-overlapping [start, end) ranges with 0 <= start < end <= frame}."""
    if not isinstance(value, dict):
        raise ProtocolError(f"predicted must be an object of player -> ranges, got {type(value).__name__}")
    if len(value) > MAX_REPORTED_PLAYERS:
        raise ProtocolError(f"predicted names more than {MAX_REPORTED_PLAYERS} players")
    clean: dict[str, list[list[int]]] = {}
    total = 0
    for player, ranges in value.items():
        if not isinstance(player, str) or not 0 < len(player) <= MAX_ID_CHARS:
            raise ProtocolError(f"predicted: player names must be non-empty strings of at most {MAX_ID_CHARS} "
                                "characters")
        if not isinstance(ranges, list):
            raise ProtocolError(f"predicted[{player!r}] must be a list of [start, end] pairs, "
                                f"got {type(ranges).__name__}")
        total += len(ranges)
        if total > MAX_REPORTED_RANGES:
            raise ProtocolError(f"predicted holds more than {MAX_REPORTED_RANGES} ranges")
        previous_end = 0
        for pair in ranges:
            if not (isinstance(pair, list) and len(pair) == 2 and all(type(x) is int for x in pair)):
                raise ProtocolError(f"predicted[{player!r}]: each range must be a [start, end] pair of ints, "
                                    f"got {pair!r:.40}")
            start, end = pair
            if not 0 <= start < end <= frame:
                raise ProtocolError(f"predicted[{player!r}]: range {pair} must satisfy "
                                    f"0 <= start < end <= frame {frame}")
            if start < previous_end:
                raise ProtocolError(f"predicted[{player!r}]: range {pair} overlaps or comes before the previous one; "
                                    "ranges must be sorted and must not overlap")
            previous_end = end
        clean[player] = [list(pair) for pair in ranges]
    return clean


MAX_CLIENT_ERROR_CHARS = 8 * 1024


def parse_client_error(payload: Any) -> tuple[str, str]:
    """`client_error`: (message, traceback) of an error the page or its worker hit."""
    payload = _object(payload, "client_error")
    _only(payload, "client_error", {"message", "traceback"})
    message = _str(payload, "message", MAX_CLIENT_ERROR_CHARS)
    traceback = payload.get("traceback", "")
    if not isinstance(traceback, str) or len(traceback) > MAX_CLIENT_ERROR_CHARS:
        raise ProtocolError(f"traceback must be a string of at most {MAX_CLIENT_ERROR_CHARS} characters")
    return message, traceback

