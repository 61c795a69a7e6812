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


def fields(**overrides: Any) -> dict[str, Any]:
    """Keyword arguments of `codec.input_packet` for a packet of frame 3 from the owner of p1."""
    return {"gen": 0, "peer_gen": -1, "frame": 3, "adv": 0.5, "t": 100.0, "echo": 50.0, "hold": 2.0,
            "inputs": {"p1": (0, [1, 2, 3])}, "ack": {"p0": -1}, "checks": [(0, "abcdef0123456789")], "gone": {},
            **overrides}


def wire(**overrides: Any) -> list[Any]:
    """The same packet as the JSON array it travels as, with some positions replaced."""
    places = {"v": 0, "kind": 1, "gen": 2, "peer_gen": 3, "frame": 4, "adv": 5, "t": 6, "echo": 7, "hold": 8,
              "inputs": 9, "ack": 10, "checks": 11, "gone": 12}
    packet = json.loads(codec.input_packet(**fields()))
    for name, value in overrides.items():
        packet[places[name]] = value
    return packet


def test_the_exact_bytes_of_an_input_packet() -> None:
    data = codec.input_packet(**fields(inputs={"p1": (1, [2, 2, 2, 3])}, ack={"p0": 2}, checks=[(0, "ab")],
                                       gone={"p0": 3}))
    assert data == '[3,"i",0,-1,3,0.5,100.0,50.0,2.0,["p1",2,[2,3,3,1]],["p0",1],[3,"ab"],["p0",0]]'
    assert codec.ack_packet(7.5, {"p0": 4, "p1": -1}) == '[3,"a",7.5,["p0",4,"p1",-1]]'


def test_round_trip_undoes_the_deltas_and_the_runs() -> None:
    packet = codec.decode(codec.input_packet(**fields(gone={"p1": 2}, checks=[(0, "aa"), (10, "bb")])))
    assert packet == codec.Packet("input", 0, -1, 3, 0.5, 100.0, 50.0, 2.0, [("p1", 0, [1, 2, 3])], [("p0", -1)],
                                  [(0, "aa"), (10, "bb")], [("p1", 2)])
    ack = codec.decode(codec.ack_packet(1, {"p0": 4}).encode())
    assert (ack.kind, ack.t, ack.ack) == ("ack", 1, [("p0", 4)])
    confirmed = codec.decode(codec.confirmed_packet(gen=2, frame=9, t=3.5, inputs={"p0": (5, [0]), "p1": (5, [1])},
                                                    checks=[], gone={}))
    assert (confirmed.kind, confirmed.gen, confirmed.peer_gen, confirmed.inputs) == (
        "confirmed", 2, -1, [("p0", 5, [0]), ("p1", 5, [1])])


def test_runs_merge_equal_ints_and_strings_only_and_keep_every_type() -> None:
    actions = [1, 1, 1, 2, True, True, 1.0, 1.0, -0.0, 0.0, "up", "up", [1], [1], {"a": 1}, None, None]
    data = codec.input_packet(**fields(inputs={"p1": (0, actions)}))
    assert json.loads(data)[9][2] == [1, 3, 2, 1, True, 1, True, 1, 1.0, 1, 1.0, 1, -0.0, 1, 0.0, 1, "up", 2,
                                      [1], 1, [1], 1, {"a": 1}, 1, None, 1, None, 1]
    (_, _, decoded), = codec.decode(data).inputs
    assert decoded == actions
    assert [type(a) for a in decoded] == [type(a) for a in actions]
    assert str(decoded[8]) == "-0.0"
    assert decoded[0] is decoded[1] is decoded[2]   # a run is one object: readers check it once


def test_a_packet_at_the_limits_is_accepted() -> None:
    players = [f"p{i:02d}" + "x" * 60 for i in range(codec.MAX_PLAYERS)]
    packet = codec.decode(codec.input_packet(**fields(
        frame=codec.MAX_FRAME - 1, gen=codec.MAX_FRAME - 1, peer_gen=codec.MAX_FRAME - 1,
        inputs={p: (0, [0] * 200 + [1] * 56) for p in players}, ack={p: -1 for p in players},
        checks=[(f, "f" * 64) for f in range(codec.MAX_CHECKS)], gone={p: 0 for p in players})))
    assert len(packet.inputs) == codec.MAX_PLAYERS and all(len(a) == 256 for _, _, a in packet.inputs)


