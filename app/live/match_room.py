"""One match on the server: seats, episodes, the relay, the input log and checksums.

The room is I/O-free: it talks to the outside through the `MatchHost` it is given
(emit to a seat, start a bot, say the match ended, run the referee, the clock) and writes
to its recording. The server's socket handlers call `relay`, `episode_done`, `seat_absent` and `rejoin`.

Seats' reports are not trusted: the room's `Referee` re-simulates the confirmed inputs
(`referee_work`, a chunk at a time, which the host runs in a background task), records the
server's own checksums, names a seat whose checksum differs from the server's
(`desync_settled`), and ends an episode only at the frame where the re-simulated game ended.

Who holds each seat (drops, returns, stand-ins, remote agents) is the `SeatHolders` part
(app/live/seat_holders.py); the seats themselves are app/live/seat.py's.

An AI seat with runs="browser" has a `host` seat: its players are local players of the host's peer
(netcode-wise the host seat plays them, in its packets), while the log, the recording and the export
attribute them to the AI seat. Whoever holds the host seat plays them: the participant's worker, or
the host seat's bot (stand-in or AI) on the server, which plays them with the AI seat's policy.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any, Protocol

from app.live.input_log import InconsistentInput, InputLog
from app.live.metrics import Metrics
from app.live.protocol import EpisodeDone, PacketEvent, ProtocolError
from app.live.referee import Referee
from app.live.seat import AGENT, AI, HELD, HUMAN, MAX_AHEAD_SECONDS, Bot, Seat
from app.live.seat_holders import SeatHolders
from game.rng import Rng
from game.spaces import Space
from netcode import codec
from netcode.client import SERVER
from netcode.config import SessionConfig
from netcode.errors import NetcodeError
from game.paced_policy import policy_seed
from scenes.ai_seat import as_ai_seat, browser_policy_spec

REFEREE_LAG = 120       # frames the referee may fall behind the confirmed inputs before it is run
_UNCHECKED = object()


class MatchHost(Protocol):
    def send(self, seat: Seat, event: str, payload: dict[str, Any]) -> None: ...
    def start_bot(self, room: MatchRoom, seat: Seat, preload: dict[str, list[Any]] | None) -> Bot: ...
    def match_ended(self, room: MatchRoom, reason: str) -> None: ...
    def log_event(self, room: MatchRoom, kind: str, data: dict[str, Any]) -> None: ...
    def settle(self, room: MatchRoom) -> None:
        """Call `room.referee_work()` soon, off the relay's path, until it returns False."""
    def now(self) -> float: ...


@dataclass
class MatchSettings:
    """What the room needs of the match scene and the game."""

    game: str
    config: dict[str, Any]
    players: tuple[str, ...]
    action_spaces: dict[str, Space]
    episodes: int
    fps: int
    netcode: dict[str, Any]
    keys: dict[str, Any]
    on_partner_drop: str
    fill_policy: Any                 # a policy spec or AISeat, as `Seat.policy`
    grace_s: float = 15.0
    stand_in: Any = "idle"
    reveal_ai: bool = False


