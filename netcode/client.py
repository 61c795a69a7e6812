"""One participant's side of a relayed match episode, free of I/O.

`MatchClient` is built from the server's `match_start` payload and the game class. The
browser worker (in Pyodide) and the headless participant (in CPython) both drive it:
hand it relayed packets with `receive`, call `tick` once per frame with the local
players' actions, send what `outbox` returns, and when `done` is set send it as the
`episode_done` event (with the frames of each remote player this seat ever predicted).
A seat with no peers (a single-player match) sends its confirmed inputs and checksums to
the server instead, as to a spectator (`SERVER`), which acks them; so every match is recorded.
The server's AI seats (app/live/bots.py) are MatchClients too, fed by a policy.
See docs/protocol.md. `receive` may be called from another thread
than the one that ticks (the headless participant's Socket.IO reader does).
"""
from __future__ import annotations

from collections import deque
from typing import Any, Callable, Mapping, Sequence

from game.hashing import state_hash
from netcode.config import SessionConfig
from netcode.episode import EpisodeRunner
from netcode.events import DesyncDetected, Disconnected, Event, WaitRecommendation
from netcode.frame_ranges import within_report_limit
from netcode.p2p import P2PSession

SERVER = "server"   # the address a lone seat sends its confirmed inputs to (never a seat's address)


class RelayTransport:
    """The transport of a relayed session: packets to send (`take_outgoing`), packets received
    (`push`, safe from another thread, stamped with their arrival time; the session drains
    them with `receive`)."""

    def __init__(self) -> None:
        self.outgoing: list[tuple[str, str]] = []
        self.incoming: deque[tuple[str, str, float]] = deque()

    def send(self, to: str, data: str) -> None:
        self.outgoing.append((to, data))

    def take_outgoing(self) -> list[tuple[str, str]]:
        items, self.outgoing = self.outgoing, []
        return items

    def push(self, sender: str, data: str, received_at: float) -> None:
        self.incoming.append((sender, data, received_at))

    def receive(self) -> list[tuple[str, str, float]]:
        items = []
        while True:   # popleft, not copy-and-clear: a packet pushed meanwhile must not be lost
            try:
                items.append(self.incoming.popleft())
            except IndexError:
                return items


