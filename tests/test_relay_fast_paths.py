"""The relay's fast paths accept and refuse exactly what the full checks do."""
from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.protocol import PacketEvent, ProtocolError
from netcode import codec
from netcode.errors import NetcodeError
from tests.test_match_room import make_room, packet

GOOD = {"v": 1, "kind": "input", "frame": 3, "adv": 0.5, "t": 1.0, "echo": -1, "hold": 0,
        "inputs": {"left": [0, [1, 2]]}, "ack": {"right": 2}, "checks": [[0, "ab"]], "gone": {}}
ODD_VALUES = st.one_of(st.none(), st.booleans(), st.integers(-3, 1 << 32), st.floats(allow_nan=True),
                       st.text(max_size=70), st.lists(st.integers(-1, 3), max_size=3),
                       st.dictionaries(st.text(max_size=3), st.integers(-2, 3), max_size=2))


def verdict(check: Any, packet: Any) -> str | None:
    try:
        check(packet)
    except NetcodeError as error:
        return str(error)
    return None


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(path=st.lists(st.sampled_from(["v", "kind", "frame", "adv", "t", "echo", "hold", "inputs", "ack", "checks",
                                      "gone", "left", 0, 1, "extra"]), min_size=1, max_size=3),
       value=ODD_VALUES, delete=st.booleans())
def test_fast_validation_agrees_with_the_full_one(path: list[Any], value: Any, delete: bool) -> None:
    packet = copy.deepcopy(GOOD)
    node: Any = packet
    for key in path[:-1]:
        try:
            node = node[key]
        except (KeyError, IndexError, TypeError):
            return
    last = path[-1]
    try:
        if delete and isinstance(node, dict):
            node.pop(last, None)
        else:
            node[last] = value
    except (IndexError, TypeError):
        return
    assert verdict(codec.validate, packet) == verdict(codec.validate_fully, packet)


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


def test_room_metrics_count_relayed_packets_and_first_packets(tmp_path: Path) -> None:
    room, _ = make_room(tmp_path)
    s0, s1 = room.seats["s0"], room.seats["s1"]
    for frame in range(3):
        room.relay(s0, PacketEvent("m1", 0, "s1", packet({"left": [frame, [1]]})))
    room.relay(s1, PacketEvent("m1", 0, "s0", packet({"right": [0, [0]]})))
    data = packet({"left": [0, [1]]})
    metrics = room.metrics
    assert metrics.relay_seconds.count == 4
    assert metrics.relayed_bytes.value() == 3 * len(data) + len(packet({"right": [0, [0]]}))
    assert metrics.first_packet_seconds.count == 2  # once per human seat and episode
    with pytest.raises(ProtocolError):
        room.relay(s0, PacketEvent("m1", 0, "s1", json.dumps({"v": 1})))
    assert metrics.relay_seconds.count == 4  # refused packets are not relayed
