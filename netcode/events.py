"""Events a session reports; drain them with `session.events()`."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class NetworkInterrupted:
    """No packet from `peer` for a while; it will be dropped after `timeout_in_ms` more."""

    peer: str
    timeout_in_ms: float


@dataclass(frozen=True)
class NetworkResumed:
    """Packets from `peer` arrive again after a NetworkInterrupted."""

    peer: str


@dataclass(frozen=True)
class Disconnected:
    """`peer` timed out (or was reported gone); its players get the default action from `frame` on."""

    peer: str
    players: tuple[str, ...]
    frame: int


@dataclass(frozen=True)
class DesyncDetected:
    """Two checksums of the same confirmed frame differ."""

    frame: int
    local_checksum: str
    remote_checksum: str
    peer: str


@dataclass(frozen=True)
class WaitRecommendation:
    """This peer runs ahead of the others; skipping `skip_frames` ticks lets them catch up."""

    skip_frames: int


@dataclass(frozen=True)
class BadPacket:
    """A packet from `peer` was rejected; `error` says why. The session did not change."""

    peer: str
    code: str
    error: str


Event = NetworkInterrupted | NetworkResumed | Disconnected | DesyncDetected | WaitRecommendation | BadPacket
