"""Validation of client socket events, and the per-connection rate limit.

Each validator takes the raw payload (anything the network sent) and returns a clean
dict or raises `ProtocolError` with a reason the client sees in an `error` event.
See docs/protocol.md.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

MAX_PACKET_CHARS = 16 * 1024
MAX_ID_CHARS = 64
MAX_ADVANCE_CHARS = 64 * 1024


class ProtocolError(ValueError):
    """A client event that is malformed or not allowed now; nothing was changed."""


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


@dataclass(frozen=True)
class PacketEvent:
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
    match: str
    episode: int
    frame: int
    checksum: str


def parse_episode_done(payload: Any) -> EpisodeDone:
    payload = _object(payload, "episode_done")
    _only(payload, "episode_done", {"match", "episode", "frame", "checksum"})
    return EpisodeDone(_str(payload, "match"), _int(payload, "episode"), _int(payload, "frame"),
                       _str(payload, "checksum"))


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


class RateLimiter:
    """A token bucket: `rate` events per second, bursts of `burst`."""

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = burst
        self.last = now

    def allow(self, now: float) -> bool:
        self.tokens = min(self.burst, self.tokens + (now - self.last) * self.rate)
        self.last = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False
