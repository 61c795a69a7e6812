"""Who holds a match's seats: drops, returns, stand-ins and hand-overs (MatchRoom's `SeatHolders` part).

Seats outlive connections. A human seat whose participant drops is held for `grace_s`: a
stand-in bot (the scene's `stand_in` policy) plays it from the next frame the server has not
logged for it, so partners never wait; when the participant comes back, `rejoin` stops the
stand-in, names the next unlogged frame, and sends their page the episode's input log to
re-simulate before it plays on. After the grace period `seat_lost` gives the seat to an AI or
ends the match. Every change of holder bumps the seat's holder generation (`Seat.gen`, in
every packet; netcode.codec) and is recorded as a `seat_changed` event at the frame the new
holder plays first: the seat segments.

A remote AI seat held by an agent process (kind AGENT, app/live/agents.py) is played like a human
seat, over its own connection; when the agent drops or falls silent, `agent_lost` gives the seat to
its fallback at once (no grace period: an agent does not come back), and `agent_meta` records the
metadata the agent attaches to its steps.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from app.live.agents import MetaEntry
from app.live.protocol import ProtocolError
from app.live.seat import AGENT, AI, HELD, HUMAN, MAX_AHEAD_SECONDS, Seat
from scenes.ai_seat import as_ai_seat

if TYPE_CHECKING:
    from app.live.input_log import InputLog
    from app.live.match_room import MatchHost, MatchRoom, MatchSettings


class SeatHolders:
    """The seat-holder part of MatchRoom (app/live/match_room.py), the only class it is mixed into."""

    if TYPE_CHECKING:   # MatchRoom's, which these methods use
        id: str
        settings: MatchSettings
        seats: dict[str, Seat]
        host: MatchHost
        recording: Any
        seed: int
        episode: int
        ended: bool
        log: InputLog

        def end(self, reason: str, message: str | None = None) -> None: ...
        def hosted(self, seat: Seat) -> list[Seat]: ...
        def start_payload(self, seat: Seat) -> dict[str, Any]: ...

    @property
    def _room(self) -> MatchRoom:
        """This room, as the host's methods take it."""
        return cast("MatchRoom", self)

    def seat_absent(self, seat: Seat, why: str) -> None:
        """A human seat's participant dropped (closed connection, silence, a second page): a stand-in
        plays the seat while it is held for them (`grace_s`; with 0, `seat_lost` at once)."""
        if seat.kind == AGENT:
            self.agent_lost(seat, why)
            return
        if seat.gone or seat.kind != HUMAN or self.ended:
            return
        if seat.absent_since is not None:
            if seat.rejoining:   # came back for the next episode, and dropped again before it
                seat.rejoining, seat.absent_since = False, self.host.now()
            return
        if self.settings.grace_s <= 0:
            self.seat_lost(seat, why)
            return
        seat.absent_since, seat.rejoining, seat.policy = self.host.now(), False, self.settings.stand_in
        frame = self._hand_over(seat, "stand_in", why)
        seat.bot = self.host.start_bot(self._room, seat, self.log.snapshot())
        self._tell_partners(seat, "absent", frame)

    def rejoin(self, seat: Seat) -> None:
        """The seat's participant is back (a new page, or one that fell silent): their page plays the seat
        again from the next frame the server has not logged for it, after re-simulating the log."""
        if seat.gone or seat.kind != HUMAN or self.ended:
            raise ProtocolError("this match has no seat to take back")
        if seat.done is not None:
            seat.rejoining = True   # this episode is over for the seat: it is theirs from the next one
            return
        frame = self._return_to(seat)
        seat.last_heard, seat.heard = self.host.now(), False
        self.host.send(seat, "match_start", {**self.start_payload(seat),
                                             "resume": {"frame": frame, "inputs": self.log.snapshot()}})
        self._tell_partners(seat, "back", frame)

    def _return_to(self, seat: Seat) -> int:
        seat.absent_since, seat.rejoining, seat.policy = None, False, None
        return self._hand_over(seat, "participant", "rejoined")

    def seat_lost(self, seat: Seat, why: str) -> None:
        """A human seat is given up (grace period over, or the page failed): an AI takes it, or the match ends."""
        if seat.gone or seat.kind != HUMAN or self.ended:
            return
        humans_left = [s for s in self.seats.values() if s.kind == HUMAN and not s.gone and s is not seat]
        seat.absent_since = None
        if self.settings.on_partner_drop == "ai" and humans_left:
            self._give_to_ai(seat, self.settings.fill_policy, why)
            return
        self._hand_over(seat, "gone", why)
        seat.gone = True
        self.end("partner_dropped" if humans_left else "abandoned")

    def _give_to_ai(self, seat: Seat, policy: Any, why: str) -> None:
        """A server bot playing `policy` takes the seat from the next unlogged frame; partners are told."""
        seat.policy = policy
        frame = self._hand_over(seat, "ai", why)
        seat.kind, seat.participant = AI, None
        seat.bot = self.host.start_bot(self._room, seat, self.log.snapshot())
        self._tell_partners(seat, "replaced", frame)

    def _hand_over(self, seat: Seat, by: str, why: str) -> int:
        """The seat changes holder (`by`: stand_in, participant, ai, gone): stop its bot, bump its holder
        generation, record the segment. Returns the first frame the new holder plays."""
        if seat.bot is not None:
            seat.bot.stop()
            seat.bot = None
        seat.gen += 1
        frame = min(len(self.log.actions[p]) for p in seat.players)
        ai = seat.ai_info(self.seed) if by in ("stand_in", "ai") else None
        data = {"seat": seat.addr, "players": list(seat.players), "participant": seat.participant, "why": why,
                "by": by, "policy": ai["policy"] if ai else None, "gen": seat.gen, "ai": ai}
        self.recording.event("seat_changed", data, self.episode, frame)
        self.host.log_event(self._room, "seat_changed", data)
        for hosted in self.hosted(seat) if by != "gone" else ():
            self._hosted_moved(hosted, "browser" if by == "participant" else "server", f"host_{why}", frame)
        return frame

    def _hosted_moved(self, ai: Seat, runs: str, why: str, frame: int) -> None:
        """Record that the AI seat `ai` (runs="browser") now runs in its host's browser or on the server."""
        info = {**(ai.ai_info(self.seed) or {}), "runs": runs}
        data = {"seat": ai.addr, "players": list(ai.players), "participant": None, "why": why, "by": "ai",
                "policy": info.get("policy"), "gen": ai.gen, "ai": info}
        self.recording.event("seat_changed", data, self.episode, frame)
        self.host.log_event(self._room, "seat_changed", data)

    def _tell_partners(self, seat: Seat, status: str, frame: int) -> None:
        """Tell the other participants, neutrally: "absent", "back", or "replaced" (naming the AI only
        when the scene reveals AI seats)."""
        payload: dict[str, Any] = {"match": self.id, "seat": seat.addr, "players": list(seat.players),
                                   "status": status, "frame": frame}
        if status == "replaced" and as_ai_seat(seat.policy).reveals(self.settings.reveal_ai):
            payload["by"] = "ai"
        for other in self.seats.values():
            if other is not seat and other.kind == HUMAN and not other.gone and other.absent_since is None:
                self.host.send(other, "seat_changed", payload)

    def check_seats(self, absent_after_s: float, silent_after_s: float) -> None:
        """Hold the seats of participants who fell silent (`absent_after_s` once they sent a packet this
        episode, else `silent_after_s`); give up seats held longer than the grace period."""
        now = self.host.now()
        for seat in list(self.seats.values()):
            if seat.kind not in HELD or seat.gone:
                continue
            if seat.absent_since is not None:
                if not seat.rejoining and now - seat.absent_since > self.settings.grace_s:
                    self.seat_lost(seat, "grace_expired")
            elif seat.done is None and now - seat.last_heard > (absent_after_s if seat.heard else silent_after_s):
                self.seat_absent(seat, "silent")

    # ------------------------------------------------------------ remote agents

    def agent_lost(self, seat: Seat, why: str) -> None:
        """A remote agent stopped answering (closed connection, silence): its seat's fallback plays on from
        the next unlogged frame (a server bot, as a dropped human's seat); with no fallback, as the scene's
        on_partner_drop says (a fill_policy bot, or the match ends)."""
        if seat.gone or seat.kind != AGENT or self.ended:
            return
        fallback = as_ai_seat(seat.policy).fallback_seat()
        if fallback is None and self.settings.on_partner_drop == "ai":
            fallback = as_ai_seat(self.settings.fill_policy)
        humans_left = [s for s in self.seats.values() if s.kind == HUMAN and not s.gone]
        if fallback is None or not humans_left:
            self._hand_over(seat, "gone", why)
            seat.gone = True
            self.end("partner_dropped" if humans_left else "abandoned")
            return
        self._give_to_ai(seat, fallback, why)

    def agent_meta(self, seat: Seat, match: str, entries: list[MetaEntry]) -> None:
        """Record the metadata a remote agent attached to its steps (checked by app.live.agents)."""
        if match != self.id:
            raise ProtocolError(f"agent_meta for match {match!r}, but this seat is in match {self.id!r}")
        limit = min(len(self.log.actions[p]) for p in seat.players) + MAX_AHEAD_SECONDS * self.settings.fps
        for entry in entries:
            if entry.episode == self.episode and entry.frame > limit:
                raise ProtocolError(f"agent_meta names frame {entry.frame}, past the seat's inputs ({limit})")
        for entry in entries:
            if entry.episode == self.episode:   # else in flight across an episode change: dropped
                self.recording.event("agent_meta", {"seat": seat.addr, "players": list(seat.players),
                                                    "meta": entry.meta}, self.episode, entry.frame)