@pytest.mark.parametrize(("data", "message"), [
    ("{", "not JSON"),
    ("[3,\"a\",1,[]] ", "not JSON: extra data at character 12"),
    ("{}", "a packet must be a JSON array [version, kind, ...], got {}"),
    ("[3]", "a packet must be a JSON array [version, kind, ...], got [3]"),
    (wire(v=2), "protocol version 2 is not 3; both sides must run the same coplay"),
    (wire(v=3.0), "protocol version 3.0 is not 3"),
    (wire(v=True), "protocol version True is not 3"),
    (wire(kind="chat"), "a packet must be [3, \"i\" or \"c\", 11 fields] or [3, \"a\", t, ack], got kind 'chat'"),
    (wire()[:12], "got kind 'i' with 10 fields"),
    ([3, "a", 1, [], 0], "got kind 'a' with 3 fields"),
    ([3, "a", "now", []], "t must be a finite number, got 'now'"),
    ([3, "a", 1, ["p0", -2]], "ack of 'p0' must be an int frame >= -1, got -2"),
    (wire(gen=-1), "gen must be an int in [0, 2147483648), got -1"),
    (wire(gen=True), "gen must be an int in [0, 2147483648), got True"),
    (wire(peer_gen=-2), "peer_gen must be an int >= -1, got -2"),
    (wire(frame=-1), "frame must be an int in [0, 2147483648), got -1"),
    (wire(frame=codec.MAX_FRAME), "frame must be an int in [0, 2147483648), got 2147483648"),
    (wire(frame=1.0), "frame must be an int in [0, 2147483648), got 1.0"),
    (wire(t="now"), "t must be a finite number, got 'now'"),
    (wire(adv=1e16), "adv must be a finite number, got 1e+16"),
    (wire(echo=None), "echo must be a finite number, got None"),
    (wire(hold=[1]), "hold must be a finite number, got [1]"),
    (wire(inputs={"p1": [0, [1]]}), "inputs must be a list [player, frame - start, runs, ...]"),
    (wire(inputs=["p1", 0]), "inputs must be a list [player, frame - start, runs, ...]"),
    (wire(inputs=["p1", 0, [1, 1]] * 17), "of at most 16 players"),
    (wire(inputs=["", 0, []]), "player ids must be non-empty strings of at most 64 characters, got ''"),
    (wire(inputs=["x" * 65, 0, []]), "player ids must be non-empty strings"),
    (wire(inputs=[7, 0, []]), "player ids must be non-empty strings of at most 64 characters, got 7"),
    (wire(inputs=["p1", 4, []]), "inputs of 'p1': the start frame must be an int in [0, 2147483648), got frame - 4"),
    (wire(inputs=["p1", 3 - codec.MAX_FRAME, []]), "the start frame must be an int in [0, 2147483648)"),
    (wire(inputs=["p1", 0.0, []]), "the start frame must be an int"),
    (wire(inputs=["p1", 0, [1]]), "inputs of 'p1': runs must be a list [action, count, ...], got [1]"),
    (wire(inputs=["p1", 0, "1,1"]), "runs must be a list [action, count, ...], got '1,1'"),
    (wire(inputs=["p1", 0, [1, 0]]), "inputs of 'p1': run count 0 is not an int >= 1"),
    (wire(inputs=["p1", 0, [1, True]]), "run count True is not an int >= 1"),
    (wire(inputs=["p1", 0, [1, 1.5]]), "run count 1.5 is not an int >= 1"),
    (wire(inputs=["p1", 0, [1, 257]]), "run count 257 is not an int >= 1, or the runs carry more than 256 actions"),
    (wire(inputs=["p1", 0, [1, 200, 2, 57]]), "run count 57 is not an int >= 1, or the runs carry more than 256"),
    (wire(inputs=["p1", 0, [1, 1] * 257]), "runs must be a list [action, count, ...]"),
    (wire(inputs=["p1", 0, [1, 1], "p1", 0, [1, 1]]), "inputs names player 'p1' twice"),
    (wire(ack={"p0": -1}), "ack must be a list [player, frame, ...] of at most 16 players"),
    (wire(ack=["p0", 5]), "ack of 'p0' must be an int frame >= -1, got frame - 5"),
    (wire(ack=["p0", 1, "p0", 2]), "ack names player 'p0' twice"),
    (wire(gone=["p0", 4]), "gone of 'p0' must be an int frame >= 0, got frame - 4"),
    (wire(gone=["p0"]), "gone must be a list [player, frame, ...]"),
    (wire(checks=[[0, "ab"]]), "checks must be a list [frame - f, checksum, ...] of at most 16 checksums"),
    (wire(checks=[0, "ab"] * 17), "of at most 16 checksums"),
    (wire(checks=[1, 2]), "checks entry frame - 1, 2 must be a frame and a checksum string"),
    (wire(checks=[0, ""]), "checks entry frame - 0, '' must be a frame and a checksum string"),
    (wire(checks=[0, "f" * 65]), "must be a frame and a checksum string"),
    (wire(checks=[4, "ab"]), "checks entry frame - 4, 'ab' must be a frame"),
    ("x" * (codec.MAX_PACKET_BYTES + 1), "packet of 65537 bytes exceeds the 65536-byte limit"),
    (b"x" * (codec.MAX_PACKET_BYTES + 1), "packet of 65537 bytes exceeds the 65536-byte limit"),
    (b"[3,\"a\",1,[\"\xff\",1]]", "not UTF-8 text"),
    ("[" * 100_000, "packet of 100000 bytes exceeds"),
    ("[" * 60_000 + "]" * 60_000, "packet of 120000 bytes exceeds"),
    ('[3, "a", NaN, []]', "t must be a finite number, got nan"),
    ('[3, "a", Infinity, []]', "t must be a finite number, got inf"),
    (17, "a packet must be text, got int"),
])
def test_bad_packets_are_refused_with_a_clear_reason(data: Any, message: str) -> None:
    if isinstance(data, list):
        data = json.dumps(data)
    with pytest.raises(NetcodeError) as caught:
        codec.decode(data)
    assert caught.value.code == "invalid_packet"
    assert str(caught.value).startswith("[invalid_packet] ")
    assert message in str(caught.value)


