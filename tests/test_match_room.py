"""The match room's relay, input log and checksum comparison, without a server."""
from __future__ import annotations

import copy
import uuid
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.live.input_log import InconsistentInput, InputLog
from app.live.match_room import REFEREE_LAG, MatchRoom, MatchSettings
from app.live.seat import HUMAN, Seat
from app.live.protocol import EpisodeDone, PacketEvent, ProtocolError, parse_episode_done
from app.data.recording import RecordingWriter, make_header, read_recording
from game.games.pong import Pong
from game.lockstep import Lockstep
from netcode import codec
from netcode.client import SERVER, MatchClient
from game.spaces import Discrete
from tests.server_fixtures import SettlesAtOnce


class Host(SettlesAtOnce):
    """Collects what the room sends; no server."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str, dict[str, Any]]] = []
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.ended: list[str] = []
        self.clock = 0.0

    def send(self, seat: Seat, event: str, payload: dict[str, Any]) -> None:
        self.sent.append((seat.addr, event, payload))

    def start_bot(self, room: MatchRoom, seat: Seat, preload: Any) -> Any:
        raise AssertionError("no bots in these tests")

    def match_ended(self, room: MatchRoom, reason: str) -> None:
        self.ended.append(reason)

    def log_event(self, room: MatchRoom, kind: str, data: dict[str, Any]) -> None:
        self.events.append((kind, data))

    def now(self) -> float:
        return self.clock


def make_room(tmp_path: Path, episodes: int = 1, config: dict[str, Any] | None = None) -> tuple[MatchRoom, Host]:
    host = Host()
    seats = {"s0": Seat("s0", ("left",), HUMAN, participant="pa"), "s1": Seat("s1", ("right",), HUMAN, participant="pb")}
    settings = MatchSettings(
        game="game.games.pong:Pong", config=dict(config or {}), players=("left", "right"),
        action_spaces={"left": Discrete(3), "right": Discrete(3)}, episodes=episodes, fps=60, netcode={}, keys={},
        on_partner_drop="end", fill_policy="random",
    )
    header = make_header(match="m1", experiment="x", scene="pong", created_at="now", game=settings.game,
                         game_source="", config={}, players=["left", "right"], seats={}, netcode={}, fps=60)
    path = tmp_path / f"m1-{uuid.uuid4().hex}.jsonl"
    room = MatchRoom("m1", "pong", settings, seats, host, RecordingWriter(str(path), header),
                     seed=7, game_class=Pong)
    room.start_next_episode()
    return room, host


def packet(inputs: dict[str, Any], checks: list[Any] | None = None, kind: str = "input", **fields: Any) -> str:
    """An input (or confirmed) packet of frame 3: `inputs` {player: [start, actions]}, `checks` [[frame, checksum]]."""
    body = {"gen": 0, "frame": 3, "t": 1.0, "inputs": {p: (start, actions) for p, (start, actions) in inputs.items()},
            "checks": checks or [], "gone": {}, **fields}
    if kind == "confirmed":
        return codec.confirmed_packet(**body)
    return codec.input_packet(**{"peer_gen": 0, "adv": 0, "echo": -1, "hold": 0, "ack": {}, **body})


def test_inputs_are_logged_in_frame_order_and_forwarded(tmp_path: Path) -> None:
    room, host = make_room(tmp_path)
    s0, s1 = room.seats["s0"], room.seats["s1"]
    room.relay(s0, PacketEvent("m1", 0, "s1", packet({"left": [0, [1, 1, 2]]})))
    room.relay(s1, PacketEvent("m1", 0, "s0", packet({"right": [0, [0, 2]]})))
    room.relay(s1, PacketEvent("m1", 0, "s0", packet({"right": [1, [2, 0, 0]]})))  # a resend plus new frames
    room.recording.close()
    recording = read_recording(room.recording.path)
    assert recording.episodes[0]["inputs"] == [[1, 0], [1, 2], [2, 0]]
    assert [(to, event) for to, event, _ in host.sent] == [("s0", "match_start"), ("s1", "match_start"),
                                                           ("s1", "packet"), ("s0", "packet"), ("s0", "packet")]


def test_differing_checksums_of_a_frame_are_a_recorded_desync(tmp_path: Path) -> None:
    room, host = make_room(tmp_path)
    room.relay(room.seats["s0"], PacketEvent("m1", 0, "s1", packet({}, [[10, "aaaa"]])))
    room.relay(room.seats["s1"], PacketEvent("m1", 0, "s0", packet({}, [[10, "aaaa"], [20, "bbbb"]])))
    assert host.events == []
    room.relay(room.seats["s0"], PacketEvent("m1", 0, "s1", packet({}, [[20, "cccc"]])))
    assert host.events == [("desync", {"episode": 0, "frame": 20, "checksums": {"s1": "bbbb", "s0": "cccc"}})]


def play(room: MatchRoom, frames: int) -> None:
    """Both seats send `frames` more frames of the idle action (1)."""
    for addr, player, to in (("s0", "left", "s1"), ("s1", "right", "s0")):
        start = len(room.log.actions[player])
        room.relay(room.seats[addr], PacketEvent("m1", room.episode, to, packet({player: [start, [1] * frames]})))


def true_end(room: MatchRoom) -> tuple[int, str]:
    """Where the current episode really ends with idle inputs, and the checksum of that state."""
    sim = Lockstep(Pong(room.settings.config), room.episode_seed, room.settings.players, [[1, 1]] * 10_000)
    while not sim.step()["truncated"]:
        pass
    return sim.frame, sim.checksum()


def test_episodes_advance_when_every_seat_is_done_and_differing_ends_are_desyncs(tmp_path: Path) -> None:
    """An episode ends where the server's re-simulation ends it; a seat claiming another final state
    is the one at fault (desync_settled), and the seats' disagreement is still a desync."""
    room, host = make_room(tmp_path, episodes=2, config={"max_frames": 30})
    play(room, 35)
    end, checksum = true_end(room)
    room.episode_done(room.seats["s0"], EpisodeDone("m1", 0, end, checksum))
    assert room.episode == 0
    room.episode_done(room.seats["s1"], EpisodeDone("m1", 0, end, checksum))
    assert room.episode == 1 and room.episode_seed != 0 and host.events == []
    play(room, 35)
    end, checksum = true_end(room)
    room.episode_done(room.seats["s0"], EpisodeDone("m1", 1, end, checksum))
    room.episode_done(room.seats["s1"], EpisodeDone("m1", 1, end, "ffff"))
    assert host.ended == ["completed"] and [kind for kind, _ in host.events] == ["desync_settled", "desync"]
    assert host.events[0][1]["seat"] == "s1" and host.events[0][1]["frame"] == end
    before = (list(host.events), list(host.ended))
    room.episode_done(room.seats["s1"], EpisodeDone("m1", 1, end, "ffff"))   # in flight when it ended: ignored
    assert (host.events, host.ended) == before


