"""The headless participant's parts that need no server: survey answers, policies, its
MatchClient over the packet router, URL handling, and the load tester's URL refusal and summary."""
from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from app.commands import loadtest
from app.participant.headless import HeadlessParticipant
from app.participant.result import SEAT_TAKEN_OVER, ParticipantResult, _Finished
from app.participant.answers import Policy, generate_answers
from app.participant.socket_client import PacketRouter, split_url
from game.games.cooking import Cooking
from game.games.pong import Pong
from game.rng import Rng
from netcode.client import MatchClient, RelayTransport
from scenes.survey import Choice, FreeText, Likert, Survey
from tests.server_fixtures import free_port

# ----------------------------------------------------------------------------- survey answers


def demo_survey() -> Survey:
    survey = Survey("s", questions=[
        Likert("fun", "Fun?", scale=5, labels=("no", "yes")),
        Likert("wide", "Wide?", scale=11, labels=("lo", "hi")),
        Likert("narrow", "Narrow?", scale=2, labels=("lo", "hi")),
        Choice("one", "One?", options=["yes", "no", "not sure"]),
        Choice("many", "Many?", options=["a", "b", "c", "d"], multiple=True),
        Choice("single_multi", "Only one option", options=["only"], multiple=True),
        FreeText("comments", "Anything?", max_length=500),
        FreeText("short", "Short?", max_length=1, required=True),
        FreeText("tiny", "Tiny?", max_length=3, required=True),
    ])
    survey.check()
    return survey


@pytest.mark.parametrize("seed", range(40))
def test_generated_answers_pass_the_servers_validation(seed: int) -> None:
    survey = demo_survey()
    descriptor = survey.to_client()   # what the client receives in the scene event
    answers = generate_answers(descriptor["questions"], Rng(seed))
    cleaned = survey.validate(answers)
    assert set(answers) == {q["id"] for q in descriptor["questions"]}
    assert all(value is not None for value in cleaned.values()), cleaned


def test_generated_answers_are_seeded_and_vary() -> None:
    questions = demo_survey().to_client()["questions"]
    assert generate_answers(questions, Rng(7)) == generate_answers(questions, Rng(7))
    assert len({repr(generate_answers(questions, Rng(s))) for s in range(10)}) > 1


def test_given_answers_override_and_unknown_ids_are_not_sent() -> None:
    questions = demo_survey().to_client()["questions"]
    answers = generate_answers(questions, Rng(0), {"fun": 3, "one": "no", "not_a_question": 1})
    assert answers["fun"] == 3 and answers["one"] == "no"
    assert "not_a_question" not in answers


def test_answer_kinds_without_a_server_validator() -> None:
    rng = Rng(1)
    questions = [
        {"id": "n", "kind": "number", "min": 3, "max": 9, "step": 2},
        {"id": "d", "kind": "choice", "options": [{"value": "v1", "label": "V1"}, {"value": "v2", "label": "V2"}]},
        {"id": "x", "kind": "drawing"},        # unknown kind: left out
        {"kind": "likert", "scale": 5},         # no id: left out
    ]
    for _ in range(30):
        answers = generate_answers(questions, rng)
        assert answers["n"] in (3, 5, 7, 9)
        assert answers["d"] in ("v1", "v2")
        assert set(answers) == {"n", "d"}


# ----------------------------------------------------------------------------- policies


def test_random_policy_is_sticky_valid_and_seeded() -> None:
    env = Cooking()
    players = list(env.players)
    a, b = Policy("random", env, players, 3), Policy("random", env, players, 3)
    frames = [a.actions({}, f) for f in range(400)]
    assert frames == [b.actions({}, f) for f in range(400)]
    space = env.action_space
    assert all(space.contains(action) for step in frames for action in step.values())
    changes = sum(frames[i] != frames[i - 1] for i in range(1, len(frames)))
    assert 10 < changes < 200   # held for a while, but not frozen


def test_idle_and_callable_policies() -> None:
    env = Pong()
    assert Policy("idle", env, ["left"], 0).actions({}, 5) == {"left": env.default_action}
    seen: list[tuple[str, Any, int]] = []

    def policy(player: str, observation: Any, frame: int) -> int:
        seen.append((player, observation, frame))
        return 1

    assert Policy(policy, env, ["right"], 0).actions({"right": "obs"}, 9) == {"right": 1}
    assert seen == [("right", "obs", 9)]
    with pytest.raises(ValueError, match="policy must be"):
        Policy("smart", env, ["left"], 0)