def test_deep_nesting_under_the_size_limit_is_refused() -> None:
    with pytest.raises(NetcodeError, match="invalid_packet"):
        codec.decode("[" * 30_000 + "]" * 30_000)
    nested = codec.input_packet(**fields()).replace("[1,1,2,1,3,1]", "[" + "[" * 20_000 + "]" * 20_000 + ",1]")
    with pytest.raises(NetcodeError, match="invalid_packet"):
        codec.decode(nested)


def test_every_packet_a_session_sends_decodes() -> None:
    pair = Pair()
    sent: list[str] = []
    deliver = pair.hub.deliver
    pair.hub.deliver = lambda sender, to, data: (sent.append(data), deliver(sender, to, data))  # type: ignore[method-assign]
    for tick in range(40):
        pair.clock.advance_to(tick * 16.0)
        pair.tick("a", tick % 4)
        pair.tick("b", (tick // 5) % 4)
    assert len(sent) >= 80
    decoded = [codec.decode(data) for data in sent]
    assert {p.kind for p in decoded} == {"input"}
    assert any(p.checks for p in decoded) and all(p.inputs for p in decoded)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)


def _decodes_or_refuses(data: Any) -> None:
    try:
        packet = codec.decode(data)
    except NetcodeError as error:
        assert error.code == "invalid_packet"
    else:
        assert isinstance(packet, codec.Packet)


@settings(max_examples=300, deadline=None)
@given(st.one_of(json_values, st.binary(max_size=64), st.text(max_size=64)))
def test_arbitrary_input_decodes_or_raises_netcode_error(value: Any) -> None:
    _decodes_or_refuses(value if isinstance(value, (str, bytes)) else json.dumps(value))


@settings(max_examples=300, deadline=None)
@given(st.lists(json_values, min_size=2, max_size=14).map(lambda rest: [3, "i", *rest]) | st.lists(
    json_values, min_size=0, max_size=3).map(lambda rest: [3, "a", *rest]))
def test_arbitrary_arrays_with_a_good_header_decode_or_raise_netcode_error(value: list[Any]) -> None:
    _decodes_or_refuses(json.dumps(value))


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 12), json_values)
def test_a_mutated_field_decodes_or_raises_netcode_error(place: int, value: Any) -> None:
    packet = wire()
    packet[place] = value
    _decodes_or_refuses(json.dumps(packet))


