"""GGPO-style peer-to-peer rollback session.

The session never touches the game. Each tick the caller gives every local player's
input, calls `advance_frame()`, runs the returned requests against the env (see
`netcode.executor`), and reports the checksums back. Packets go out through an
injected transport; `poll()` reads what came in.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Sequence

from netcode import codec
from netcode.config import SessionConfig
from netcode.errors import NetcodeError
from netcode.events import (
    DesyncDetected, Disconnected, Event, NetworkInterrupted, NetworkResumed, WaitRecommendation,
)
from netcode.frame_ranges import FrameRanges
from netcode.inputs import InputQueue
from netcode.requests import PREDICTED, AdvanceFrame, LoadState, Request, SaveState
from netcode.stats import PeerStats, SessionStats
from netcode.timesync import RECOMMEND_EVERY, TimeSync
from netcode.transport import Transport, receive_all

Clock = Callable[[], float]
MAX_FRAMES_AHEAD = 600      # remote inputs further than this past our frame are refused
CHECKS_SENT = 4             # latest confirmed checksums repeated in every packet
CHECKS_KEPT = 64
_NOTHING = object()


@dataclass
class _Remote:
    addr: str
    players: tuple[str, ...]
    last_heard: float
    gen: int = -1   # the holder generation of the seat's current holder, -1 before it is heard from
    acked: dict[str, int] = field(default_factory=dict)
    remote_frame: int = 0
    ping_ms: float | None = None
    last_t: float = -1.0
    last_t_at: float = 0.0
    last_sent: float = float("-inf")
    interrupted: bool = False
    disconnected: bool = False
    timesync: TimeSync = field(default_factory=TimeSync)
    checks: dict[int, str] = field(default_factory=dict)


@dataclass
class _Spectator:
    addr: str
    acked: int = -1
    last_sent: float = float("-inf")


class P2PSession:
    """A rollback session for the players of one peer, connected to the other peers.

    `remotes` maps each remote peer's address to the players it owns; every player of
    the config is either local or owned by exactly one remote. Spectator addresses
    receive every player's confirmed inputs. `generation` is this holder's generation of
    its seat (see netcode.codec): a session that takes over a seat gets a higher one.
    """

    def __init__(
        self,
        config: SessionConfig,
        local_players: Sequence[str],
        remotes: Mapping[str, Sequence[str]],
        transport: Transport,
        clock: Clock,
        spectators: Iterable[str] = (),
        keep_confirmed_log: bool = False,
        generation: int = 0,
    ) -> None:
        owned = list(local_players) + [p for players in remotes.values() for p in players]
        if sorted(owned) != sorted(config.players):
            raise NetcodeError(
                "invalid_config",
                f"local and remote players {owned} must cover the config's players {list(config.players)} exactly once",
            )
        self.config = config
        self.generation = generation
        self.local_players = tuple(local_players)
        self.transport = transport
        self.muted = False   # build and send no packets (a seat re-simulating frames already played), as if sent
        self.clock = clock
        now = clock()
        self.remotes = {addr: _Remote(addr, tuple(players), now) for addr, players in remotes.items()}
        self._owner = {p: r for r in self.remotes.values() for p in r.players}
        self.spectators = {addr: _Spectator(addr) for addr in spectators}
        self.queues = {
            p: InputQueue(p, config.default_actions[p], config.predictor) for p in config.players
        }
        for player in self.local_players:
            for frame in range(config.delay_of(player)):
                self.queues[player].add_confirmed(frame, config.default_actions[player])
        self.current_frame = 0
        self.stalled = False
        self.end_frame: int | None = None
        self.stats = SessionStats()
        self._pending_local: dict[str, Any] = {}
        self._events: list[Event] = []
        self._checks_pending: dict[int, str] = {}
        self._checks_final: dict[int, str] = {}
        self._final_upto = -1
        self._keep_log = keep_confirmed_log
        self._drained_upto = -1
        self._predicted = {p: FrameRanges() for p in self._owner}
        # Hot-path views of the above, fixed for the session's life.
        self._frame_ms = config.frame_ms
        self._delays = [(self.queues[p], config.delay_of(p)) for p in self.local_players]
        self._all_queues = [(p, self.queues[p]) for p in config.players]
        self._remote_queues = [self.queues[p] for p in self._owner]
        self._sent_checks: list[tuple[int, str]] = []   # the latest CHECKS_SENT of _checks_final
        self._sent_gone: dict[str, int] = {}             # {player: disconnected_from} of gone players

    # ----------------------------------------------------------------- ticking

    def add_local_input(self, player: str, action: Any) -> None:
        """Give `player`'s input for this tick; it applies `input_delay` frames later."""
        self.config.check_action(player, action, self.local_players)
        self._pending_local[player] = action

    def advance_frame(self) -> list[Request]:
        """The requests for this tick: a rollback if a prediction was wrong, then the new frame.

        When the session is too far past the last confirmed frame it stalls: `stalled`
        is True and the list holds at most the rollback. The local input for the frame
        is taken (and sent) at the first call; inputs given while stalled are dropped.
        At `end_frame` (set when the game ended there) it holds still the same way,
        without counting stalls, still applying rollbacks.
        """
        pending = self._pending_local
        if len(pending) < len(self.local_players):
            missing = [p for p in self.local_players if p not in pending]
            raise NetcodeError("missing_local_input", f"call add_local_input for {missing} before advance_frame()")
        frame = self.current_frame
        for queue, delay in self._delays:
            # Added (and so sent) even if we stall below: in lockstep the peers wait on it.
            queue.add_confirmed(frame + delay, pending[queue.player])
        requests: list[Request] = self._rollback_requests()
        confirmed = self.confirmed_frame
        at_end = self.end_frame is not None and frame >= self.end_frame
        self.stalled = not at_end and frame - self._remote_confirmed() > self.config.max_prediction
        if (requests or not (self.stalled or at_end)) and self._needs_save(frame, confirmed):
            requests.append(SaveState(frame, self.config.is_check_frame(frame)))
        if self.stalled:
            self.stats.stalls += 1
        elif not at_end:
            pending.clear()
            requests.append(self._advance_request(frame))
            self.current_frame = frame + 1
            self._maybe_recommend_wait()
        self._final_upto = confirmed
        self._send_all(True, self.clock())
        if self.current_frame % 16 == 0:
            self._prune()
        return requests

    def preload(self, inputs: Mapping[str, Sequence[Any]]) -> None:
        """Before the first frame, confirm inputs already known (from frame 0 on) for any players.

        A peer that joins a running match (an AI taking a dropped seat) preloads the
        match's input log, then advances quickly to the present.
        """
        if self.current_frame != 0:
            raise NetcodeError("invalid_input", "preload() only works before the first advance_frame()")
        for player, actions in inputs.items():
            if player not in self.queues:
                raise NetcodeError("invalid_input", f"cannot preload unknown player {player!r}", player=player)
            for frame, action in enumerate(actions):
                reason = self.config.action_spaces[player].why_not(action)
                if reason:
                    raise NetcodeError("invalid_input", f"preloaded action of {player!r} at frame {frame}: {reason}",
                                       player=player, frame=frame)
        for player, actions in inputs.items():
            queue = self.queues[player]
            for frame in range(queue.last_confirmed + 1, len(actions)):
                queue.add_confirmed(frame, actions[frame])

    def disconnect_player(self, player: str, frame: int) -> None:
        """From `frame` on, `player` (a remote player) plays the default action.

        For matches where a server decides when a seat is gone and tells every peer the
        same frame, so they agree without their own timeouts.
        """
        if player not in self._owner:
            raise NetcodeError("invalid_input", f"{player!r} is not a remote player of this session", player=player)
        self._disconnect_player(player, frame)

    def report_checksums(self, checksums: Iterable[tuple[int, str]]) -> None:
        """Give back the checksums the executor computed for the last batch's saves."""
        for frame, checksum in checksums:
            self._checks_pending[frame] = checksum
        self._finalize_checksums()

    def poll(self) -> None:
        """Read incoming packets, detect silent peers, and send keep-alives."""
        refused = receive_all(self.transport, self.handle_packet)
        self.stats.bad_packets += len(refused)
        self._events += refused
        now = self.clock()
        self._check_timeouts(now)
        self._send_all(False, now)

    def events(self) -> list[Event]:
        """Events since the last call."""
        events, self._events = self._events, []
        return events

    # ----------------------------------------------------------------- queries

    @property
    def confirmed_frame(self) -> int:
        """The last frame for which every player's input is final."""
        return min([q.known_through() for _, q in self._all_queues])

    def frames_ahead(self) -> float:
        """How far this peer runs ahead of the slowest connected remote."""
        live = [r.timesync.frames_ahead() for r in self.remotes.values() if not r.disconnected]
        return max(live, default=0.0)

    def network_stats(self, addr: str) -> PeerStats:
        remote = self.remotes[addr]
        return PeerStats(
            peer=addr, ping_ms=remote.ping_ms, frames_ahead=remote.timesync.frames_ahead(),
            remote_frame=remote.remote_frame, silent_ms=self.clock() - remote.last_heard,
            interrupted=remote.interrupted, disconnected=remote.disconnected,
        )

    def predicted_frames(self) -> dict[str, list[list[int]]]:
        """{remote player: [[start, end_exclusive], ...]}: every frame this peer ever simulated
        with a predicted input of that player (even if a rollback later re-ran it confirmed).

        Frames only ever run with the player's confirmed (or disconnected-default) input are
        not in it. Every remote player has an entry, empty when none was predicted.
        """
        return {p: ranges.ranges() for p, ranges in self._predicted.items()}

    def confirmed_checksums(self) -> dict[int, str]:
        """This peer's checksums of recent confirmed check frames."""
        return dict(self._checks_final)

    def drain_confirmed(self) -> list[tuple[int, dict[str, Any]]]:
        """Newly confirmed frames with every player's input (needs keep_confirmed_log=True)."""
        if not self._keep_log:
            raise NetcodeError("invalid_config", "create the session with keep_confirmed_log=True to drain inputs")
        upto = min(self.confirmed_frame, self.current_frame - 1)
        frames = [
            (f, {p: self.queues[p].final_input(f) for p in self.config.players})
            for f in range(self._drained_upto + 1, upto + 1)
        ]
        self._drained_upto = max(self._drained_upto, upto)
        return frames

    # ----------------------------------------------------------------- packets in

    def handle_packet(self, addr: str, data: str | bytes, received_at: float | None = None) -> None:
        """Apply one packet (which arrived at `received_at`, default now); a bad one raises
        NetcodeError and changes nothing."""
        packet = codec.decode(data)
        remote = self.remotes.get(addr)
        if remote is not None:
            if packet.kind != "input":
                raise NetcodeError("invalid_packet", f"peers send input packets, got {packet.kind}", peer=addr)
            self._validate_input_packet(remote, packet)
            stats = self.stats
            stats.packets_received += 1
            stats.bytes_received += len(data)
            if packet.gen > remote.gen:
                self._new_holder(remote, packet.gen)
            if not remote.disconnected and packet.gen == remote.gen:  # an older holder's packet is stale
                self._apply_input_packet(remote, packet, self.clock() if received_at is None else received_at)
        elif addr in self.spectators:
            if packet.kind != "ack" or any(player not in self.queues for player, _ in packet.ack):
                raise NetcodeError("invalid_packet", "spectators send ack packets for known players", peer=addr)
            if packet.ack:
                acked = min(frame for _, frame in packet.ack)
                spectator = self.spectators[addr]
                spectator.acked = max(spectator.acked, min(acked, self.confirmed_frame))
        else:
            raise NetcodeError("unknown_peer", f"packet from {addr!r}, which is not a peer or spectator of this session", peer=addr)

    def _new_holder(self, remote: _Remote, gen: int) -> None:
        """The remote seat has a new holder: forget what its predecessor's clock and frame said."""
        remote.gen, remote.ping_ms, remote.last_t, remote.last_t_at = gen, None, -1.0, 0.0
        remote.remote_frame, remote.timesync = 0, TimeSync()

    def _validate_input_packet(self, remote: _Remote, packet: codec.Packet) -> None:
        def bad(message: str) -> NetcodeError:
            return NetcodeError("invalid_packet", message, peer=remote.addr)

        for player, start, actions in packet.inputs:
            if player not in remote.players:
                raise bad(f"peer {remote.addr!r} sent inputs for {player!r}, which it does not own")
            if start + len(actions) > self.current_frame + MAX_FRAMES_AHEAD:
                raise bad(f"inputs for {player!r} reach frame {start + len(actions)}, too far past our frame {self.current_frame}")
            why_not = self.config.action_spaces[player].why_not
            checked: Any = _NOTHING
            for offset, action in enumerate(actions):
                if action is not checked:   # one run's actions are one object (netcode.codec)
                    reason = why_not(action)
                    if reason:
                        raise bad(f"action of {player!r} at frame {start + offset} rejected: {reason}")
                    checked = action
        for player, frame in packet.ack:
            if player not in self.local_players:
                raise bad(f"ack for {player!r}, which is not a local player here")
            if frame > self.queues[player].last_confirmed:
                raise bad(f"ack of frame {frame} for {player!r}, which was never sent")
        for player, _ in packet.gone:
            if player not in self.queues:
                raise bad(f"gone lists unknown player {player!r}")

    def _apply_input_packet(self, remote: _Remote, packet: codec.Packet, now: float) -> None:
        remote.last_heard = now
        if remote.interrupted:
            remote.interrupted = False
            self._events.append(NetworkResumed(remote.addr))
        for player, start, actions in packet.inputs:
            queue = self.queues[player]
            skip = queue.last_confirmed + 1 - start
            if 0 <= skip < len(actions):
                queue.add_confirmed_run(start + skip, actions[skip:])
        acked = remote.acked
        for player, frame in packet.ack:
            if frame > acked.get(player, -1):
                acked[player] = frame
        remote.remote_frame = packet.frame
        if packet.t > remote.last_t:
            remote.last_t, remote.last_t_at = packet.t, now
        if packet.peer_gen == self.generation:   # else echo and adv are about another holder of our seat
            if packet.echo >= 0:
                rtt = max(0.0, now - packet.echo - packet.hold)
                remote.ping_ms = rtt if remote.ping_ms is None else 0.9 * remote.ping_ms + 0.1 * rtt
            remote.timesync.update(self._advantage_over(remote), packet.adv)
        if packet.checks:
            self._receive_checks(remote, packet.checks)
        for player, frame in packet.gone:
            if player not in self.local_players:
                self._disconnect_player(player, frame)

    # ----------------------------------------------------------------- packets out

    def _send_all(self, force: bool, now: float) -> None:
        for remote in self.remotes.values():
            if not remote.disconnected and (force or now - remote.last_sent >= self.config.keepalive_ms):
                if not self.muted:
                    self._send(remote.addr, self._input_packet(remote, now))
                remote.last_sent = now
        for spectator in self.spectators.values():
            if force or now - spectator.last_sent >= self.config.keepalive_ms:
                if not self.muted:
                    self._send(spectator.addr, self._confirmed_packet(spectator, now))
                spectator.last_sent = now

    def _send(self, addr: str, data: str) -> None:
        stats = self.stats
        stats.packets_sent += 1
        stats.bytes_sent += len(data)
        self.transport.send(addr, data)

    def _input_packet(self, remote: _Remote, now: float) -> str:
        inputs = {}
        acked = remote.acked
        for player in self.local_players:
            queue = self.queues[player]
            start = acked.get(player, -1) + 1
            end = min(queue.last_confirmed, start + codec.MAX_INPUTS_PER_PLAYER - 1)
            confirmed = queue.confirmed
            inputs[player] = (start, [confirmed[f] for f in range(start, end + 1)])
        return codec.input_packet(
            gen=self.generation, peer_gen=remote.gen, frame=self.current_frame,
            adv=round(self._advantage_over(remote), 3), t=now,
            echo=remote.last_t, hold=now - remote.last_t_at if remote.last_t >= 0 else 0,
            inputs=inputs, ack={p: self.queues[p].last_confirmed for p in remote.players},
            checks=self._sent_checks, gone=self._sent_gone,
        )

    def _confirmed_packet(self, spectator: _Spectator, now: float) -> str:
        start = spectator.acked + 1
        end = min(self.confirmed_frame, self.current_frame - 1, start + codec.MAX_INPUTS_PER_PLAYER - 1)
        return codec.confirmed_packet(
            gen=self.generation, frame=self.current_frame, t=now,
            inputs={p: (start, [self.queues[p].final_input(f) for f in range(start, end + 1)]) for p in self.config.players},
            checks=self._sent_checks, gone=self._sent_gone,
        )

    # ----------------------------------------------------------------- internals

    def _rollback_requests(self) -> list[Request]:
        first = None
        for _, queue in self._all_queues:
            incorrect = queue.take_first_incorrect()
            if incorrect is not None and (first is None or incorrect < first):
                first = incorrect
        if first is None or first >= self.current_frame:
            return []
        self.stats.add_rollback(self.current_frame - first)
        requests: list[Request] = [LoadState(first)]
        confirmed = self.confirmed_frame
        for frame in range(first, self.current_frame):
            requests.append(self._advance_request(frame))
            if frame + 1 < self.current_frame and self._needs_save(frame + 1, confirmed):
                requests.append(SaveState(frame + 1, self.config.is_check_frame(frame + 1)))
        return requests

    def _advance_request(self, frame: int) -> AdvanceFrame:
        inputs, status = {}, {}
        for player, queue in self._all_queues:
            inputs[player], status[player] = how = queue.input_for(frame)
            if how[1] is PREDICTED:
                self._predicted[player].add(frame)
        return AdvanceFrame(frame, inputs, status)

    def _needs_save(self, frame: int, confirmed: int) -> bool:
        """A frame is saved if a rollback may load it or its checksum is wanted."""
        return frame > confirmed or self.config.is_check_frame(frame)

    def _remote_confirmed(self) -> int:
        return min([q.known_through() for q in self._remote_queues], default=1 << 60)

    def _advantage_over(self, remote: _Remote) -> float:
        ping_frames = (remote.ping_ms or 0.0) / self._frame_ms
        return self.current_frame - (remote.remote_frame + ping_frames / 2)

    def _maybe_recommend_wait(self) -> None:
        if self.current_frame % RECOMMEND_EVERY == 0:
            wait = max((r.timesync.wait_frames() for r in self.remotes.values() if not r.disconnected), default=0)
            if wait:
                self._events.append(WaitRecommendation(wait))

    def _finalize_checksums(self) -> None:
        if not self._checks_pending:
            return
        final = [f for f in self._checks_pending if f <= self._final_upto + 1]
        for frame in sorted(final):
            self._checks_final[frame] = self._checks_pending.pop(frame)
        while len(self._checks_final) > CHECKS_KEPT:
            del self._checks_final[next(iter(self._checks_final))]
        if final:
            self._checks_changed()
            for remote in self.remotes.values():
                self._compare_checks(remote)

    def _checks_changed(self) -> None:
        self._sent_checks = list(self._checks_final.items())[-CHECKS_SENT:]

    def _receive_checks(self, remote: _Remote, checks: list[tuple[int, str]]) -> None:
        """A remote's checksums: compared at once where ours is final, else kept until it is."""
        ours = self._checks_final
        kept = False
        for frame, theirs in checks:
            mine = ours.get(frame)
            if mine is None:
                remote.checks[frame] = theirs
                kept = True
            elif theirs != mine:
                remote.checks.pop(frame, None)
                self.stats.desyncs += 1
                self._events.append(DesyncDetected(frame, mine, theirs, remote.addr))
            else:
                remote.checks.pop(frame, None)
        if kept:
            self._compare_checks(remote)

    def _compare_checks(self, remote: _Remote) -> None:
        for frame in [f for f in remote.checks if f in self._checks_final]:
            theirs = remote.checks.pop(frame)
            ours = self._checks_final[frame]
            if theirs != ours:
                self.stats.desyncs += 1
                self._events.append(DesyncDetected(frame, ours, theirs, remote.addr))
        oldest = next(iter(self._checks_final), 0)
        for frame in [f for f in remote.checks if f < oldest]:
            del remote.checks[frame]
        while len(remote.checks) > CHECKS_KEPT:
            del remote.checks[min(remote.checks)]

    def _check_timeouts(self, now: float) -> None:
        for remote in self.remotes.values():
            if remote.disconnected:
                continue
            silent = now - remote.last_heard
            if silent >= self.config.disconnect_timeout_ms:
                self._disconnect_peer(remote)
            elif silent >= self.config.disconnect_notify_ms and not remote.interrupted:
                remote.interrupted = True
                self._events.append(NetworkInterrupted(remote.addr, self.config.disconnect_timeout_ms - silent))

    def _disconnect_peer(self, remote: _Remote) -> None:
        remote.disconnected = True
        frame = min(self.queues[p].last_confirmed + 1 for p in remote.players)
        for player in remote.players:
            self._disconnect_player(player, frame)
        self._events.append(Disconnected(remote.addr, remote.players, frame))

    def _disconnect_player(self, player: str, frame: int) -> None:
        queue = self.queues[player]
        if queue.disconnected_from is not None and queue.disconnected_from <= frame:
            return
        queue.disconnect(frame)
        for stale in [f for f in self._checks_final if f > frame]:
            del self._checks_final[stale]
        self._checks_changed()
        self._sent_gone = {p: q.disconnected_from for p, q in self._all_queues if q.disconnected_from is not None}
        remote = self._owner[player]
        if not remote.disconnected:
            remote.disconnected = True
            self._events.append(Disconnected(remote.addr, remote.players, frame))

    def _prune(self) -> None:
        """Forget inputs nobody can need: not a rollback, a resend, a spectator or the log."""
        keep = [self.current_frame - self.config.max_prediction - 2]
        keep += [r.acked.get(p, -1) + 1 for r in self.remotes.values() if not r.disconnected for p in self.local_players]
        keep += [s.acked + 1 for s in self.spectators.values()]
        if self._keep_log:
            keep.append(self._drained_upto + 1)
        low = min(keep)
        for queue in self.queues.values():
            queue.discard_before(low)