# ----------------------------------------------------------------------------- MatchClient over the relay


def pong_start(seat: str, episode: int = 0, **extra: Any) -> dict[str, Any]:
    """A match_start payload as the server sends it, for one seat of a two-seat Pong."""
    players, peers = (["left"], {"B": ["right"]}) if seat == "A" else (["right"], {"A": ["left"]})
    return {"match": "m", "episode": episode, "episodes": 2, "seed": 11, "seat": seat, "players": players,
            "peers": peers, "game": "game.games.pong:Pong", "config": {"max_score": 1, "max_frames": 300},
            "fps": 60, "netcode": {"input_delay": 1}, "keys": {}, **extra}


def test_match_client_outbox_gives_packet_events() -> None:
    now = [0.0]
    client = MatchClient(pong_start("A", episode=2), Pong, lambda: now[0])
    client.tick({"left": 1})
    packets = client.outbox()
    assert packets and all(set(p) == {"match", "episode", "to", "data"} for p in packets)
    assert {(p["match"], p["episode"], p["to"]) for p in packets} == {("m", 2, "B")}
    assert client.outbox() == []   # taken once


def test_relayed_packets_are_drained_in_order_and_pushing_is_thread_safe() -> None:
    transport = RelayTransport()
    assert transport.receive() == []
    transport.push("a", "1", 0.5)
    transport.push("b", "2", 0.75)
    assert transport.receive() == [("a", "1", 0.5), ("b", "2", 0.75)]
    assert transport.receive() == []

    def pusher(name: str) -> None:
        for i in range(2000):
            transport.push(name, str(i), 0.0)

    threads = [threading.Thread(target=pusher, args=(f"p{k}",)) for k in range(4)]
    for thread in threads:
        thread.start()
    received: list[tuple[str, str, float]] = []
    while any(t.is_alive() for t in threads):
        received += transport.receive()
    for thread in threads:
        thread.join()
    received += transport.receive()
    assert len(received) == 8000
    for k in range(4):   # each sender's packets arrive in the order they were pushed, none lost
        assert [int(d) for s, d, _ in received if s == f"p{k}"] == list(range(2000))


def test_router_delivers_to_the_current_episode_and_stashes_early_packets() -> None:
    router = PacketRouter()
    first = MatchClient(pong_start("A", episode=0), Pong, lambda: 0.0)
    router.attach(first)
    router.route({"match": "m", "episode": 0, "from": "b", "data": "x"})
    router.route({"match": "m", "episode": 1, "from": "b", "data": "early"})   # peer is already in episode 1
    router.route({"match": "m", "episode": 0, "from": 5, "data": "x"})         # malformed: dropped
    router.route(["not", "a", "dict"])
    assert first.transport.receive() == [("b", "x", 0.0)]
    second = MatchClient(pong_start("A", episode=1), Pong, lambda: 0.0)
    router.attach(second)
    assert second.transport.receive() == [("b", "early", 0.0)]
    router.attach(None)
    router.route({"match": "m", "episode": 1, "from": "b", "data": "late"})
    assert second.transport.receive() == []


def test_two_match_clients_play_an_episode_over_the_router() -> None:
    """MatchClient and PacketRouter as the headless participant uses them, with a relay standing in
    for the server."""
    routers = {"A": PacketRouter(), "B": PacketRouter()}
    now = [0.0]
    peers = {}
    for seat in ("A", "B"):
        client = MatchClient(pong_start(seat), Pong, lambda: now[0])
        routers[seat].attach(client)
        peers[seat] = (client, Policy("random", client.env, client.players, ord(seat)))
    for _ in range(2000):
        now[0] += 1000 / 60
        for seat, (client, policy) in peers.items():
            client.tick({} if client.done else policy.actions(client.observations, client.session.current_frame))
            for packet in client.outbox():
                routers[packet["to"]].route({"match": packet["match"], "episode": packet["episode"],
                                             "from": seat, "data": packet["data"]})
        if all(client.done for client, _ in peers.values()):
            break
    a, b = peers["A"][0], peers["B"][0]
    assert a.done is not None and b.done is not None
    assert set(a.done["predicted"]) == {"right"} and set(b.done["predicted"]) == {"left"}
    assert {**a.done, "predicted": None} == {**b.done, "predicted": None}
    assert a.done["frame"] == a.session.end_frame == b.session.end_frame
    assert a.desyncs == b.desyncs == [] and a.session.stats.desyncs == 0


