"""The Hub's side of remote agents: their connections, the remote AI seats they take, the metadata
they attach, and telling them when a seat or match is over.

Tokens, connection ids and the metadata checks themselves are app/live/agents.py; this module is where
they meet the Hub's sockets and seats. The Hub's state (`hub.agents`, `hub.seat_of`, ...) stays on the
Hub; `AgentSeats` holds only the metadata rate limits of each agent connection.
"""
from __future__ import annotations

import logging
import math
from collections import Counter
from typing import TYPE_CHECKING, Any

from app.live.agents import META_PER_SECOND, AgentTokenError, MetaLimit, is_agent, parse_agent_meta
from app.live.match_room import MatchRoom
from app.live.seat import AGENT, AI, Seat
from app.live.protocol import ProtocolError
from app.live.seating import END_MESSAGES
from scenes.ai_seat import as_ai_seat
from scenes.match import Match

if TYPE_CHECKING:
    from app.live.hub import Hub

log = logging.getLogger("coplay.server")


class AgentSeats:
    """Remote agents' connections and seats, for one Hub (call with its lock held, except `connect`)."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.meta_limits: dict[str, MetaLimit] = {}   # agent connection -> its metadata budget

    def connect(self, sid: str, token: Any) -> None:
        """Accept socket `sid` as a connection of the agent whose token `token` is: it is free to take a
        remote seat of that agent from the next match on. Raises AgentTokenError, having changed nothing,
        for a missing or wrong token, or when the agent connects too often just now."""
        hub = self.hub
        with hub.lock:
            try:
                name = hub.agents.check(token)
            except AgentTokenError:
                hub.metrics.refused("agent_token")
                raise
            conn = hub.agents.open(name)
            if not hub.rate_limit.open(sid, conn, hub.services.now()):
                hub.agents.close(conn)
                hub.metrics.refused("connect_rate")
                raise AgentTokenError("this agent connects too often just now: wait a few seconds")
            hub.sid_of[conn] = sid
            hub.participant_of[sid] = conn
            self.meta_limits[conn] = MetaLimit(hub.services.now())
            log.info("agent connection %s opened", conn)
            hub.store.log_event("agent_connect", {"agent": name, "connection": conn})

    def disconnected(self, sid: str) -> None:
        hub = self.hub
        conn = hub.participant_of.pop(sid)
        hub._close_budget(sid)
        hub.sid_of.pop(conn, None)
        self.meta_limits.pop(conn, None)
        hub.agents.close(conn)
        hub.store.log_event("agent_disconnect", {"connection": conn})
        seated = hub.seat_of.get(conn)
        if seated is not None:
            seated[0].agent_lost(seated[1], "disconnected")

    def seat(self, seats: dict[str, Seat], fill: Any) -> None:
        """Give each remote AI seat of a starting match to a free connection of its agent; a seat whose
        agent has none plays its fallback (or the scene's fill_policy) from the start."""
        for seat in seats.values():
            ai = as_ai_seat(seat.policy) if seat.kind == AI else None
            if ai is None or ai.runs != "remote" or ai.agent is None:
                continue
            conn = self.hub.agents.take(ai.agent)
            if conn is not None:
                seat.kind, seat.participant = AGENT, conn
                continue
            log.warning("no agent %r connected for seat %s: its fallback plays it", ai.agent, seat.addr)
            seat.policy = ai.fallback_seat() or fill

    def seatable(self, scene_id: str) -> float:
        """How many matches of the scene the free agent connections can seat (inf: it has no remote seats)."""
        scene = self.hub.flow.experiment.scene_by_id(scene_id)
        assert isinstance(scene, Match)
        wanted = Counter(str(ai.agent) for ai in scene.seat_settings()[0].values() if ai.runs == "remote")
        return min((self.hub.agents.connected(name) // count for name, count in wanted.items()), default=math.inf)

    def meta(self, participant: str, payload: Any) -> None:
        """The `agent_meta` event: per-step metadata of an agent's seat, checked and rate-limited."""
        if not is_agent(participant):
            raise ProtocolError("agent_meta comes from remote agents only")
        match, entries = parse_agent_meta(payload)
        room, seat = self.hub._seat(participant)
        if not self.meta_limits[participant].allow(len(entries), self.hub.services.now()):
            raise ProtocolError(f"too much agent metadata: at most {META_PER_SECOND:g} steps a second")
        room.agent_meta(seat, match, entries)

    def unseated(self, conn: str, room: MatchRoom) -> None:
        """An agent lost its seat (a fallback plays it) while maybe still connected: it is told, and
        disconnected, since a silent agent process is not trusted with another match."""
        hub = self.hub
        if hub.seat_of.get(conn, (None,))[0] is room:
            del hub.seat_of[conn]
        sid = hub.sid_of.get(conn)
        if sid is not None:
            hub.services.emit("match_end", {"match": room.id, "reason": "seat_taken_over",
                                            "message": "the seat went to its fallback"}, to=sid)
            hub.services.disconnect(sid)

    def match_over(self, conn: str, room: MatchRoom, reason: str) -> None:
        """The agent's match ended: it is told why, and its connection is free for the next match."""
        hub = self.hub
        del hub.seat_of[conn]
        sid = hub.sid_of.get(conn)
        if sid is not None:
            hub.services.emit("match_end", {"match": room.id, "reason": reason,
                                            "message": room.end_message or END_MESSAGES[reason]}, to=sid)
            hub.agents.release(conn)