@pytest.mark.parametrize(("sender", "event", "reason"), [
    ("s0", PacketEvent("m2", 0, "s1", packet({})), "packet for match 'm2', but this seat is in match 'm1'"),
    ("s0", PacketEvent("m1", 0, "s0", packet({})), "'to' must be another seat of this match"),
    ("s0", PacketEvent("m1", 0, "s9", packet({})), "'to' must be another seat of this match"),
    ("s0", PacketEvent("m1", 0, "s1", "{"), "[invalid_packet] not JSON"),
    ("s0", PacketEvent("m1", 0, "s1", packet({"right": [0, [1]]})), "seat 's0' sent inputs for 'right'"),
    ("s0", PacketEvent("m1", 0, "s1", packet({"left": [0, [7]]})), "7 is outside [0, 2]"),
    ("s0", PacketEvent("m1", 0, "s1", packet({"left": [0, ["up"]]})), "expected an int, got str"),
    ("s0", PacketEvent("m1", 0, "s1", packet({}, kind="confirmed")), "seats send input packets"),
    ("s0", PacketEvent("m1", 0, "s1", packet({"left": [0, [2]]})), "input of 'left' for frame 0 was 1 and is now 2"),
    ("s0", PacketEvent("m1", 0, "s1", packet({"left": [600, [1]]})), "reach frame 601, more than 10 s past"),
])
def test_bad_packets_are_refused_and_change_nothing(tmp_path: Path, sender: str, event: PacketEvent,
                                                    reason: str) -> None:
    room, host = make_room(tmp_path)
    room.relay(room.seats["s0"], PacketEvent("m1", 0, "s1", packet({"left": [0, [1]]})))
    before = (copy.deepcopy(room.log.actions), dict(room.checks), len(host.sent), room.seats[sender].last_heard)
    host.clock = 5.0
    with pytest.raises(ProtocolError) as caught:
        room.relay(room.seats[sender], event)
    assert reason in str(caught.value)
    assert (room.log.actions, room.checks, len(host.sent), room.seats[sender].last_heard) == before


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.one_of(st.text(max_size=200), st.builds(
    lambda inputs: packet(inputs),
    st.dictionaries(st.sampled_from(["left", "right", "x"]),
                    st.tuples(st.integers(-3, 5), st.lists(st.one_of(st.integers(-2, 4), st.text(max_size=3)),
                                                           max_size=5)).map(list), max_size=2))))
