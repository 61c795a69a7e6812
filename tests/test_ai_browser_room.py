"""An AI seat with runs="browser" in the match room, without a server: its players are local players of
its host seat's peer, the host's packets carry (and the log attributes) its inputs, and whoever holds the
host seat plays it."""
from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from app.analysis.policy_replay import agreement, policy_steps
from app.data.recording import Recording, RecordingWriter, make_header, read_recording
from app.live.match_room import MatchRoom, MatchSettings
from app.live.seat import AI, HUMAN, Seat
from app.live.protocol import PacketEvent, ProtocolError
from app.participant.headless import HeadlessParticipant
from game.games.pong import Pong
from game.paced_policy import policy_seed
from game.spaces import Discrete
from netcode.client import SERVER
from scenes.ai_seat import AISeat
from tests.server_fixtures import Server, pid
from tests.test_match_room import Host, packet

PARTNER = AISeat("random", runs="browser", reaction_delay_frames=2, action_repeat=3, seed=5)


class BotHost(Host):
    def __init__(self) -> None:
        super().__init__()
        self.bots: list[tuple[str, Any]] = []

    def start_bot(self, room: MatchRoom, seat: Seat, preload: Any) -> Any:
        self.bots.append((seat.addr, preload))
        return _Bot()


class _Bot:
    def __init__(self) -> None:
        self.delivered: list[tuple[str, str]] = []

    def deliver(self, sender: str, data: str) -> None:
        self.delivered.append((sender, data))

    def stop(self) -> None:
        pass


def make_room(tmp_path: Path) -> tuple[MatchRoom, BotHost, str]:
    host = BotHost()
    seats = {"s0": Seat("s0", ("left",), HUMAN, participant="pa"),
             "s1": Seat("s1", ("right",), AI, policy=PARTNER, host="s0")}
    settings = MatchSettings(
        game="game.games.pong:Pong", config={}, players=("left", "right"),
        action_spaces={"left": Discrete(3), "right": Discrete(3)}, episodes=1, fps=60, netcode={}, keys={},
        on_partner_drop="end", fill_policy="random", grace_s=10, stand_in="idle",
    )
    header = make_header(match="m1", experiment="x", scene="pong", created_at="now", game=settings.game,
                         game_source="", config={}, players=["left", "right"],
                         seats={a: s.info(7) for a, s in seats.items()}, netcode={}, fps=60)
    path = tmp_path / f"m1-{uuid.uuid4().hex}.jsonl"
    room = MatchRoom("m1", "pong", settings, seats, host, RecordingWriter(str(path), header), seed=7, game_class=Pong)
    room.start_next_episode()
    return room, host, str(path)


def test_the_host_plays_the_ai_seat_in_its_own_peer(tmp_path: Path) -> None:
    room, host, _ = make_room(tmp_path)
    assert host.bots == []   # no server bot: the host's worker plays it
    (addr, event, start), = host.sent
    assert (addr, event) == ("s0", "match_start")
    assert start["players"] == ["left", "right"] and start["peers"] == {}
    assert start["local_ai"] == {"right": {"policy": "game.policies:RandomPolicy", "seed": policy_seed(5, 0),
                                           "reaction_delay_frames": 2, "action_repeat": 3}}
    # A lone peer: its confirmed inputs for both players go to the server, which logs each under its player.
    room.relay(room.seats["s0"], PacketEvent("m1", 0, SERVER, packet({"left": [0, [1, 2]], "right": [0, [0, 1]]},
                                                                      kind="confirmed")))
    assert [room.log.actions["left"], room.log.actions["right"]] == [[1, 2], [0, 1]]


def test_only_the_host_sends_the_ai_seats_inputs_and_nobody_sends_to_it(tmp_path: Path) -> None:
    room, _, _ = make_room(tmp_path)
    with pytest.raises(ProtocolError, match="'to' must be another seat"):
        room.relay(room.seats["s0"], PacketEvent("m1", 0, "s1", packet({"left": [0, [1]], "right": [0, [1]]})))
    assert room.log.actions["right"] == []