def test_match_client_passes_on_time_syncs_advice_to_skip_ticks() -> None:
    """A seat ticking twice as fast as its peer is told to leave ticks out; the slow one is not."""
    now = [0.0]
    clients = {seat: MatchClient(pong_start(seat, config={"max_score": 99, "max_frames": 5000}), Pong,
                                 lambda: now[0]) for seat in ("A", "B")}
    skipped = {"A": 0, "B": 0}
    for tick in range(1200):
        now[0] += 1000 / 120
        for seat, client in clients.items():
            if seat == "A" or tick % 2 == 0:
                client.tick({client.players[0]: 0})
            for packet in client.outbox():
                clients[packet["to"]].receive(seat, packet["data"])
            skipped[seat] += client.take_skip_frames()
    assert skipped["A"] > 0 and skipped["B"] == 0
    assert clients["A"].take_skip_frames() == 0   # taken once


# ----------------------------------------------------------------------------- URLs


def test_split_url() -> None:
    assert split_url("http://127.0.0.1:5000") == ("http://127.0.0.1:5000/", "http://127.0.0.1:5000", {})
    entry, server, params = split_url("https://host.example/study/?STUDY_ID=s1")
    assert (entry, server, params) == ("https://host.example/study/", "https://host.example", {"STUDY_ID": "s1"})
    with pytest.raises(ValueError):
        split_url("ftp://127.0.0.1/")


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:5000", "http://localhost:5000/", "http://[::1]:5000", "https://127.0.0.2/",
    "http://LOCALHOST:80/?x=1",
])
def test_loadtest_allows_loopback(url: str) -> None:
    assert loadtest.is_loopback_url(url)
    assert loadtest.check_url(url, allow_remote=False) is None


@pytest.mark.parametrize("url", [
    "http://example.com:5000", "http://10.0.0.5:5000", "http://192.168.1.2/", "http://[2001:db8::1]:5000",
    "http://127.0.0.1.example.com/", "http://0.0.0.0:5000",
])
def test_loadtest_refuses_remote(url: str) -> None:
    assert not loadtest.is_loopback_url(url)
    assert "not this machine" in (loadtest.check_url(url, allow_remote=False) or "")
    assert loadtest.check_url(url, allow_remote=True) is None


def test_loadtest_refuses_what_is_not_http() -> None:
    assert "not an http(s) URL" in (loadtest.check_url("127.0.0.1:5000", allow_remote=True) or "")
    assert "not an http(s) URL" in (loadtest.check_url("ws://127.0.0.1:5000", allow_remote=False) or "")


def test_loadtest_command_refuses_remote_with_status_2(capsys: pytest.CaptureFixture[str]) -> None:
    from app.cli import main

    assert main(["loadtest", "http://example.com:5000", "--participants", "1"]) == 2
    assert "--allow-remote" in capsys.readouterr().err


# ----------------------------------------------------------------------------- without a server


def test_participant_without_a_server_fails_cleanly_and_quickly() -> None:
    started = time.monotonic()
    result = HeadlessParticipant(f"http://127.0.0.1:{free_port()}", connect_timeout=2).run(timeout=5)
    assert not result.completed and not result.ok
    assert result.reason.startswith("entry page failed")
    assert time.monotonic() - started < 5


