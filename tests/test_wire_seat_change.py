"""The referee and the wire load generator's seats agree across a seat change (a regression test).

Under load the generator falls behind: a seat's packets stop reaching the server, the server gives
the silent seat to a stand-in from the next frame it has not logged, and the seat's next (stale)
packet takes it back with the server's input log. Both seats of a match share one re-simulation
in the generator; it once kept the silent seat's own inputs the server never logged, so at the end
both seats agreed on a checksum the referee (re-simulating the server's log) could not reach, and
the room blamed both. Real parts: MatchRoom (relay, input log, referee, end judgement), a BotPeer
stand-in, WireSeats; the clock is the test's."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from app.analysis.replay import replay
from app.live.match_room import MatchRoom
from app.live.seat import HUMAN, Seat
from app.live.protocol import PacketEvent, parse_episode_done
from app.loadtest.wire_match import MatchSim, SimRegistry, WireSeat
from game.games.pong import Pong
from netcode.config import SessionConfig
from tests import test_bots

FPS = 60
LOST = range(60, 80)   # ticks whose packets of seat s0 never reach the server (the generator lags)


class Press:
    """A participant holding one key all along (Pong: 1 up, 2 down; the idle stand-in sends 0)."""

    def __init__(self, action: int, players: list[str]) -> None:
        self.action, self.players = action, players

    def actions(self, observations: Any, frame: int) -> dict[str, int]:
        return {p: self.action for p in self.players}


def wire_seat(registry: SimRegistry, start: dict[str, Any], action: int) -> WireSeat:
    config = SessionConfig.for_env(Pong(start["config"]), fps=FPS, **(start.get("netcode") or {}))
    sim = registry.take((start["match"], start["episode"]),
                        lambda: MatchSim(Pong(start["config"]), start["seed"], ("left", "right"), config.desync_interval))
    return WireSeat(start, config, Press(action, start["players"]), sim)


def play_with_a_silent_seat(tmp_path: Path) -> tuple[MatchRoom, test_bots.Host, dict[str, WireSeat]]:
    seats = {"s0": Seat("s0", ("left",), HUMAN, participant="pa"), "s1": Seat("s1", ("right",), HUMAN, participant="pb")}
    room, host = test_bots.make_room(tmp_path, seats, config={"max_score": 1_000_000, "max_frames": 300})
    host.humans.clear()   # the humans here are WireSeats, not the host's MatchClients
    registry = SimRegistry()
    wire = {addr: wire_seat(registry, room.start_payload(seats[addr]), 1) for addr in seats}

    def send(seat: Seat, event: str, payload: dict[str, Any]) -> None:
        host.sent.append((seat.addr, event, payload))
        if event == "match_start":   # the rejoin: the seat resumes from the server's log
            wire[seat.addr] = wire_seat(registry, payload, 2)
        elif event == "packet":
            wire[seat.addr].receive(payload["from"], payload["data"], host.clock * 1000)

    host.send = send   # type: ignore[method-assign]
    reported: set[int] = set()
    for tick in range(2000):
        host.clock += 1 / FPS
        for bot in host.bots:
            if not bot.stopped:
                bot.run_due(host.clock)
        for addr, seat in list(wire.items()):
            out = seat.tick(host.clock * 1000)
            if addr == "s0" and tick == LOST.stop:   # silent too long: a stand-in takes the seat
                room.seat_absent(seats["s0"], "silent")
            for to, data in out:
                if not (addr == "s0" and tick in LOST) and not room.ended:
                    room.relay(seats[addr], PacketEvent(room.id, room.episode, to, data))
            if seat.done is not None and id(seat) not in reported and not room.ended:
                reported.add(id(seat))
                room.episode_done(seats[addr], parse_episode_done(json.loads(json.dumps(seat.done))))
        if room.ended:
            break
    return room, host, wire


def test_seats_that_agree_across_a_stand_in_agree_with_the_referee(tmp_path: Path) -> None:
    room, host, wire = play_with_a_silent_seat(tmp_path)
    changes = [(d["by"], d["why"]) for kind, d in host.events if kind == "seat_changed"]
    assert changes == [("stand_in", "silent"), ("participant", "rejoined")]   # the seat did change hands
    assert host.ended == ["completed"]
    assert room.faults == {} and not [d for kind, d in host.events if kind == "desync_settled"], host.events
    assert room.referee is not None and room.referee.ended_at == 300
    server = room.referee.checksums[300]
    assert all(seat.done is not None and (seat.done["frame"], seat.done["checksum"]) == (300, server)
               for seat in wire.values())
    room.recording.close()
    result = replay(room.recording.path, Pong)
    assert result.ok and result.frames == 300, result
