"""Was a recorded input ever predicted by a peer? Answered from a recording's `predicted` events.

At the end of an episode every seat reports, per player it does not play, the frames it
ever simulated with a predicted input of that player (`P2PSession.predicted_frames`); the
match room records each report as a `predicted` event (docs/recording.md). For one frame
of one player the answer is:

- True when any other seat reported that frame predicted;
- False when every other seat of the match reported on that player, covering that frame,
  and none predicted it;
- None (unknown) otherwise: a seat left before reporting, an older client sent no report,
  or the report left the player out.

A holder that took a seat over mid-episode (an AI, a stand-in, the participant coming back)
replayed the frames before the takeover from the input log, so its report says nothing about
what the holder before it predicted there: it covers frames from the takeover on (a frame it
did predict still counts as True).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from app.data.recording import Recording


@dataclass(frozen=True)
class _Report:
    seat: str
    covers_from: int
    covers_to: int
    frames: dict[str, frozenset[int]]


class PredictedLookup:
    """`lookup(frame, player)` for one episode of a recording: True, False or None."""

    def __init__(self, recording: Recording, episode: int, owners: Mapping[str, str]) -> None:
        self.owners = dict(owners)
        self.seats = list((recording.header.get("seats") or {}).keys())
        self.reports: list[_Report] = []
        takeover: dict[str, int] = {}
        for event in recording.events:
            if event.get("episode") != episode:
                continue
            data = event.get("data") or {}
            kind = event.get("kind")
            if (kind == "seat_changed" and data.get("by") in ("ai", "stand_in", "participant")
                    and isinstance(data.get("seat"), str)):
                takeover[data["seat"]] = event.get("frame") or 0
            elif kind == "predicted" and isinstance(data.get("seat"), str) and isinstance(event.get("frame"), int):
                self.reports.append(_Report(data["seat"], takeover.get(data["seat"], 0), event["frame"],
                                            _frames(data.get("players"))))

    def __call__(self, frame: int, player: str) -> bool | None:
        owner = self.owners.get(player)
        peers = [seat for seat in self.seats if seat != owner]
        if not peers:
            return None
        covered: set[str] = set()
        for report in self.reports:
            if report.seat == owner or player not in report.frames:
                continue
            if frame in report.frames[player]:
                return True
            if report.covers_from <= frame < report.covers_to:
                covered.add(report.seat)
        return False if covered.issuperset(peers) else None


def _frames(players: Any) -> dict[str, frozenset[int]]:
    """{player: the frames in its [[start, end), ...] ranges} (malformed entries are skipped)."""
    out: dict[str, frozenset[int]] = {}
    if not isinstance(players, dict):
        return out
    for player, ranges in players.items():
        if isinstance(player, str) and isinstance(ranges, list):
            out[player] = frozenset(
                frame for pair in ranges
                if isinstance(pair, list) and len(pair) == 2 and all(type(x) is int for x in pair)
                for frame in range(max(pair[0], 0), pair[1]))
    return out