class MatchClient:
    """The local seat of one episode: session, env and the end-of-episode report.

    `preload` ({player: actions from frame 0}) is the input log of an episode already
    running, for a seat taken over mid-episode: while `catching_up`, tick at full speed; the
    packets of those ticks are not sent (the first tick after them resends every input), so a
    rejoining page does not flood the relay and peers see only frames played in real time.
    `start["gen"]` is the seat's holder generation (netcode.codec). A participant who takes their seat
    back gets `start["resume"]` = {"frame": F, "inputs": the input log}: it is the preload, and their
    own inputs count from frame F (call `catch_up`)."""

    def __init__(
        self, start: Mapping[str, Any], game_class: type, clock: Callable[[], float],
        preload: Mapping[str, Sequence[Any]] | None = None,
    ) -> None:
        self.match = start["match"]
        self.episode = start["episode"]
        self.seat = start["seat"]
        self.players = tuple(start["players"])
        self.env = game_class(start.get("config") or {})
        observations = self.env.reset(start["seed"])
        self.config = SessionConfig.for_env(self.env, **{"fps": start.get("fps", 60), **(start.get("netcode") or {})})
        peers = {addr: list(ps) for addr, ps in (start.get("peers") or {}).items() if addr != self.seat}
        self.transport = RelayTransport()
        self.clock = clock
        if preload is None and start.get("resume"):
            preload = start["resume"]["inputs"]
        self.session = P2PSession(self.config, self.players, peers, self.transport, clock,
                                  spectators=() if peers else (SERVER,), generation=start.get("gen", 0))
        if preload:
            self.session.preload(preload)
        self._preloaded = max((len(actions) for actions in (preload or {}).values()), default=0)
        self.runner = EpisodeRunner(self.session, self.env, observations)
        self.done: dict[str, Any] | None = None
        self.desyncs: list[dict[str, Any]] = []
        self.disconnects: list[dict[str, Any]] = []
        self._skip_frames = 0

    def receive(self, sender: str, data: str) -> None:
        """A packet relayed from seat `sender`; it is read at the next tick, but its arrival
        time is taken now, so the measured round trip does not include the wait for that tick."""
        self.transport.push(sender, data, self.clock())

    def tick(self, actions: Mapping[str, Any]) -> None:
        """One frame with the local players' actions (after the end: only answer peers)."""
        if self.done is not None:
            self.session.poll()
        else:
            # Catching up, no tick but the last builds packets: they would be dropped (a packet is
            # an encoding of every unacknowledged input, the bulk of a re-simulated frame's cost).
            self.session.muted = self.catching_up and self.session.current_frame + 1 < self._preloaded
            self.runner.tick(actions)
            self.session.muted = False
            if self.catching_up:
                self.transport.take_outgoing()
            if self.runner.done:
                self.done = {"match": self.match, "episode": self.episode, "frame": self.session.current_frame,
                             "checksum": self.runner.final_checksum(),
                             "predicted": within_report_limit(self.session.predicted_frames())}
        self._take_events(self.session.events())

    def catch_up(self, actions: Mapping[str, Any]) -> int:
        """Re-simulate the preloaded frames at once (new frames of the local players get `actions`);
        returns the ticks run."""
        ticks = 0
        while self.catching_up:
            self.tick(actions)
            ticks += 1
        return ticks

    @property
    def catching_up(self) -> bool:
        """Preloaded frames are still ahead, and nothing (a stall, the episode's end) holds the session."""
        session = self.session
        return (self.done is None and session.current_frame < self._preloaded and not session.stalled
                and session.end_frame is None)

    def outbox(self) -> list[dict[str, Any]]:
        """The `packet` events to send now."""
        return [{"match": self.match, "episode": self.episode, "to": to, "data": data}
                for to, data in self.transport.take_outgoing()]

    def take_skip_frames(self) -> int:
        """Ticks the loop should leave out to let slower peers catch up (time sync's
        recommendation), summed since the last call; delay the schedule by that many frames."""
        skip, self._skip_frames = self._skip_frames, 0
        return skip

    @property
    def observations(self) -> dict[str, Any]:
        return self.runner.observations

    def render(self) -> list[dict[str, Any]]:
        """The env's draw primitives (empty when it has no render())."""
        render = getattr(self.env, "render", None)
        return render() if callable(render) else []

    def stats(self) -> dict[str, Any]:
        """What the HUD and window.coplay show."""
        stats = self.session.stats
        pings = [remote.ping_ms for remote in self.session.remotes.values()]
        known = [p for p in pings if p is not None]
        return {
            "frame": self.session.current_frame, "confirmed_frame": self.session.confirmed_frame,
            "rollbacks": stats.rollbacks, "max_rollback_depth": stats.max_rollback_depth, "stalls": stats.stalls,
            "ping_ms": round(max(known), 1) if known else None, "desyncs": len(self.desyncs),
            "done": self.done is not None,
        }

    def checksum(self) -> str:
        return state_hash(self.env.get_state())

    def _take_events(self, events: list[Event]) -> None:
        for event in events:
            if isinstance(event, DesyncDetected):
                self.desyncs.append({"match": self.match, "episode": self.episode, "frame": event.frame,
                                     "local": event.local_checksum, "remote": event.remote_checksum,
                                     "peer": event.peer})
            elif isinstance(event, Disconnected):
                self.disconnects.append({"match": self.match, "episode": self.episode, "seat": event.peer,
                                         "players": list(event.players), "frame": event.frame})
            elif isinstance(event, WaitRecommendation):
                self._skip_frames += event.skip_frames
