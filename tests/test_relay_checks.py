"""The relay checks resent actions again, and counts what it relays."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from app.live.protocol import PacketEvent, ProtocolError
from tests.test_match_room import make_room, packet


def test_a_resent_action_of_another_type_is_still_checked(tmp_path: Path) -> None:
    room, _ = make_room(tmp_path)
    s0 = room.seats["s0"]
    room.relay(s0, PacketEvent("m1", 0, "s1", packet({"left": [0, [1, 2]]})))
    for bad, reason in ((True, "expected an int, got bool"), (1.0, "expected an int, got float"),
                        (7, r"7 is outside \[0, 2\]")):
        with pytest.raises(ProtocolError, match=reason):
            room.relay(s0, PacketEvent("m1", 0, "s1", packet({"left": [0, [bad, 2]]})))
    with pytest.raises(ProtocolError, match="was 2 and is now 0"):
        room.relay(s0, PacketEvent("m1", 0, "s1", packet({"left": [0, [1, 0]]})))
    assert room.log.actions["left"] == [1, 2]


def test_every_run_of_a_run_length_coded_packet_is_checked(tmp_path: Path) -> None:
    room, _ = make_room(tmp_path)
    s0 = room.seats["s0"]
    for actions, reason in (([1, 1, 1, 7, 7], r"7 is outside \[0, 2\]"), ([2, 2, True, True], "got bool"),
                            ([0, 0, 1.0], "got float"), ([1] * 5 + ["up"] * 3, "got str")):
        with pytest.raises(ProtocolError, match=reason):
            room.relay(s0, PacketEvent("m1", 0, "s1", packet({"left": [0, actions]})))
    assert room.log.actions["left"] == []
    room.relay(s0, PacketEvent("m1", 0, "s1", packet({"left": [0, [1, 1, 1, 2, 2]]})))
    assert room.log.actions["left"] == [1, 1, 1, 2, 2]


def test_room_metrics_count_relayed_packets_and_first_packets(tmp_path: Path) -> None:
    room, _ = make_room(tmp_path)
    s0, s1 = room.seats["s0"], room.seats["s1"]
    for frame in range(3):
        room.relay(s0, PacketEvent("m1", 0, "s1", packet({"left": [frame, [1]]})))
    room.relay(s1, PacketEvent("m1", 0, "s0", packet({"right": [0, [0]]})))
    data = packet({"left": [0, [1]]})
    metrics = room.metrics
    assert metrics.value("coplay_relay_seconds_count") == 4
    assert metrics.value("coplay_relayed_bytes_total") == 3 * len(data) + len(packet({"right": [0, [0]]}))
    assert metrics.value("coplay_first_packet_seconds_count") == 2  # once per human seat and episode
    with pytest.raises(ProtocolError):
        room.relay(s0, PacketEvent("m1", 0, "s1", json.dumps([2, "i"])))
    assert metrics.value("coplay_relay_seconds_count") == 4  # refused packets are not relayed
