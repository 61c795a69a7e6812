"""The wire format, tested hard: every bad packet raises NetcodeError and changes nothing."""
from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netcode import codec
from netcode.errors import NetcodeError
from tests.netcode_fixtures import Pair


def input_packet(**overrides: Any) -> dict[str, Any]:
    packet = {"v": 2, "kind": "input", "gen": 0, "peer_gen": -1, "frame": 3, "adv": 0.5, "t": 100.0, "echo": 50.0,
              "hold": 2.0,
              "inputs": {"p1": [0, [1, 2, 3]]}, "ack": {"p0": -1}, "checks": [[0, "abcdef0123456789"]], "gone": {}}
    packet.update(overrides)
    return packet


def test_round_trip() -> None:
    packet = input_packet()
    assert codec.decode(codec.encode(packet)) == packet
    ack = {"v": 2, "kind": "ack", "t": 1, "ack": {"p0": 4}}
    assert codec.decode(codec.encode(ack).encode()) == ack


@pytest.mark.parametrize(("data", "message"), [
    ("{", "[invalid_packet] not JSON"),
    ("[]", "[invalid_packet] a packet must be a JSON object, got list"),
    (json.dumps(input_packet(v=1)), "[invalid_packet] protocol version 1 is not 2; both sides must run the same coplay"),
    (json.dumps(input_packet(gen=-1)), "[invalid_packet] gen must be an int in [0, 2147483648), got -1"),
    (json.dumps(input_packet(peer_gen=-2)), "[invalid_packet] peer_gen must be an int >= -1, got -2"),
    (json.dumps(input_packet(kind="chat")), "[invalid_packet] kind must be one of ('input', 'confirmed', 'ack'), got 'chat'"),
    (json.dumps(input_packet(extra=1)), "[invalid_packet] unexpected fields ['extra'] in a input packet"),
    (json.dumps(input_packet(frame=-1)), "[invalid_packet] frame must be an int in [0, 2147483648), got -1"),
    (json.dumps(input_packet(frame=True)), "[invalid_packet] frame must be an int in [0, 2147483648), got True"),
    (json.dumps(input_packet(t="now")), "[invalid_packet] t must be a finite number, got 'now'"),
    (json.dumps(input_packet(inputs={"p1": [0, 1]})), "[invalid_packet] inputs['p1'] must be [start_frame, [actions...]]"),
    (json.dumps(input_packet(inputs={"": [0, []]})), "[invalid_packet] player ids must be non-empty strings"),
    (json.dumps(input_packet(inputs={"p1": [0, [0] * 257]})), "[invalid_packet] inputs['p1'] carries 257 actions, more than 256"),
    (json.dumps(input_packet(checks=[[1, 2]])), "[invalid_packet] checks entry [1, 2] must be [frame, checksum string]"),
    (json.dumps(input_packet(ack={"p0": -2})), "[invalid_packet] ack['p0'] must be an int frame >= -1, got -2"),
    ("x" * (codec.MAX_PACKET_BYTES + 1), "[invalid_packet] packet of 65537 bytes exceeds the 65536-byte limit"),
    ("[" * 100_000, "[invalid_packet] packet of 100000 bytes exceeds"),
    ("[" * 60_000 + "]" * 60_000, "[invalid_packet] packet of 120000 bytes exceeds"),
    ('{"v": 1, "kind": "input", "t": NaN}', "[invalid_packet]"),
])
def test_bad_packets_are_refused_with_a_clear_reason(data: str, message: str) -> None:
    with pytest.raises(NetcodeError) as caught:
        codec.decode(data)
    assert caught.value.code == "invalid_packet"
    assert str(caught.value).startswith(message)


def test_deep_nesting_under_the_size_limit_is_refused() -> None:
    with pytest.raises(NetcodeError, match="invalid_packet"):
        codec.decode("[" * 30_000 + "]" * 30_000)


def test_every_packet_a_session_sends_is_valid() -> None:
    pair = Pair()
    sent: list[str] = []
    deliver = pair.hub.deliver
    pair.hub.deliver = lambda sender, to, data: (sent.append(data), deliver(sender, to, data))  # type: ignore[method-assign]
    for tick in range(40):
        pair.clock.advance_to(tick * 16.0)
        pair.tick("a", tick % 4)
        pair.tick("b", (tick // 5) % 4)
    assert len(sent) >= 80
    for data in sent:
        codec.validate(json.loads(data))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(st.one_of(json_values, st.binary(max_size=64), st.text(max_size=64)))
def test_arbitrary_input_decodes_or_raises_netcode_error(value: Any) -> None:
    data = value if isinstance(value, (str, bytes)) else json.dumps(value)
    try:
        packet = codec.decode(data)
    except NetcodeError as error:
        assert error.code == "invalid_packet"
    else:
        codec.validate(packet)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(sorted(input_packet())), json_values)
def test_a_mutated_field_decodes_or_raises_netcode_error(field: str, value: Any) -> None:
    packet = input_packet(**{field: value})
    try:
        codec.decode(json.dumps(packet))
    except NetcodeError as error:
        assert error.code == "invalid_packet"


def session_state(pair: Pair) -> Any:
    session = pair.a
    return copy.deepcopy((
        {p: (q.confirmed, q.last_confirmed, q.predictions, q.first_incorrect, q.disconnected_from)
         for p, q in session.queues.items()},
        {a: (r.acked, r.remote_frame, r.ping_ms, r.last_heard, r.checks, list(r.timesync.local)) for a, r in session.remotes.items()},
        session.current_frame, session.stats,
    ))


@pytest.mark.parametrize(("packet", "reason"), [
    (input_packet(inputs={"p0": [0, [1]]}), "peer 'b' sent inputs for 'p0', which it does not own"),
    (input_packet(inputs={"p1": [0, [1, 9]]}), "action of 'p1' at frame 1 rejected: 9 is outside [0, 3]"),
    (input_packet(inputs={"p1": [0, ["up"]]}), "action of 'p1' at frame 0 rejected: expected an int, got str 'up'"),
    (input_packet(inputs={"p1": [5000, [1]]}), "inputs for 'p1' reach frame 5001, too far past our frame 2"),
    (input_packet(ack={"p1": 0}), "ack for 'p1', which is not a local player here"),
    (input_packet(ack={"p0": 50}), "ack of frame 50 for 'p0', which was never sent"),
    (input_packet(gone={"p9": 3}), "gone lists unknown player 'p9'"),
    (input_packet(kind="ack", ack={}, **{k: None for k in ()}), "unexpected fields"),
])
def test_a_bad_packet_leaves_the_session_unchanged(packet: dict[str, Any], reason: str) -> None:
    pair = Pair()
    pair.tick("a", 1)
    pair.tick("a", 2)
    before = session_state(pair)
    with pytest.raises(NetcodeError) as caught:
        pair.a.handle_packet("b", json.dumps(packet))
    assert reason in str(caught.value)
    assert session_state(pair) == before


def test_packets_from_strangers_are_refused_and_counted_by_poll() -> None:
    pair = Pair()
    pair.hub.endpoint("mallory").send("a", codec.encode(input_packet()))
    pair.hub.endpoint("b").send("a", "not json")
    pair.a.poll()
    events = pair.a.events()
    assert [(e.peer, e.code) for e in events] == [("mallory", "unknown_peer"), ("b", "invalid_packet")]
    assert pair.a.stats.bad_packets == 2