def test_fuzzed_packets_are_either_relayed_or_refused_cleanly(tmp_path: Path, data: str) -> None:
    room, host = make_room(tmp_path)
    try:
        room.relay(room.seats["s0"], PacketEvent("m1", 0, "s1", data))
    except ProtocolError:
        assert room.log.actions == {"left": [], "right": []} and len(host.sent) == 2
    else:
        assert all(a in (0, 1, 2) for a in room.log.actions["left"]) and room.log.actions["right"] == []
    room.recording.close()


def test_a_lost_seat_with_no_ai_ends_the_match_and_is_recorded(tmp_path: Path) -> None:
    room, host = make_room(tmp_path)
    room.seat_lost(room.seats["s1"], "disconnected")
    assert room.seats["s1"].gone and host.ended == ["partner_dropped"]
    room.seat_lost(room.seats["s0"], "disconnected")
    assert host.ended == ["partner_dropped"]
    room.recording.close()
    events = read_recording(room.recording.path).events
    assert [(e["kind"], e["data"].get("by")) for e in events] == [("seat_changed", "gone"), ("match_end", None)]


def test_input_log_refuses_a_changed_resend_and_ignores_gaps() -> None:
    log = InputLog(["a", "b"])
    log.add("a", 0, [1, 2])
    log.add("a", 5, [9])          # a gap: the sender resends from the last ack
    log.add("b", 0, [0])
    assert log.take_complete() == [(0, [1, 0])] and log.take_complete() == []
    with pytest.raises(InconsistentInput):
        log.add("a", 1, [3])


@given(st.lists(st.tuples(st.integers(0, 12), st.lists(st.integers(0, 2), max_size=6)), max_size=12))
def test_input_log_add_keeps_the_first_input_of_each_frame_and_refuses_a_changed_one(
        runs: list[tuple[int, list[int]]]) -> None:
    """Against the rule frame by frame: a frame already known must be resent equal (else the whole run
    is refused, naming the first frame that differs, and nothing changes); the next unknown frame extends
    the log; a run starting past it (a gap) is ignored."""
    log = InputLog(["a"])
    model: list[int] = []
    for start, actions in runs:
        before = list(log.actions["a"])
        differs = [start + i for i, action in enumerate(actions) if start + i < len(model) and model[start + i] != action]
        if start <= len(model) and differs:
            with pytest.raises(InconsistentInput, match=f"for frame {differs[0]} "):
                log.add("a", start, actions)
            assert log.actions["a"] == before
            continue
        log.add("a", start, actions)
        if start <= len(model):
            model.extend(actions[len(model) - start:])
        assert log.actions["a"] == model


class LoneHost(Host):
    """Hands the room's packets (the server's acks) to the lone seat's client."""

    client: MatchClient | None = None

    def send(self, seat: Seat, event: str, payload: dict[str, Any]) -> None:
        super().send(seat, event, payload)
        if event == "packet" and self.client is not None:
            self.client.receive(payload["from"], payload["data"])