@settings(max_examples=300, deadline=None)
@given(st.sampled_from([9, 10, 11, 12]), st.integers(0, 8), json_values)
def test_a_mutated_entry_of_a_list_decodes_or_raises_netcode_error(place: int, index: int, value: Any) -> None:
    packet = wire(gone=["p0", 1])
    entries = packet[place]
    if index < len(entries):
        entries[index] = value
    else:
        entries.append(value)
    _decodes_or_refuses(json.dumps(packet))


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.text(min_size=1, max_size=4), st.tuples(st.integers(0, 50), st.lists(
    st.integers(-3, 3) | st.sampled_from(["a", "b"]) | st.booleans() | st.floats(allow_nan=False, allow_infinity=False),
    max_size=20)), max_size=4), st.integers(0, 60))
def test_any_inputs_the_builder_is_given_come_back_the_same(inputs: dict[str, Any], frame: int) -> None:
    packet = codec.decode(codec.input_packet(**fields(frame=frame, inputs=inputs)))
    assert {p: (start, actions) for p, start, actions in packet.inputs} == inputs
    for player, _, actions in packet.inputs:   # types too: True stays True, -0.0 stays -0.0
        assert [json.dumps(a) for a in actions] == [json.dumps(a) for a in inputs[player][1]]


def session_state(pair: Pair) -> Any:
    session = pair.a
    return copy.deepcopy((
        {p: (q.confirmed, q.last_confirmed, q.predictions, q.first_incorrect, q.disconnected_from)
         for p, q in session.queues.items()},
        {a: (r.acked, r.remote_frame, r.ping_ms, r.last_heard, r.checks, list(r.timesync.local)) for a, r in session.remotes.items()},
        session.current_frame, session.stats,
    ))


@pytest.mark.parametrize(("data", "reason"), [
    (codec.input_packet(**fields(inputs={"p0": (0, [1])})), "peer 'b' sent inputs for 'p0', which it does not own"),
    (codec.input_packet(**fields(inputs={"p1": (0, [1, 9])})), "action of 'p1' at frame 1 rejected: 9 is outside [0, 3]"),
    (codec.input_packet(**fields(inputs={"p1": (0, [1, 1, 1, 9, 9])})), "action of 'p1' at frame 3 rejected"),
    (codec.input_packet(**fields(inputs={"p1": (0, ["up"])})),
     "action of 'p1' at frame 0 rejected: expected an int, got str 'up'"),
    (codec.input_packet(**fields(inputs={"p1": (0, [1, True])})),
     "action of 'p1' at frame 1 rejected: expected an int, got bool True"),
    (codec.input_packet(**fields(inputs={"p1": (5000, [1])})), "inputs for 'p1' reach frame 5001, too far past our frame 2"),
    (codec.input_packet(**fields(ack={"p1": 0})), "ack for 'p1', which is not a local player here"),
    (codec.input_packet(**fields(ack={"p0": 50})), "ack of frame 50 for 'p0', which was never sent"),
    (codec.input_packet(**fields(gone={"p9": 3})), "gone lists unknown player 'p9'"),
    (codec.ack_packet(1.0, {}), "peers send input packets, got ack"),
    (codec.confirmed_packet(gen=0, frame=3, t=1.0, inputs={}, checks=[], gone={}), "peers send input packets, got confirmed"),
    (json.dumps(wire(frame=-1)), "frame must be an int"),
])
def test_a_bad_packet_leaves_the_session_unchanged(data: str, reason: str) -> None:
    pair = Pair()
    pair.tick("a", 1)
    pair.tick("a", 2)
    before = session_state(pair)
    with pytest.raises(NetcodeError) as caught:
        pair.a.handle_packet("b", data)
    assert reason in str(caught.value)
    assert session_state(pair) == before


def test_packets_from_strangers_are_refused_and_counted_by_poll() -> None:
    pair = Pair()
    pair.hub.endpoint("mallory").send("a", codec.input_packet(**fields()))
    pair.hub.endpoint("b").send("a", "not json")
    pair.a.poll()
    events = pair.a.events()
    assert [(e.peer, e.code) for e in events] == [("mallory", "unknown_peer"), ("b", "invalid_packet")]
    assert pair.a.stats.bad_packets == 2
