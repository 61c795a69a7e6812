"""The match room's seat holding, without a server: a stand-in plays a dropped seat, the participant
takes it back from the frame the room names, and the partner never waits (fake clock; the humans are
MatchClients as the headless participant drives them, the stand-in a BotPeer)."""
from __future__ import annotations

from pathlib import Path

import pytest

from app.analysis.replay import replay
from app.data.recording import read_recording
from app.live.seat import HUMAN, Seat
from app.live.protocol import PacketEvent, ProtocolError
from game.games.pong import Pong
from scenes import Match
from scenes.errors import ExperimentError
from tests import test_bots, test_match_room
from tests.test_bots import PERIOD, play

LONG = {"max_score": 1000, "max_frames": 600}   # 10 s: no early point ends it


def test_a_stand_in_holds_the_seat_and_the_participant_takes_it_back(tmp_path: Path) -> None:
    seats = {"s0": Seat("s0", ("left",), HUMAN, participant="pa"), "s1": Seat("s1", ("right",), HUMAN, participant="pb")}
    room, host = test_bots.make_room(tmp_path, seats, config=LONG)
    partner = host.humans["s1"]
    play(room, host, 1.0)
    room.seat_absent(seats["s0"], "disconnected")
    del host.humans["s0"]
    assert [p["status"] for _, e, p in host.sent if e == "seat_changed"] == ["absent"]
    before = partner.session.current_frame
    play(room, host, 1.0)
    assert partner.session.current_frame - before >= 50   # the partner plays on (60 frames a second)
    room.seat_absent(seats["s0"], "silent")   # already held: nothing changes
    room.rejoin(seats["s0"])
    start = [p for _, e, p in host.sent if e == "match_start"][-1]
    assert start["gen"] == 2 and start["resume"]["frame"] == len(room.log.actions["left"])
    back = host.humans["s0"]
    assert back.catch_up({"left": 0}) > 100 and not back.catching_up
    play(room, host, 20.0)
    assert host.ended == ["completed"] and not [e for e in host.events if e[0] == "desync"]
    assert seats["s0"].done is not None and seats["s1"].done is not None
    assert seats["s0"].done.checksum == seats["s1"].done.checksum
    room.recording.close()
    recording = read_recording(room.recording.path)
    segments = [(e["data"]["by"], e["frame"]) for e in recording.events if e["kind"] == "seat_changed"]
    assert [by for by, _ in segments] == ["stand_in", "participant"] and segments[0][1] < segments[1][1]
    result = replay(room.recording.path, Pong)
    assert result.ok and result.checked > 0, result


def test_the_relay_takes_only_the_current_holders_packets(tmp_path: Path) -> None:
    room, host = test_match_room.make_room(tmp_path)
    s0 = room.seats["s0"]
    s0.gen = 3
    stale = test_match_room.packet({"left": [0, [1]]}, gen=2)
    room.relay(s0, PacketEvent("m1", 0, "s1", stale))
    assert room.log.actions["left"] == [] and not [e for _, e, _ in host.sent if e == "packet"]
    with pytest.raises(ProtocolError, match="holder generation 4 of seat 's0' was never given"):
        room.relay(s0, PacketEvent("m1", 0, "s1", test_match_room.packet({"left": [0, [1]]}, gen=4)))
    room.relay(s0, PacketEvent("m1", 0, "s1", test_match_room.packet({"left": [0, [1]]}, gen=3)))
    assert room.log.actions["left"] == [1]


def test_without_a_grace_period_a_dropped_seat_is_given_up_at_once(tmp_path: Path) -> None:
    room, host = test_match_room.make_room(tmp_path)
    room.settings.grace_s = 0
    room.seat_absent(room.seats["s0"], "disconnected")
    assert host.ended == ["partner_dropped"] and room.seats["s0"].gone


@pytest.mark.parametrize(("settings", "message"), [
    ({"grace_s": -1}, "grace_s must be a number of seconds from 0 to 600, got -1"),
    ({"grace_s": "15"}, "grace_s must be a number of seconds from 0 to 600, got '15'"),
    ({"reveal_ai": 1}, "reveal_ai must be True or False, got 1"),
    ({"stand_in": 3}, "stand_in: "),
])
def test_the_seat_holding_settings_are_checked(settings: dict, message: str) -> None:
    scene = Match(id="m", game="game.games.pong:Pong", humans=("left", "right"), **settings)
    with pytest.raises(ExperimentError, match=message.replace("(", r"\(")):
        scene.check()


def test_frames_keep_coming_for_the_partner_across_a_rejoin(tmp_path: Path) -> None:
    """The survivor's largest gap between frames, on the room's fake clock, stays small."""
    seats = {"s0": Seat("s0", ("left",), HUMAN, participant="pa"), "s1": Seat("s1", ("right",), HUMAN, participant="pb")}
    room, host = test_bots.make_room(tmp_path, seats, config=LONG)
    partner = host.humans["s1"]
    gap, last, last_at = 0.0, 0, host.clock
    for step in range(int(15 / PERIOD)):
        if step == 60:
            room.seat_absent(seats["s0"], "disconnected")
            del host.humans["s0"]
        if step == 200:
            room.rejoin(seats["s0"])
            host.humans["s0"].catch_up({"left": 0})
        play(room, host, PERIOD)
        if partner.session.current_frame != last:
            gap, last, last_at = max(gap, host.clock - last_at), partner.session.current_frame, host.clock
        if room.ended:
            break
    assert host.ended == ["completed"] and gap < 0.1, gap