def test_a_lone_seat_sends_every_input_to_the_server_which_acks_them(tmp_path: Path) -> None:
    """No partner, no AI: the seat's client sends its confirmed inputs to "server" (acked, so more than
    the 256 frames one packet carries), and the room records every frame with both checksums."""
    host = LoneHost()
    settings = MatchSettings(
        game="game.games.pong:Pong", config={"max_frames": 600}, players=("left", "right"),
        action_spaces={"left": Discrete(3), "right": Discrete(3)}, episodes=1, fps=60, netcode={}, keys={},
        on_partner_drop="end", fill_policy="random")
    header = make_header(match="m1", experiment="x", scene="pong", created_at="now", game=settings.game,
                         game_source="", config=settings.config, players=["left", "right"], seats={}, netcode={},
                         fps=60)
    seat = Seat("s0", ("left", "right"), HUMAN, participant="pa")
    room = MatchRoom("m1", "pong", settings, {"s0": seat}, host,
                     RecordingWriter(str(tmp_path / "lone.jsonl"), header), seed=3, game_class=Pong)
    room.start_next_episode()
    [(_, _, start)] = [sent for sent in host.sent if sent[1] == "match_start"]
    assert start["peers"] == {}
    client = host.client = MatchClient(start, Pong, lambda: host.clock * 1000.0)
    while client.done is None:
        host.clock += 1 / 60
        client.tick({"left": 2, "right": 0})
        for out in client.outbox():
            assert out["to"] == SERVER
            room.relay(seat, PacketEvent(out["match"], out["episode"], out["to"], out["data"]))
    room.episode_done(seat, parse_episode_done(client.done))
    assert host.ended == ["completed"] and not host.events
    room.recording.close()
    recording = read_recording(room.recording.path)
    assert len(recording.episodes[0]["inputs"]) == 600
    assert [e["frame"] for e in recording.events if e["kind"] == "episode_end"] == [600]
    checked = [seats for seats in recording.episodes[0]["checksums"].values() if set(seats) == {"s0", SERVER}]
    assert len(checked) >= 50 and all(seats["s0"] == seats[SERVER] for seats in checked)


def test_only_the_lone_seat_of_a_match_may_send_to_the_server(tmp_path: Path) -> None:
    room, _ = make_room(tmp_path)
    confirmed = packet({"left": [0, [1]]}, kind="confirmed")
    with pytest.raises(ProtocolError, match="'to' must be another seat"):
        room.relay(room.seats["s0"], PacketEvent("m1", 0, SERVER, confirmed))


def test_an_end_claimed_past_the_known_inputs_waits_for_them(tmp_path: Path) -> None:
    room, host = make_room(tmp_path, config={"max_frames": 30})
    play(room, 10)
    end, checksum = true_end(room)
    for addr in ("s0", "s1"):
        room.episode_done(room.seats[addr], EpisodeDone("m1", 0, end, checksum))
    assert host.ended == []   # the server has 10 frames; it cannot tell yet
    play(room, 25)
    assert host.ended == ["completed"] and host.events == []


class LazyHost(Host):
    """Counts the room's requests to run its referee, and runs none."""

    def __init__(self) -> None:
        super().__init__()
        self.settles = 0

    def settle(self, room: MatchRoom) -> None:
        self.settles += 1


def test_the_referee_is_asked_for_when_frames_complete_not_for_packets_that_complete_none(tmp_path: Path) -> None:
    room, _ = make_room(tmp_path, config={"max_frames": 1000})
    host = room.host = LazyHost()
    play(room, REFEREE_LAG - 1)
    assert host.settles == 0   # not far enough behind yet
    play(room, 1)
    assert host.settles == 1   # the frame that put it REFEREE_LAG behind
    resend = packet({"left": [0, [1] * REFEREE_LAG]})
    room.relay(room.seats["s0"], PacketEvent("m1", 0, "s1", resend))   # completes no frame: the referee is as far behind
    assert host.settles == 1
    for addr in ("s0", "s1"):
        room.episode_done(room.seats[addr], EpisodeDone("m1", 0, 500, "aaaa"))   # every seat claims the end
    settles = host.settles
    play(room, 1)
    assert host.settles == settles + 1 and room.referee is not None and room.referee.behind == REFEREE_LAG + 1


def test_an_end_claimed_where_the_game_did_not_end_is_refused_and_the_episode_goes_on(tmp_path: Path) -> None:
    room, host = make_room(tmp_path, config={"max_frames": 30})
    play(room, 20)
    for addr in ("s0", "s1"):
        room.episode_done(room.seats[addr], EpisodeDone("m1", 0, 10, "aaaa"))
    assert host.ended == [] and all(seat.done is None for seat in room.seats.values())
    assert [(kind, data["seat"], data["reason"]) for kind, data in host.events] == [
        ("desync_settled", "s0", "episode_not_over"), ("desync_settled", "s1", "episode_not_over")]
    play(room, 15)
    end, checksum = true_end(room)
    for addr in ("s0", "s1"):
        room.episode_done(room.seats[addr], EpisodeDone("m1", 0, end, checksum))
    assert host.ended == ["completed"]
