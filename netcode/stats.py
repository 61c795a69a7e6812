"""Counters a session keeps, and the per-peer network view."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class SessionStats:
    """Totals since the session started."""

    rollbacks: int = 0
    rollback_frames: int = 0
    max_rollback_depth: int = 0
    depth_counts: dict[int, int] = field(default_factory=dict)
    stalls: int = 0
    desyncs: int = 0
    bad_packets: int = 0
    packets_sent: int = 0
    packets_received: int = 0
    bytes_sent: int = 0
    bytes_received: int = 0

    def add_rollback(self, depth: int) -> None:
        self.rollbacks += 1
        self.rollback_frames += depth
        self.max_rollback_depth = max(self.max_rollback_depth, depth)
        self.depth_counts[depth] = self.depth_counts.get(depth, 0) + 1

    def depth_percentile(self, q: float) -> int:
        """The rollback depth at quantile q (0..1) of all rollbacks; 0 when there were none."""
        total = sum(self.depth_counts.values())
        if not total:
            return 0
        rank = q * total
        seen = 0
        for depth in sorted(self.depth_counts):
            seen += self.depth_counts[depth]
            if seen >= rank:
                return depth
        return max(self.depth_counts)


@dataclass(frozen=True)
class PeerStats:
    """How one remote peer looks from here."""

    peer: str
    ping_ms: float | None
    frames_ahead: float
    remote_frame: int
    silent_ms: float
    interrupted: bool
    disconnected: bool