def test_when_the_host_leaves_its_stand_in_plays_the_ai_seat_on_the_server(tmp_path: Path) -> None:
    room, host, path = make_room(tmp_path)
    room.relay(room.seats["s0"], PacketEvent("m1", 0, SERVER, packet({"left": [0, [1, 1]], "right": [0, [2, 2]]},
                                                                      kind="confirmed")))
    room.seat_absent(room.seats["s0"], "disconnected")
    assert [addr for addr, _ in host.bots] == ["s0"]   # one bot for the peer: it plays both players
    bot = room.seats["s0"].bot
    room.relay(room.seats["s0"], PacketEvent("m1", 0, SERVER, packet({"left": [2, [0]], "right": [2, [1]]},
                                                                      kind="confirmed", gen=1)))
    assert bot is not None and [sender for sender, _ in bot.delivered] == [SERVER]   # the ack reaches the bot
    moved = [e for e in read_recording(path).events if e["kind"] == "seat_changed" and e["data"]["seat"] == "s1"]
    assert [(e["frame"], e["data"]["by"], e["data"]["ai"]["runs"]) for e in moved] == [(2, "ai", "server")]
    room.rejoin(room.seats["s0"])   # the participant is back: the AI seat goes back to their browser
    moved = [e for e in read_recording(path).events if e["kind"] == "seat_changed" and e["data"]["seat"] == "s1"]
    assert [e["data"]["ai"]["runs"] for e in moved] == ["server", "browser"]
    assert host.sent[-1][1] == "match_start" and "right" in host.sent[-1][2]["local_ai"]


KITCHEN = '''
from scenes import AISeat, End, Experiment, Match

EXPERIMENT = Experiment(id="kitchen-headless", scenes=[
    Match(id="kitchen", game="game.games.cooking:Cooking", config={"time_limit": 90}, humans=("chef_1",),
          ai={"chef_2": AISeat("random", runs="browser", reaction_delay_frames=2, action_repeat=3, seed=5)},
          episodes=2, fps=30),
    End(id="end", html="<p>Thanks</p>", completion_code="K"),
])
'''


def hosted_match(tmp_path: Path, experiment: str, experiment_id: str, code: str) -> Recording:
    """The recording of a match a headless participant (policy idle) played through, hosting the AI seat."""
    (tmp_path / "experiment.py").write_text(experiment)
    server = Server(["serve", str(tmp_path / "experiment.py")], tmp_path / "data")
    try:
        result = HeadlessParticipant(server.url, {"PROLIFIC_PID": pid()}, seed=1, policy="idle").run(90)
    finally:
        server.stop()
    assert result.completion_code == code, result
    match = result.matches[0]["match"]
    return read_recording(str(tmp_path / "data" / experiment_id / "recordings" / f"{match}.jsonl"))


def test_a_headless_participant_hosts_the_ai_seat_with_its_policy(tmp_path: Path) -> None:
    """The headless participant (app/participant/headless.py) plays `local_ai` players with the seat's
    policy, as the browser worker does: the recording holds exactly the seat's choices, in every episode."""
    recording = hosted_match(tmp_path, KITCHEN, "kitchen-headless", "K")
    assert sorted(recording.episodes) == [0, 1]
    steps = list(policy_steps(recording, AISeat("random", reaction_delay_frames=2, action_repeat=3, seed=5), "chef_2"))
    assert len(steps) == 180 and agreement(steps) == 1.0
    assert len({str(step.recorded) for step in steps}) > 1   # it moved: not the idle human's default action
    assert recording.header["seats"]["s1"]["ai"]["runs"] == "browser"


ONNX_PONG = '''
from scenes import AISeat, End, Experiment, Match, OnnxPolicy

EXPERIMENT = Experiment(id="pong-onnx-headless", scenes=[
    Match(id="pong", game="game.games.pong:Pong", config={"max_score": 1000, "max_frames": 360}, humans=("left",),
          ai={"right": AISeat(OnnxPolicy("tracker.onnx", observation_keys=["ball.1", "paddle"]), runs="browser",
                              reaction_delay_frames=2, action_repeat=3, seed=5)}, episodes=1, fps=60),
    End(id="end", html="<p>Thanks</p>", completion_code="P"),
])
'''


def test_a_headless_participant_hosts_an_onnx_seat_with_the_bundles_model(tmp_path: Path) -> None:
    """A browser-run ONNX seat's model reaches the headless host as the worker gets it (the bundle's bytes,
    named onnx:<digest>) and plays with CPython onnxruntime: every recorded input is the model's choice."""
    from scenes import OnnxPolicy
    from tests.test_onnx_policy import TRACKER_KEYS, tracker_model

    tracker_model(tmp_path / "tracker.onnx")
    recording = hosted_match(tmp_path, ONNX_PONG, "pong-onnx-headless", "P")
    assert recording.header["seats"]["s1"]["ai"]["runs"] == "browser"
    assert not [e for e in recording.events if e["kind"] == "seat_changed"]   # no server bot took it over
    model = OnnxPolicy(str(tmp_path / "tracker.onnx"), observation_keys=TRACKER_KEYS)
    steps = list(policy_steps(recording, AISeat(model, reaction_delay_frames=2, action_repeat=3, seed=5), "right"))
    assert len(steps) == 360 and agreement(steps) == 1.0
    column = recording.players.index("right")
    assert {inputs[column] for inputs in recording.episodes[0]["inputs"]} >= {1, 2}, "the ONNX partner never moved"
