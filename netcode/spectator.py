"""A spectator follows a match from the confirmed inputs one host peer sends it.

It never predicts, so it never rolls back; when it falls behind it catches up by
advancing several frames per tick.
"""
from __future__ import annotations

from typing import Any, Iterable

from netcode import codec
from netcode.config import SessionConfig
from netcode.errors import NetcodeError
from netcode.events import DesyncDetected, Event
from netcode.p2p import Clock
from netcode.requests import CONFIRMED, DISCONNECTED, AdvanceFrame, Request, SaveState
from netcode.stats import SessionStats
from netcode.transport import Transport, receive_all


class SpectatorSession:
    """Follows the host at `host_addr`; `catchup_frames` is the most frames run per tick."""

    def __init__(
        self, config: SessionConfig, host_addr: str, transport: Transport, clock: Clock,
        catchup_frames: int = 4,
    ) -> None:
        self.config = config
        self.host_addr = host_addr
        self.transport = transport
        self.clock = clock
        self.catchup_frames = catchup_frames
        self.current_frame = 0
        self.stats = SessionStats()
        self.host_frame = 0
        self._inputs: dict[int, dict[str, Any]] = {}
        self._received_upto = -1
        self._gone: dict[str, int] = {}
        self._host_checks: dict[int, str] = {}
        self._own_checks: dict[int, str] = {}
        self._events: list[Event] = []
        self._last_sent = float("-inf")

    def poll(self) -> None:
        refused = receive_all(self.transport, self.handle_packet)
        self.stats.bad_packets += len(refused)
        self._events += refused
        if self.clock() - self._last_sent >= self.config.keepalive_ms:
            self._send_ack()

    def handle_packet(self, addr: str, data: str | bytes, received_at: float | None = None) -> None:
        """Apply one packet from the host (arrival times do not matter to a spectator)."""
        packet = codec.decode(data)
        if addr != self.host_addr:
            raise NetcodeError("unknown_peer", f"spectators only listen to their host {self.host_addr!r}", peer=addr)
        inputs = {player: (start, actions) for player, start, actions in packet.inputs}
        if packet.kind != "confirmed" or len(inputs) != len(self.config.players) or not all(
                p in inputs for p in self.config.players):
            raise NetcodeError("invalid_packet", "a host sends confirmed packets with every player's inputs", peer=addr)
        starts = {start for start, _ in inputs.values()}
        lengths = {len(actions) for _, actions in inputs.values()}
        if len(starts) != 1 or len(lengths) != 1:
            raise NetcodeError("invalid_packet", "confirmed inputs must cover the same frames for every player", peer=addr)
        for player, (start, actions) in inputs.items():
            why_not = self.config.action_spaces[player].why_not
            for offset, action in enumerate(actions):
                reason = why_not(action)
                if reason:
                    raise NetcodeError("invalid_packet", f"action of {player!r} at frame {start + offset}: {reason}", peer=addr)
        self.stats.packets_received += 1
        self.host_frame = max(self.host_frame, packet.frame)
        self._gone.update(packet.gone)
        start, count = starts.pop(), lengths.pop()
        for frame in range(max(start, self._received_upto + 1), start + count):
            self._inputs[frame] = {p: inputs[p][1][frame - start] for p in self.config.players}
            self._received_upto = frame
        for frame, checksum in packet.checks:
            if frame >= self.current_frame - 64:
                self._host_checks[frame] = checksum
        self._compare_checks()

    def advance_frame(self) -> list[Request]:
        """Advance over the confirmed frames received, at most `catchup_frames` of them."""
        requests: list[Request] = []
        for _ in range(self.catchup_frames):
            frame = self.current_frame
            if frame not in self._inputs:
                break
            if self.config.is_check_frame(frame):
                requests.append(SaveState(frame, True))
            inputs = self._inputs.pop(frame)
            status = {p: DISCONNECTED if frame >= self._gone.get(p, 1 << 60) else CONFIRMED for p in inputs}
            requests.append(AdvanceFrame(frame, inputs, status))
            self.current_frame = frame + 1
        if not requests:
            self.stats.stalls += 1
        self._send_ack()
        return requests

    def report_checksums(self, checksums: Iterable[tuple[int, str]]) -> None:
        self._own_checks.update(checksums)
        self._compare_checks()

    def _compare_checks(self) -> None:
        for frame in [f for f in self._own_checks if f in self._host_checks]:
            ours, theirs = self._own_checks.pop(frame), self._host_checks.pop(frame)
            if ours != theirs:
                self.stats.desyncs += 1
                self._events.append(DesyncDetected(frame, ours, theirs, self.host_addr))
        for checks in (self._own_checks, self._host_checks):
            for old in [f for f in checks if f < self.current_frame - 64]:
                del checks[old]

    def events(self) -> list[Event]:
        events, self._events = self._events, []
        return events

    def _send_ack(self) -> None:
        packet = codec.ack_packet(self.clock(), {p: self._received_upto for p in self.config.players})
        self.transport.send(self.host_addr, packet)
        self.stats.packets_sent += 1
        self._last_sent = self.clock()
