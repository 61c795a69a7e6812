"""A match's seats: who plays each (a participant's page, a remote agent, a server bot) and their state.

Seat kinds: HUMAN (a participant's page), AI (a bot on the server, or, with runs="browser", local players of
its `host` seat's peer), AGENT (a remote agent process, app/live/agents.py). `Seat.gen` is the holder generation,
bumped at every change of holder (app/live/seat_holders.py).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from app.live.protocol import EpisodeDone
from scenes.ai_seat import as_ai_seat

HUMAN, AI, AGENT = "human", "ai", "agent"
HELD = (HUMAN, AGENT)   # seats played by a connection (a participant's page, a remote agent process)
MAX_AHEAD_SECONDS = 10  # a seat's inputs may run at most this far past the last frame everyone has sent


class Bot(Protocol):
    def deliver(self, sender: str, data: str) -> None: ...
    def stop(self) -> None: ...


@dataclass
class Seat:
    addr: str
    players: tuple[str, ...]
    kind: str
    participant: str | None = None
    policy: Any = None               # while an AI plays the seat: its policy spec or AISeat (scenes/ai_seat.py)
    bot: Bot | None = None
    gone: bool = False
    last_heard: float = 0.0
    done: EpisodeDone | None = None
    started_at: float | None = None  # metrics clock at this episode's match_start, until the seat's first packet
    gen: int = 0                     # holder generation: +1 at every change of holder
    heard: bool = False              # a packet of this episode came from the seat's holder
    absent_since: float | None = None  # a human seat held for its participant, who dropped (a stand-in plays it)
    rejoining: bool = False          # its participant came back after the seat's episode ended: next episode
    ping_ms: float | None = None     # the relay's round trip to this seat (smoothed), see MatchRoom._time_round_trip
    sent_at: dict[float, float] = field(default_factory=dict)   # its packets' "t" -> server ms they arrived (last 64)
    host: str | None = None          # an AI seat with runs="browser": the seat whose peer plays it (see MatchRoom.hosted)

    def ai_info(self, match_seed: int) -> dict[str, Any] | None:
        """The settings of the AI playing the seat, with its seed in the match (AISeat.record); None for none."""
        if self.policy is None:
            return None
        ai = as_ai_seat(self.policy).record(match_seed, self.addr)
        if ai["runs"] == "browser" and self.host is None:
            ai["runs"] = "server"   # no participant's page to host it (e.g. every human seat was filled with AI)
        return ai

    def info(self, match_seed: int) -> dict[str, Any]:
        """The seat as the recording header and the store list it."""
        ai = self.ai_info(match_seed)
        participant = None if self.kind == AGENT else self.participant
        return {"players": list(self.players), "kind": self.kind, "participant": participant,
                "policy": ai["policy"] if ai else None, "ai": ai}