@dataclass
class MatchRoom(SeatHolders):
    id: str
    scene_id: str
    settings: MatchSettings
    seats: dict[str, Seat]
    host: MatchHost
    recording: Any
    seed: int
    game_class: type
    episode: int = -1
    episode_seed: int = 0
    ended: bool = False
    end_reason: str | None = None
    log: InputLog = field(init=False)
    checks: dict[int, dict[str, str]] = field(default_factory=dict)
    desync_frames: set[int] = field(default_factory=set)   # this episode's check frames whose checksums differ
    metrics: Metrics = field(default_factory=lambda: Metrics(process=False))
    referee: Referee | None = None
    faults: dict[str, int] = field(default_factory=dict)   # seat -> frames this episode it reported wrongly
    end_message: str | None = None   # what the participants are told when it ends, if not the reason's usual text
    rtt_samples: deque[float] = field(default_factory=lambda: deque(maxlen=256))   # recent round trips, ms

    def __post_init__(self) -> None:
        self._rng = Rng(self.seed)
        self.log = InputLog(self.settings.players)
        self._owner = {p: seat for seat in self.seats.values() for p in seat.players}
        self.check_every = int(self.settings.netcode.get("desync_interval", SessionConfig.desync_interval))
        self._referee_due = False   # run the referee at the end of this relay
        self._faults_recorded: set[tuple[str, str]] = set()   # (seat, reason) already in a desync_settled
        self._desyncs = 0            # desyncs recorded this episode
        self._unlogged_desyncs = 0   # of those, the ones after the first not yet told to the host
        self._hosting = any(seat.host is not None for seat in self.seats.values())   # an AI seat runs="browser"

    # ------------------------------------------------------------ episodes

    def start_next_episode(self) -> None:
        """Begin the next episode with a fresh seed: every seat (re)starts its session at frame 0."""
        self.episode += 1
        self.episode_seed = self._rng.randbelow(1 << 31)
        self.log = InputLog(self.settings.players)
        self.checks.clear()
        self.desync_frames.clear()
        self.faults = {}
        self._faults_recorded = set()
        self.referee = Referee(self.game_class(self.settings.config), self.episode_seed, self.settings.players,
                               self.check_every)
        self.recording.episode(self.episode, self.episode_seed)
        self._desyncs = self._unlogged_desyncs = 0
        now = self.host.now()
        started = self.metrics.clock()
        for seat in self.seats.values():
            seat.done = None
            seat.last_heard = now
            seat.heard = False
            seat.started_at = started if seat.kind == HUMAN else None
            if seat.gone or seat.host is not None:
                continue
            if seat.rejoining:
                self._return_to(seat)
            if seat.kind in HELD and seat.absent_since is None:
                self.host.send(seat, "match_start", self.start_payload(seat))
            else:
                if seat.bot is not None:
                    seat.bot.stop()
                seat.bot = self.host.start_bot(self, seat, None)

    def start_payload(self, seat: Seat) -> dict[str, Any]:
        s = self.settings
        hosted = self.hosted(seat)
        payload = {
            "match": self.id, "episode": self.episode, "episodes": s.episodes, "seed": self.episode_seed,
            "seat": seat.addr, "gen": seat.gen, "players": self.net_players(seat),
            "peers": {a: self.net_players(o) for a, o in self.seats.items() if a != seat.addr and o.host is None},
            "ai_peers": [a for a, o in self.seats.items() if a != seat.addr and o.kind == AI and not o.gone
                         and as_ai_seat(o.policy).reveals(s.reveal_ai)],
            "game": s.game, "config": s.config, "fps": s.fps, "netcode": s.netcode, "keys": s.keys,
        }
        if hosted and seat.kind == HUMAN:
            payload["local_ai"] = {p: settings for ai in hosted for p, settings in self.local_ai(ai).items()}
        if seat.kind == AGENT:   # the remote agent paces its actions as a server bot of the seat would
            ai = as_ai_seat(seat.policy)
            payload["pacing"] = {"reaction_delay_frames": ai.reaction_delay_frames, "action_repeat": ai.action_repeat}
        return payload

    def hosted(self, seat: Seat) -> list[Seat]:
        """The AI seats (runs="browser") whose players `seat`'s peer plays."""
        return [o for o in self.seats.values() if o.host == seat.addr and not o.gone]

    def net_players(self, seat: Seat) -> list[str]:
        """The players `seat`'s peer plays: its own and those of the AI seats it hosts."""
        return [*seat.players, *(p for o in self.hosted(seat) for p in o.players)]

    def local_ai(self, ai: Seat) -> dict[str, dict[str, Any]]:
        """How the host's worker plays the AI seat `ai` this episode: {player: {policy, seed, reaction_delay_frames,
        action_repeat}}, each seed the one a server bot would give that player (game.paced_policy.policy_seed)."""
        settings = as_ai_seat(ai.policy)
        base = settings.seat_seed(self.seed, ai.addr)
        return {p: {"policy": browser_policy_spec(settings), "seed": policy_seed(base, self.episode, i),
                    "reaction_delay_frames": settings.reaction_delay_frames, "action_repeat": settings.action_repeat}
                for i, p in enumerate(ai.players)}

    def episode_done(self, seat: Seat, done: EpisodeDone) -> None:
        if self.ended and done.match == self.id:
            return   # in flight when the match ended (e.g. the server ended it on a stalled seat): harmless
        if done.match != self.id or done.episode != self.episode:
            raise ProtocolError(f"episode_done is for match {done.match} episode {done.episode}, "
                                f"but this seat is in episode {self.episode} of match {self.id}")
        if done.predicted is not None:
            plays = self.net_players(seat)
            for player in done.predicted:
                if player not in self._owner or player in plays:
                    others = [p for p in self.settings.players if p not in plays]
                    raise ProtocolError(f"predicted names {player!r}; a seat reports only the players it does "
                                        f"not play: {others}")
        seat.done = done
        self.recording.checksum(self.episode, done.frame, done.checksum, seat.addr)
        if done.predicted is not None:
            self.recording.event("predicted", {"seat": seat.addr, "players": done.predicted}, self.episode, done.frame)
        self._try_end_episode()

    def _try_end_episode(self) -> None:
        """Once every seat says the episode is over, end it where the re-simulated game ended.

        A seat that claimed another end (frame or final checksum) is at fault. A claim at a frame
        the re-simulation passed without the game ending is refused (the seat must report again);
        a claim past the inputs the server has waits for them."""
        live = [s for s in self.seats.values() if not s.gone and s.host is None]
        referee = self.referee
        if self.ended or referee is None or any(s.done is None for s in live):
            return
        if referee.behind:
            self.host.settle(self)
            return
        end = referee.ended_at
        if end is None:
            for s in live:
                if s.done is not None and s.done.frame <= referee.frame:
                    self._fault(s.addr, s.done.frame, "episode_not_over", {"claimed": s.done.checksum})
                    s.done = None
            return
        server = referee.checksums[end]
        for s in live:
            if s.done is not None and (s.done.frame, s.done.checksum) != (end, server):
                self._fault(s.addr, end, "episode_end",
                            {"claimed_frame": s.done.frame, "claimed": s.done.checksum, "server": server})
        ends = {(s.done.frame, s.done.checksum) for s in live if s.done}
        data = {"frames": {s.addr: s.done.frame for s in live if s.done},
                "checksums": {s.addr: s.done.checksum for s in live if s.done}}
        self.recording.event("episode_end", {**data, "server_checksum": server, "faults": dict(self.faults)},
                             self.episode, end)
        if len(ends) > 1:
            self._desync(end, {"reason": "different final states", **data}, {"episode": self.episode, **data})
        self._log_repeated_desyncs()
        if self.episode + 1 < self.settings.episodes:
            self.start_next_episode()
        else:
            self.end("completed")

    def end(self, reason: str, message: str | None = None) -> None:
        """End the match with `reason` (a match status); `message`, if given, is what its participants see."""
        if self.ended:
            return
        self.ended, self.end_reason = True, reason
        self.end_message = message
        self._log_repeated_desyncs()
        for seat in self.seats.values():
            if seat.bot is not None:
                seat.bot.stop()
        self.recording.event("match_end", {"reason": reason}, self.episode)
        self.host.match_ended(self, reason)

    # ------------------------------------------------------------ relay

    def relay(self, sender: Seat, event: PacketEvent) -> None:
        """Check a packet from `sender`, log its inputs and checksums, and forward it.

        Nothing changes unless the whole packet is valid."""
        began = self.metrics.clock()
        if event.match != self.id:
            raise ProtocolError(f"packet for match {event.match!r}, but this seat is in match {self.id!r}")
        if event.episode != self.episode:
            return  # in flight across an episode change: expected, and harmless to drop
        target = self.seats.get(event.to)
        to_server = event.to == SERVER and all(s is sender or s.host == sender.addr for s in self.seats.values())
        if not to_server and (target is None or target is sender or target.host is not None):
            raise ProtocolError(f"'to' must be another seat of this match: {sorted(self.seats)}")
        try:
            packet = codec.decode(event.data)
        except NetcodeError as error:
            raise ProtocolError(str(error)) from None
        if packet.kind != ("confirmed" if to_server else "input"):
            sends = "the lone seat sends confirmed packets to the server" if to_server else "seats send input packets"
            raise ProtocolError(f"{sends}, got {packet.kind!r}")
        checks = packet.checks
        check_every = self.check_every
        for frame, _ in checks:
            if not (check_every and frame % check_every == 0):
                raise ProtocolError(f"checksum of frame {frame}, which is not a check frame "
                                    f"(every {check_every}th)")
        if packet.gen != sender.gen:
            if packet.gen > sender.gen:
                raise ProtocolError(f"holder generation {packet.gen} of seat {sender.addr!r} was never given "
                                    f"(it is {sender.gen})")
            if sender.absent_since is not None:
                self.rejoin(sender)   # a page that fell silent plays on: it takes its seat back, re-simulating
            return   # a previous holder's packet, in flight when the seat changed hands
        inputs = packet.inputs
        log = self.log
        limit = log.complete + MAX_AHEAD_SECONDS * self.settings.fps
        plays = self.net_players(sender) if self._hosting else sender.players
        for player, start, actions in inputs:
            if player not in plays:
                raise ProtocolError(f"seat {sender.addr!r} sent inputs for {player!r}, which it does not play")
            if start + len(actions) > limit:
                raise ProtocolError(f"inputs of {player!r} reach frame {start + len(actions)}, more than "
                                    f"{MAX_AHEAD_SECONDS} s past the last frame every seat has sent ({log.complete})")
            self._check_actions(player, actions)
        try:
            for player, start, actions in inputs:
                log.add(player, start, actions)
        except InconsistentInput as error:
            raise ProtocolError(str(error)) from None
        now = self.host.now()
        sender.last_heard = now
        sender.heard = True
        if target is not None:
            self._time_round_trip(sender, target, packet, now)
        self._write_complete_frames()
        if checks:
            reported = self.checks.get
            addr = sender.addr
            for frame, checksum in checks:
                seen = reported(frame)
                if seen is None or addr not in seen:   # most checks are resends of ones already logged
                    self._checksum(sender, frame, checksum)
        if sender.started_at is not None and sender.kind == HUMAN:
            self.metrics.first_packet_seconds.observe(began - sender.started_at)
            sender.started_at = None
        if to_server:
            self._ack(sender, packet.t)
            self.metrics.relayed(len(event.data), began)
        elif target is not None and not target.gone:
            if target.bot is not None:
                target.bot.deliver(sender.addr, event.data)
            else:
                self.host.send(target, "packet", {"match": self.id, "episode": self.episode, "from": sender.addr,
                                                  "data": event.data})
            self.metrics.relayed(len(event.data), began)
        if self._referee_due:   # last: a host may run the referee at once, and it may end the episode
            self._referee_due = False
            self.host.settle(self)

    def _time_round_trip(self, sender: Seat, target: Seat, packet: codec.Packet, now: float) -> None:
        """The relay's round trip to `sender`: from the arrival of the partner's packet that `sender` echoes
        (its "t") to this packet, less the time `sender` held it before answering (netcode.p2p's ping,
        seen from the server); `now` is the host's clock at its arrival."""
        now_ms = now * 1000
        sender.sent_at[packet.t] = now_ms
        if len(sender.sent_at) > 64:
            del sender.sent_at[next(iter(sender.sent_at))]
        arrived = target.sent_at.get(packet.echo) if packet.peer_gen == target.gen else None
        if arrived is None or sender.kind != HUMAN:
            return
        rtt = max(0.0, now_ms - arrived - packet.hold)
        sender.ping_ms = rtt if sender.ping_ms is None else 0.9 * sender.ping_ms + 0.1 * rtt
        self.rtt_samples.append(rtt)

    def _check_actions(self, player: str, actions: list[Any]) -> None:
        """Raise ProtocolError unless every action is in `player`'s action space."""
        why_not = self.settings.action_spaces[player].why_not
        checked: Any = _UNCHECKED
        for action in actions:
            if action is not checked:   # one run's actions are one object (netcode.codec)
                reason = why_not(action)
                if reason:
                    raise ProtocolError(f"action of {player!r} is not in the game's action space: {reason}")
                checked = action

    def _ack(self, seat: Seat, t: float) -> None:
        """Tell a lone seat which of its inputs the server has (it sends them as to a spectator)."""
        ack = {p: len(self.log.actions[p]) - 1 for p in self.net_players(seat)}
        data = codec.ack_packet(t, ack)
        if seat.bot is not None:   # a lone seat's stand-in (e.g. its page hosted its only partner, an AI seat)
            seat.bot.deliver(SERVER, data)
            return
        self.host.send(seat, "packet", {"match": self.id, "episode": self.episode, "from": SERVER, "data": data})

    def _write_complete_frames(self) -> None:
        frames = self.log.take_complete()
        if not frames:
            return   # the referee is no further behind than after the last packet, which judged it
        referee = self.referee
        for frame, actions in frames:
            self.recording.inputs(self.episode, frame, actions)
            if referee is not None:
                referee.add_frame(actions)
        behind = referee.behind if referee is not None else 0
        if behind >= REFEREE_LAG or (behind and self._every_seat_claims_the_end()):
            self._referee_due = True   # far behind, or every seat claims the end: the inputs may settle it

    def _every_seat_claims_the_end(self) -> bool:
        for s in self.seats.values():
            if s.done is None and not s.gone and s.host is None:
                return False
        return True

    def _checksum(self, seat: Seat, frame: int, checksum: str) -> None:
        seen = self.checks.setdefault(frame, {})
        if seat.addr in seen:
            return
        seen[seat.addr] = checksum
        self.recording.checksum(self.episode, frame, checksum, seat.addr)
        if len(set(seen.values())) > 1 and frame not in self.desync_frames:
            self.desync_frames.add(frame)
            data = {"episode": self.episode, "frame": frame, "checksums": dict(seen)}
            self._desync(frame, data, data)
            self._referee_due = True
        if self.referee is not None and frame in self.referee.checksums:
            self._judge(frame, {seat.addr: checksum})
        if len(self.checks) > 256:
            del self.checks[min(self.checks)]

    def _desync(self, frame: int, recorded: dict[str, Any], logged: dict[str, Any]) -> None:
        """Record a desync; the host hears of an episode's first at once and of the rest once, at its end,
        so a seat that lies at every check frame costs the store and the log one line, not six a second."""
        self.recording.event("desync", recorded, self.episode, frame)
        self.metrics.desyncs.inc()
        self._desyncs += 1
        if self._desyncs == 1:
            self.host.log_event(self, "desync", logged)
        else:
            self._unlogged_desyncs += 1

    def _log_repeated_desyncs(self) -> None:
        if self._unlogged_desyncs:
            frames = sorted(self.desync_frames)
            self.host.log_event(self, "desyncs_repeated", {
                "episode": self.episode, "count": self._unlogged_desyncs,
                "check_frames": [frames[0], frames[-1]] if frames else []})
            self._unlogged_desyncs = 0

    # ------------------------------------------------------------ the referee

    def referee_work(self, max_steps: int) -> bool:
        """Re-simulate up to `max_steps` confirmed frames, record the server's checksums, judge the
        seats' reports and end the episode when it is due; True while there is more to do."""
        referee = self.referee
        if self.ended or referee is None:
            return False
        for frame, checksum in referee.run(max_steps):
            self.recording.checksum(self.episode, frame, checksum, SERVER)
            if frame in self.checks:
                self._judge(frame, self.checks[frame])
        self._try_end_episode()
        return not self.ended and self.referee is referee and referee.behind > 0

    def _judge(self, frame: int, reported: dict[str, str]) -> None:
        """Each seat whose checksum of `frame` differs from the server's is at fault."""
        assert self.referee is not None
        server = self.referee.checksums[frame]
        for addr, checksum in reported.items():
            if checksum != server:
                self._fault(addr, frame, "checksum", {"claimed": checksum, "server": server})

    def _fault(self, addr: str, frame: int, reason: str, details: dict[str, Any]) -> None:
        """Count a wrong report of seat `addr`; the first of each seat and reason in an episode is recorded."""
        self.faults[addr] = self.faults.get(addr, 0) + 1
        if (addr, reason) in self._faults_recorded:
            return
        self._faults_recorded.add((addr, reason))
        seat = self.seats[addr]
        data = {"episode": self.episode, "frame": frame, "seat": addr, "players": list(seat.players),
                "kind": seat.kind, "participant": seat.participant, "reason": reason, **details}
        self.recording.event("desync_settled", data, self.episode, frame)
        self.host.log_event(self, "desync_settled", data)
