"""What a headless participant saw and did (`ParticipantResult`), and how its run ends (`_Finished`).

The headless participant (app/participant/headless.py) and the load tester's protocol-level participant
(app/loadtest/wire_participant.py) fill the same record, so the load test's summary reads both alike.
"""
from __future__ import annotations

import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

if TYPE_CHECKING:
    from netcode.client import MatchClient

SEAT_TAKEN_OVER = "seat_taken_over"   # a match's reason when the server moved us on without a match_end


@dataclass
class ParticipantResult:
    """What one headless participant saw and did. `ok` is the load tester's pass mark."""

    completed: bool                       # reached the end scene
    reason: str                           # "completed", "timeout", "dropped at frame F", "error: ...", ...
    outcome: str | None = None            # the end scene's outcome
    completion_code: str | None = None
    scenes: list[dict[str, Any]] = field(default_factory=list)       # {index, kind, id}
    matches: list[dict[str, Any]] = field(default_factory=list)      # {match, scene, seat, players, episodes, reason}
    #   reason: match_end's ("completed", "error", ...), SEAT_TAKEN_OVER, or None (still running / run ended)
    episodes: list[dict[str, Any]] = field(default_factory=list)     # {match, episode, status, end_frame, checksum..}
    desyncs: list[dict[str, Any]] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)       # `error` events received
    disconnects: list[dict[str, Any]] = field(default_factory=list)  # seat_changed and session Disconnected events
    stats: dict[str, int] = field(default_factory=dict)              # rollbacks, stalls, max_rollback_depth, ...
    connect_seconds: float | None = None                             # entry GET to the first `scene`
    waiting_seconds: list[float] = field(default_factory=list)       # `ready` to `match_start`, per match
    first_frame_seconds: list[float] = field(default_factory=list)   # `match_start` to frame 1, per episode
    total_seconds: float = 0.0
    reloads: int = 0
    rejoins: list[int | None] = field(default_factory=list)          # frames the server resumed this seat at
    resumed_scenes: list[int] = field(default_factory=list)          # scene indexes the server resent after a reload
    dropped: bool = False
    relay_rtt_ms: list[float] = field(default_factory=list)          # netcode ping through the relay, sampled
    link: dict[str, Any] | None = None                               # shaped-link counters (--profile)
    packets_by_path: dict[str, int] = field(default_factory=dict)    # packets sent: "channel" / "socketio"
    channel_closes: list[dict[str, Any]] = field(default_factory=list)  # match channels the server closed

    @property
    def ok(self) -> bool:
        """Completed the flow without a desync."""
        return self.completed and not self.desyncs

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok}

    def add_episode(self, client: MatchClient, status: str, checksum: str | None, play_s: float) -> None:
        """An episode `client` played for `play_s` seconds, ended with `status` ("done", "unfinished (...)"):
        its record, and its session's figures added to the totals (`stats`)."""
        session, stats = client.session, client.session.stats
        self.episodes.append({
            "match": client.match, "episode": client.episode, "seat": client.seat, "players": list(client.players),
            "status": status, "end_frame": session.end_frame if status == "done" else None,
            "frames": session.current_frame, "checksum": checksum,
            "rollbacks": stats.rollbacks, "max_rollback_depth": stats.max_rollback_depth, "stalls": stats.stalls,
        })
        totals = self.stats
        for key in ("rollbacks", "rollback_frames", "stalls", "bad_packets", "packets_sent", "packets_received"):
            totals[key] = totals.get(key, 0) + getattr(stats, key)
        totals["max_rollback_depth"] = max(totals.get("max_rollback_depth", 0), stats.max_rollback_depth)
        totals["frames"] = totals.get("frames", 0) + session.current_frame
        totals["play_ms"] = totals.get("play_ms", 0) + int(play_s * 1000)


def match_record(result: ParticipantResult, matches: dict[str, dict[str, Any]], ready_at: dict[int, float],
                 scene: int | None, start: Mapping[str, Any], now: float) -> dict[str, Any]:
    """The result's record of the match `start` (a match_start) is about; a new match's record is added,
    with the time from `ready` in `scene` to now as its wait in the waiting room."""
    match = start["match"]
    record = matches.get(match)
    if record is None:
        if scene is not None and scene in ready_at:
            result.waiting_seconds.append(round(now - ready_at.pop(scene), 3))
        record = {"match": match, "scene": scene, "seat": start.get("seat"),
                  "players": list(start.get("players") or []), "episodes": 0, "reason": None, "message": None}
        matches[match] = record
        result.matches.append(record)
    return record


def crash_reason(error: BaseException) -> str:
    """A participant's failure reason for an unexpected exception: type, message and where it was raised."""
    where = traceback.extract_tb(error.__traceback__)[-1]
    return f"crashed: {type(error).__name__}: {error} ({Path(where.filename).name}:{where.lineno})"


class _Finished(Exception):
    """Raised inside the driver loop to end the run with `reason`."""

    def __init__(self, reason: str, completed: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.completed = completed