def test_loadtest_summary_counts_and_reasons() -> None:
    good = ParticipantResult(completed=True, reason="completed", outcome="completed",
                             matches=[{"match": "m1", "reason": "completed"}], connect_seconds=0.1,
                             waiting_seconds=[1.0], episodes=[{"status": "done"}])
    partner = ParticipantResult(completed=True, reason="completed", outcome="completed",
                                matches=[{"match": "m1", "reason": "completed"}], connect_seconds=0.3,
                                waiting_seconds=[2.0], episodes=[{"status": "done"}],
                                disconnects=[{"source": "server", "by": "ai"}])
    desynced = ParticipantResult(completed=True, reason="completed", outcome="completed",
                                 desyncs=[{"frame": 10}], connect_seconds=0.2)
    lost = ParticipantResult(completed=False, reason="timeout")
    cut = ParticipantResult(completed=False, reason="disconnected (transport close)")
    gone = ParticipantResult(completed=False, reason="dropped at frame 30", dropped=True)
    summary = loadtest.summarise("http://127.0.0.1:5000", [good, partner, desynced, lost, cut, gone], 3.0)
    assert summary["participants"] == 6
    assert summary["completed"] == 3
    assert summary["failed"] == 3 and summary["dropped"] == 1
    assert [f["reason"] for f in summary["failures"]] == ["1 desync(s)", "timeout", "disconnected (transport close)"]
    assert summary["matches"] == 1 and summary["episodes"] == 2
    assert summary["desyncs"] == 1
    assert summary["disconnects"] == 1 and summary["partner_drops"] == 1 and summary["partner_drops_by"] == {"ai": 1}
    assert summary["connect_seconds"]["mean"] == 0.2 and summary["connect_seconds"]["max"] == 0.3
    assert summary["connect_seconds"]["samples"] == 3 and summary["connect_seconds"]["p50"] == 0.2
    assert summary["waiting_seconds"]["mean"] == 1.5 and summary["waiting_seconds"]["max"] == 2.0
    assert summary["first_frame_seconds"]["mean"] is None and summary["first_frame_seconds"]["samples"] == 0
    assert summary["samples"]["connect_seconds"] == [0.1, 0.3, 0.2]
    assert len(summary["results"]) == 6
    text = loadtest.format_summary(summary)
    assert "6 started, 3 completed, 3 failed, 1 dropped" in text and "failed x1: timeout" in text


def test_a_match_left_without_match_end_is_marked_seat_taken_over() -> None:
    """The server gave this participant's seat to an AI and moved it on: no match_end came."""
    participant = HeadlessParticipant("http://127.0.0.1:9/")
    taken = {"match": "m1", "scene": 1, "reason": None}
    ended = {"match": "m0", "scene": 0, "reason": "completed"}
    participant.result.matches += [ended, taken]
    participant._scene_index = 1
    with pytest.raises(_Finished):
        participant._on_scene({"index": 2, "scene": {"kind": "end", "outcome": "completed"}})
    assert taken["reason"] == SEAT_TAKEN_OVER and ended["reason"] == "completed"


def test_a_hosted_onnx_seat_needs_its_model_whole_in_the_bundle(tmp_path: Any) -> None:
    import base64
    import hashlib

    from app.participant.bundle_models import BundleModels
    from game.adapters.onnx_policy import OnnxPolicy, OnnxPolicyError
    from game.loader import LoadError
    from game.spaces import Discrete
    from tests.test_onnx_policy import tracker_model

    model = tracker_model(tmp_path / "t.onnx").read_bytes()
    participant = HeadlessParticipant("http://127.0.0.1:9/")
    entry = {"base64": base64.b64encode(model).decode(), "sha256": hashlib.sha256(model).hexdigest(),
             "observation_keys": ["ball.1", "paddle"]}
    participant._bundle_models = BundleModels({"onnx:good": entry, "onnx:bad": {**entry, "sha256": "0" * 64},
                                               "onnx:mangled": {**entry, "base64": "not base64!"}})
    with pytest.raises(LoadError, match=r"the ONNX policy of 'right' \(onnx:gone\) is not in the game bundle"):
        participant._policy_class("right", "onnx:gone")
    with pytest.raises(OnnxPolicyError, match="onnx:bad does not match its sha256"):
        participant._policy_class("right", "onnx:bad")
    with pytest.raises(OnnxPolicyError, match="onnx:mangled is not base64"):
        participant._policy_class("right", "onnx:mangled")
    loaded = participant._policy_class("right", "onnx:good")
    assert isinstance(loaded, OnnxPolicy) and loaded.observation_keys == ("ball.1", "paddle")
    assert participant._policy_class("right", "onnx:good") is loaded   # loaded once
    player = loaded()
    player.setup("right", Discrete(3), 0)
    assert player.act({"ball": [50.0, 90.0], "paddle": 30.0}) == 2   # the ball is below: down
