"""Who holds which seat, as matches end and seats change holder: who is told what, and who goes on past
the match scene (now, or when they come back).

A participant away when their match ended, or when the grace period gave their seat to an AI, hears
which when they reconnect and then goes on past the match; one still connected but silent hears it at
once. `Seating` holds the behaviour; the state (`hub.seat_of`, ...) stays on the Hub.
"""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from app.live.agents import is_agent
from app.live.log_text import log_text
from app.live.match_room import MatchRoom
from app.live.seat import AGENT, HUMAN

if TYPE_CHECKING:
    from app.live.hub import Hub

log = logging.getLogger("coplay.server")

END_MESSAGES = {
    "completed": "The game is over. Thank you!",
    "partner_dropped": "Your partner left, so the game ended early.",
    "abandoned": "Everyone left the game.",
    "error": "The game stopped because of an error on our side.",
    "away": "You were away too long, so the game went on without you.",
    "ended_while_away": "The game ended while you were away.",
    "ended_by_researcher": "The researcher ended this game.",
    "study_ended": "The study has ended for you.",
}


class Seating:
    """Match ends and seat changes, for one Hub (call with its lock held)."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub

    def reconnected(self, participant: str, sid: str, had_socket: bool) -> None:
        """`participant` connected on socket `sid` (`had_socket`: they had one open already): a seat they
        still hold waits for them to rejoin; a match that went on without them is over for them."""
        seated = self.hub.seat_of.get(participant)
        if had_socket and seated is not None and seated[1].participant == participant:
            seated[0].seat_absent(seated[1], "reconnected")  # the new page has no game state to go on with
        if seated is not None and (seated[0].ended or seated[1].kind != HUMAN or seated[1].participant != participant):
            self.tell_what_happened_while_away(sid, seated[0])
            self.leave_match_scene(participant)

    def match_ended(self, room: MatchRoom, reason: str) -> None:
        """Close the match's record; its seat holders still connected hear why and go on past it."""
        hub = self.hub
        hub.metrics.matches_ended.labels(reason).inc()
        room.recording.close()
        hub.store.end_match(room.id, reason)
        hub.matches.pop(room.id, None)
        hub.ended_matches.append(room.id)
        for seat in room.seats.values():
            participant = seat.participant
            hub._close_stale_channel(participant, f"match {room.id} is over")
            if participant is None or hub.seat_of.get(participant, (None,))[0] is not room:
                continue
            if seat.kind == AGENT:
                hub.agent_seats.match_over(participant, room, reason)
                continue
            if seat.absent_since is not None:
                continue   # away when it ended (a stand-in played): they go on past it if they come back
            del hub.seat_of[participant]
            hub.send(seat, "match_end", {"match": room.id, "reason": reason,
                                         "message": room.end_message or END_MESSAGES[reason]})
            hub.flow.finish_match(participant)
            hub._send_scene(participant)

    def tell_what_happened_while_away(self, sid: str, room: MatchRoom) -> None:
        """A participant back after their match ended, or after an AI took their seat, hears which before the
        page moves on past the match."""
        reason = room.end_reason if room.ended and room.end_reason else "away"
        message = END_MESSAGES["ended_while_away"] if room.ended else END_MESSAGES["away"]
        self.hub.services.emit("match_end", {"match": room.id, "reason": reason, "message": message, "away": True},
                               to=sid)

    def leave_match_scene(self, participant: str) -> None:
        """A participant whose seat an AI took, or whose match ended while they were away, goes on past it."""
        self.hub.seat_of.pop(participant, None)
        self.hub.flow.finish_match(participant)

    def log_event(self, room: MatchRoom, kind: str, data: dict[str, Any]) -> None:
        """Record a match's event; a seat changing holder closes the old holder's channel and, when the grace
        period took it from a participant still connected, sends them on."""
        hub = self.hub
        if kind == "seat_changed" and data.get("by") in ("stand_in", "ai", "gone") and data.get("why") != "grace_expired":
            hub.metrics.seats_lost.labels(str(data.get("why", "unknown"))).inc()
        if kind in ("desync", "desyncs_repeated", "desync_settled", "seat_changed"):
            log.warning("match %s: %s %s", room.id, kind, log_text(data))
        hub.store.log_event(kind, data, match_id=room.id)
        if kind == "seat_changed":
            hub._close_stale_channel(data.get("participant"), f"seat {data.get('seat')} changed holder")
            if is_agent(data.get("participant")):
                hub.agent_seats.unseated(data["participant"], room)
        if kind == "seat_changed" and data.get("why") == "grace_expired" and data.get("participant"):
            self.send_on(room, data["participant"])

    def send_on(self, room: MatchRoom, participant: str) -> None:
        """A participant still connected but silent for longer than the grace period (their seat went to an
        AI) is told why and goes on past the match."""
        hub = self.hub
        sid = hub.sid_of.get(participant)
        if sid is None or hub.seat_of.get(participant, (None,))[0] is not room:
            return   # not connected: they go on past the match if they come back (connect)
        self.tell_what_happened_while_away(sid, room)
        self.leave_match_scene(participant)
        hub._send_scene(participant)
