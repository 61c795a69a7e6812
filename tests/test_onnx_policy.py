"""ONNX policies (game/adapters/onnx_policy.py): tiny models built here with onnx's helper API
(no downloaded weights), run with onnxruntime; as a server bot in a real served match (eventlet
server on loopback) against a headless participant; the recording replays and exports."""
from __future__ import annotations

import csv
import base64
import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from app.analysis.export import export
from app.analysis.policy_replay import agreement, policy_steps
from app.data.recording import read_recording
from app.analysis.replay import episode_lengths, episode_sim, resolve_game
from app.participant.headless import HeadlessParticipant
from game.adapters.onnx_policy import OnnxPolicy, OnnxPolicyError, default_action_of, flatten_observation
from game.games.pong import Pong
from game.paced_policy import PacedPolicy, policy_seed
from game.spaces import Box, Discrete
from scenes import AISeat, Experiment, ExperimentError, Match
from scenes.policies import Bot, resolve_policy
from tests.server_fixtures import Server, pid, replay_recording

STAY, UP, DOWN = 0, 1, 2
TRACKER_KEYS = ("ball.1", "paddle")   # the input of the tracker model: [ball y, own paddle y]


def tracker_model(path: Path, dead_zone: float = 8.0, argmax: bool = True) -> Path:
    """A Pong paddle that follows the ball: Gemm [ball_y, paddle] -> logits (stay, up, down), then ArgMax.
    up = paddle - ball_y - dead_zone, down = ball_y - paddle - dead_zone, stay = 0."""
    weights = helper.make_tensor("W", TensorProto.FLOAT, [2, 3], [0.0, -1.0, 1.0, 0.0, 1.0, -1.0])
    bias = helper.make_tensor("B", TensorProto.FLOAT, [3], [0.0, -dead_zone, -dead_zone])
    nodes = [helper.make_node("Gemm", ["obs", "W", "B"], ["logits"])]
    output = helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 3])
    if argmax:
        nodes.append(helper.make_node("ArgMax", ["logits"], ["action"], axis=1, keepdims=0))
        output = helper.make_tensor_value_info("action", TensorProto.INT64, [1])
    graph = helper.make_graph(nodes, "pong_tracker", [helper.make_tensor_value_info("obs", TensorProto.FLOAT, [1, 2])],
                              [output], initializer=[weights, bias])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def expected_tracker(observation: dict[str, Any], dead_zone: float = 8.0) -> int:
    gap = observation["ball"][1] - observation["paddle"]
    if gap > dead_zone:
        return DOWN
    if -gap > dead_zone:
        return UP
    return STAY


def make_player(policy: OnnxPolicy) -> Any:
    player = policy.load()()
    player.setup("right", Discrete(3), 0)
    return player


# ----------------------------------------------------------------------------- the policy itself


def test_the_tracker_model_moves_toward_the_ball_with_observation_keys(tmp_path: Path) -> None:
    player = make_player(OnnxPolicy(str(tracker_model(tmp_path / "t.onnx")), observation_keys=TRACKER_KEYS))
    env = Pong({})
    observations = env.reset(3)
    seen = set()
    for frame in range(400):
        obs = observations["right"]
        action = player.act(obs)
        assert action == expected_tracker(obs), (frame, obs)
        seen.add(action)
        observations = env.step({"left": frame % 3, "right": action})["observations"]
    assert seen == {STAY, UP, DOWN}


def test_logits_without_argmax_take_the_argmax_and_a_custom_preprocess_feeds_the_model(tmp_path: Path) -> None:
    path = str(tracker_model(tmp_path / "logits.onnx", argmax=False))
    player = make_player(OnnxPolicy(path, preprocess=lambda o: np.array([[o["y"], o["p"]]], dtype=np.float32)))
    assert [player.act({"y": y, "p": 300.0}) for y in (100.0, 300.0, 500.0)] == [UP, STAY, DOWN]
    mirrored = make_player(OnnxPolicy(path, preprocess=lambda o: [[o["y"], o["p"]]],
                                      postprocess=lambda outputs, space: (3 - int(outputs[0].argmax())) % 3))
    assert [mirrored.act({"y": y, "p": 300.0}) for y in (100.0, 300.0, 500.0)] == [DOWN, STAY, UP]


def test_default_pre_and_postprocessing() -> None:
    assert flatten_observation({"a": [1, 2.5], "b": True, "c": {"d": 3}}) == [1.0, 2.5, 1.0, 3.0]
    with pytest.raises(OnnxPolicyError, match=r"observation\.side is a str; pass OnnxPolicy\(path, observation_keys"):
        flatten_observation({"side": "left"})
    assert default_action_of([np.array([[0.1, 0.9, 0.3]], dtype=np.float32)], Discrete(3)) == 1
    assert default_action_of([np.array([[0.1, 0.9, 0.3]], dtype=np.float32)], Discrete(3, start=-1)) == 0
    assert default_action_of([np.array([2], dtype=np.int64)], Discrete(3)) == 2
    assert default_action_of([np.array([[1.5, -0.2]], dtype=np.float32)], Box(-1.0, 1.0, (2,))) == [1.0,
                                                                                                     pytest.approx(-0.2)]
    assert default_action_of([np.array([[2.6]], dtype=np.float32)], Box(0, 5, (), integer=True)) == 3


def test_the_whole_observation_is_flattened_by_default(tmp_path: Path) -> None:
    player = make_player(OnnxPolicy(str(tracker_model(tmp_path / "t.onnx"))))
    assert player.act({"ball_y": 100.0, "paddle": 300.0}) == UP and player.act([500.0, 300.0]) == DOWN


def test_the_spec_string_loads_from_the_experiment_folder_and_records_the_models_hash(tmp_path: Path) -> None:
    (tmp_path / "models").mkdir()
    path = tracker_model(tmp_path / "models" / "t.onnx")

    class Folder:
        base_dir = str(tmp_path)

        def __call__(self, spec: str) -> type:
            raise AssertionError("not a class spec")

    factory = resolve_policy("onnx:models/t.onnx", Folder())
    assert factory.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    bot = Bot(factory, player="right", action_space=Discrete(3), default_action=0, seed=1)
    assert bot.act({"ball_y": 500.0, "paddle": 300.0}) == DOWN
    seat = AISeat("onnx:models/t.onnx", seed=4)
    seat.resolve(Folder())
    assert seat.record(99, "s1")["model_sha256"] == factory.sha256


@pytest.mark.parametrize("write, message", [
    (None, "ONNX model models/x.onnx cannot be read (No such file or directory"),
    (b"not a model", "models/x.onnx is not a usable ONNX model"),
])
def test_a_missing_or_malformed_model_is_refused_at_validation(tmp_path: Path, write: bytes | None,
                                                                message: str) -> None:
    (tmp_path / "models").mkdir()
    if write is not None:
        (tmp_path / "models" / "x.onnx").write_bytes(write)
    from game.loader import GameLoader

    match = Match("pong", "game.games.pong:Pong", humans=["left"], ai={"right": "onnx:models/x.onnx"})
    with pytest.raises(ExperimentError) as caught:
        Experiment("x", scenes=[match]).validate(GameLoader(str(tmp_path)))
    assert "ai['right']: policy 'onnx:models/x.onnx' could not be loaded" in str(caught.value)
    assert message in str(caught.value)


def test_onnx_settings_are_checked_before_any_file_is_read() -> None:
    for policy, message in [
        ("onnx:model.pt", "an ONNX policy needs a path ending in .onnx, got 'model.pt'"),
        (OnnxPolicy("m.onnx", preprocess=3), "OnnxPolicy preprocess must be a function, got int"),  # type: ignore[arg-type]
        (OnnxPolicy("m.onnx", observation_keys=[]), "observation_keys must be a non-empty list of dotted paths"),
        (OnnxPolicy("m.onnx", observation_keys=["a"], preprocess=list), "preprocess= or observation_keys=, not both"),
    ]:
        match = Match("pong", "game.games.pong:Pong", humans=["left"], ai={"right": policy})
        with pytest.raises(ExperimentError, match="ai\\['right'\\]: ") as caught:
            Experiment("x", scenes=[match]).validate()
        assert message in str(caught.value)


def test_a_server_with_a_missing_model_stops_at_start_saying_what_to_do(tmp_path: Path) -> None:
    import subprocess
    import sys

    from tests.server_fixtures import ROOT, free_port

    experiment = tmp_path / "experiment.py"
    experiment.write_text(EXPERIMENT.replace("tracker.onnx", "missing.onnx"))
    done = subprocess.run([sys.executable, "-m", "app.cli", "serve", str(experiment), "--port", str(free_port()),
                           "--data", str(tmp_path / "data")], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert "ONNX model missing.onnx cannot be read" in done.stderr and "put the .onnx file there" in done.stderr


# ----------------------------------------------------------------------------- served: a bot in a real match

DELAY, REPEAT, SEED = 5, 3, 11
EXPERIMENT = f'''
from scenes import AISeat, End, Experiment, Match, OnnxPolicy, WaitingRoom

EXPERIMENT = Experiment(id="onnx", scenes=[
    Match(id="pong", game="game.games.pong:Pong", config={{"max_score": 2, "max_frames": 360}},
          humans=["left"], episodes=2, fps=60, waiting_room=WaitingRoom(timeout_s=5, on_timeout="leave"),
          ai={{"right": AISeat(OnnxPolicy("tracker.onnx", observation_keys=["ball.1", "paddle"]),
                              reaction_delay_frames={DELAY}, action_repeat={REPEAT}, seed={SEED}, reveal=True)}}),
    End(id="end", html="<p>Thanks</p>", completion_code="ONNX"),
])
'''


@pytest.fixture(scope="module")
def played(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    folder = tmp_path_factory.mktemp("onnx")
    tracker_model(folder / "tracker.onnx")
    (folder / "experiment.py").write_text(EXPERIMENT)
    server = Server(["serve", str(folder / "experiment.py")], folder / "data")
    starts: list[dict[str, Any]] = []
    try:
        participant = HeadlessParticipant(server.url, {"PROLIFIC_PID": pid()}, seed=5,
                                          on_event=lambda name, payload: starts.append(payload)
                                          if name == "match_start" else None)
        result = participant.run(90)
        match_id = result.matches[0]["match"] if result.matches else None
        replayed = replay_recording(server, "onnx", match_id) if match_id else None
    finally:
        server.stop()
    return {"folder": folder, "server": server, "result": result, "match": match_id, "replayed": replayed,
            "starts": starts}


def test_an_onnx_bot_plays_a_served_match_that_replays(played: dict[str, Any]) -> None:
    result = played["result"]
    assert result.completed and result.ok and not result.desyncs, result.to_json()
    assert result.completion_code == "ONNX" and [e["status"] for e in result.episodes] == ["done", "done"]
    assert played["replayed"].ok and played["replayed"].frames > 100, played["replayed"]
    # reveal=True: the participant's match_start names the AI seat
    assert [s["ai_peers"] for s in played["starts"]] == [["s1"], ["s1"]]


def test_the_recording_names_the_seats_settings_and_the_models_hash(played: dict[str, Any]) -> None:
    folder: Path = played["folder"]
    recording = read_recording(str(folder / "data" / "onnx" / "recordings" / f"{played['match']}.jsonl"))
    ai = recording.header["seats"]["s1"]["ai"]
    assert ai == {"policy": "onnx:tracker.onnx", "runs": "server", "seed": SEED, "reaction_delay_frames": DELAY,
                  "action_repeat": REPEAT, "reveal": True,
                  "model_sha256": hashlib.sha256((folder / "tracker.onnx").read_bytes()).hexdigest()}
    assert recording.header["seats"]["s0"]["ai"] is None and recording.header["seats"]["s0"]["kind"] == "human"


def test_the_recorded_inputs_show_the_delay_and_the_repeat_exactly(played: dict[str, Any]) -> None:
    """Re-simulate each episode and rebuild what the bot must have sent: the tracker's decision on frames
    0, 3, 6, ... played 5 frames later and held 3 frames; STAY before frame 5."""
    folder: Path = played["folder"]
    recording = read_recording(str(folder / "data" / "onnx" / "recordings" / f"{played['match']}.jsonl"))
    game = resolve_game(recording)
    right = recording.players.index("right")
    played_actions: set[int] = set()
    for episode, data in recording.episodes.items():
        sim = episode_sim(recording, game, episode, episode_lengths(recording)[episode])
        decisions: dict[int, int] = {}
        sent: list[int] = []
        while not sim.done:
            frame = sim.frame
            if frame % REPEAT == 0:
                decisions[frame] = expected_tracker(sim.observations["right"])
            sent.append(data["inputs"][frame][right])
            sim.step()
        expected = [STAY if f < DELAY else decisions[(f - DELAY) - (f - DELAY) % REPEAT] for f in range(len(sent))]
        assert sent == expected, f"episode {episode}"
        played_actions.update(sent)
        changes = [f for f in range(1, len(sent)) if sent[f] != sent[f - 1]]
        assert all((f - DELAY) % REPEAT == 0 for f in changes), changes
    assert played_actions == {STAY, UP, DOWN}   # the bot moved both ways


def test_the_export_lists_the_ai_seats_kind_policy_runs_and_seed(played: dict[str, Any], tmp_path: Path) -> None:
    folder: Path = played["folder"]
    [result] = export(str(folder / "data" / "onnx"), "csv", str(tmp_path / "out"))
    assert not result.skipped, result.skipped
    with open(tmp_path / "out" / "steps.csv", newline="") as file:
        rows = list(csv.DictReader(file))
    bot_rows = [r for r in rows if r["player"] == "right"]
    human_rows = [r for r in rows if r["player"] == "left"]
    assert bot_rows and human_rows
    assert {(r["seat_kind"], r["policy"], r["policy_runs"]) for r in bot_rows} == {("ai", "onnx:tracker.onnx", "server")}
    assert {(r["episode"], r["policy_seed"]) for r in bot_rows} == {("0", str(SEED)), ("1", str(policy_seed(SEED, 1)))}
    assert {(r["seat_kind"], r["policy"], r["policy_runs"], r["policy_seed"]) for r in human_rows} == {
        ("human", "", "", "")}
    with open(tmp_path / "out" / "matches.csv", newline="") as file:
        matches = list(csv.DictReader(file))
    assert json.loads(matches[0]["seats"])["s1"]["ai"]["seed"] == SEED   # the store keeps it too


def test_replay_time_analysis_runs_the_onnx_policy_on_the_recorded_observations(played: dict[str, Any]) -> None:
    folder: Path = played["folder"]
    path = str(folder / "data" / "onnx" / "recordings" / f"{played['match']}.jsonl")
    model = OnnxPolicy(str(folder / "tracker.onnx"), observation_keys=TRACKER_KEYS)
    own = list(policy_steps(path, AISeat(model, reaction_delay_frames=DELAY, action_repeat=REPEAT), "right"))
    assert len(own) > 100 and {s.episode for s in own} == {0, 1}
    assert agreement(own) == 1.0   # the seat's own settings reproduce every recorded input of the bot
    undelayed = list(policy_steps(path, model, "right"))
    assert [s.chosen for s in undelayed] == [expected_tracker(s.observation) for s in undelayed]
    assert agreement(undelayed) < 1.0   # without the delay and repeat it would have played otherwise
    with pytest.raises(ValueError, match=r"the recording has no player 'top'; its players are \['left', 'right'\]"):
        next(policy_steps(path, model, "top"))


def test_paced_onnx_policy_matches_a_python_reference_offline(tmp_path: Path) -> None:
    """The same wrapper the bot uses, offline: delay and repeat on top of the ONNX player."""
    player = PacedPolicy(make_player(OnnxPolicy(str(tracker_model(tmp_path / "t.onnx")),
                                                observation_keys=TRACKER_KEYS)),
                         reaction_delay_frames=2, action_repeat=1, default_action=STAY)
    observations = [{"ball": [0.0, y], "paddle": 300.0} for y in (100.0, 500.0, 300.0, 100.0, 100.0)]
    assert [player.act(o, f) for f, o in enumerate(observations)] == [STAY, STAY, UP, DOWN, STAY]


# ----------------------------------------------------------------------------- in the browser worker's glue

def test_the_default_postprocess_reads_onnxruntime_web_outputs_without_numpy() -> None:
    assert default_action_of([{"data": [2], "dims": [1], "type": "int64"}], Discrete(3)) == 2
    assert default_action_of([{"data": [0.1, 0.9, 0.9], "dims": [1, 3], "type": "float32"}], Discrete(3)) == 1
    assert default_action_of([{"data": [1.5, -0.2], "dims": [1, 2], "type": "float32"}], Box(-1.0, 1.0, (2,))) == \
        [1.0, -0.2]
    assert default_action_of([[[0.2, 2.6], [9.0, -3.0]]], Box(0, 5, (2, 2), integer=True)) == [[0, 3], [5, 0]]
    with pytest.raises(OnnxPolicyError, match=r"has 3 numbers; the Box action space of shape \(2,\) needs 2"):
        default_action_of([{"data": [1.0, 2.0, 3.0], "type": "float32"}], Box(-1.0, 1.0, (2,)))


def test_the_glue_asks_for_the_models_input_on_decision_frames_and_plays_its_outputs(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What static/worker_core.js does each tick, with CPython onnxruntime standing in for onnxruntime-web:
    ai_inputs() on the decision frames only, the model run on them, its outputs passed to tick()."""
    import importlib.util
    import json
    import sys

    import onnxruntime

    from game.adapters.onnx_policy import worker_model_name
    from tests.test_worker_glue import GLUE_FILE

    monkeypatch.setattr(sys, "path", list(sys.path))
    spec = importlib.util.spec_from_file_location("worker_glue_onnx", GLUE_FILE)
    assert spec is not None and spec.loader is not None
    glue = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "worker_glue_onnx", glue)
    spec.loader.exec_module(glue)
    path = tracker_model(tmp_path / "t.onnx")
    name = worker_model_name(OnnxPolicy(str(path), observation_keys=TRACKER_KEYS))
    glue.load(str(tmp_path), "[]", json.dumps({name: {"observation_keys": list(TRACKER_KEYS)}}))
    ai = {"right": {"policy": name, "seed": 0, "reaction_delay_frames": 2, "action_repeat": 3}}
    glue.start(json.dumps({"match": "m1", "episode": 0, "episodes": 1, "seed": 7, "seat": "s0",
                           "players": ["left", "right"], "peers": {}, "game": "game.games.pong:Pong",
                           "config": {"max_frames": 200}, "fps": 60, "netcode": {"input_delay": 0},
                           "keys": {}, "local_ai": ai}), "game.games.pong:Pong")
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    reference = make_player(OnnxPolicy(str(path), observation_keys=TRACKER_KEYS))
    try:
        with pytest.raises(OnnxPolicyError, match="no outputs for this decision"):
            glue.tick("{}", "[]", False)   # frame 0 decides: the model's outputs must come with it
        decided = []
        for frame in range(150):
            inputs = json.loads(glue.ai_inputs())
            observation = glue._match.observations["right"]
            if inputs:
                assert inputs == {"right": {"model": name, "data": [observation["ball"][1], observation["paddle"]]}}
                action = session.run(None, {"obs": [inputs["right"]["data"]]})[0]
                outputs = {"right": [{"data": action.tolist(), "dims": [1], "type": "int64"}]}
                decided.append((frame, default_action_of(outputs["right"], Discrete(3)), reference.act(observation)))
            glue.tick(json.dumps({"left": frame // 20 % 3}), "[]", False, json.dumps(outputs) if inputs else "{}")
        assert [f for f, _, _ in decided] == list(range(0, 150, 3))
        assert all(mine == theirs for _, mine, theirs in decided) and {a for _, a, _ in decided} >= {UP, DOWN}
    finally:
        glue.terminate()


# ----------------------------------------------------------------------------- onnxruntime-web, served

def test_onnxruntime_web_is_served_immutable_and_precompressed_under_its_version(tmp_path: Path) -> None:
    """The files the worker loads (app/pyodide/bundle.py ONNXRUNTIME_WEB_FILES), from set-up's brotli copies."""
    import brotli
    import requests

    from app.pyodide.bundle import ONNXRUNTIME_WEB_FILES, onnxruntime_web_folder, onnxruntime_web_version
    from app.web.precompress import precompress
    from tests.server_fixtures import ROOT

    dist, version = onnxruntime_web_folder(), onnxruntime_web_version()
    assert dist is not None and version, "onnxruntime-web is not installed: run scripts/setup"
    modules = tmp_path / "node_modules"
    (modules / "onnxruntime-web").mkdir(parents=True)
    (modules / "onnxruntime-web" / "dist").symlink_to(dist)
    (modules / "onnxruntime-web" / "package.json").symlink_to(dist.parent / "package.json")
    (modules / "pyodide").symlink_to(ROOT / "node_modules" / "pyodide")
    copies = precompress(dist, tmp_path / "node_modules.precompressed" / "onnxruntime-web", list(ONNXRUNTIME_WEB_FILES),
                         brotli_quality=5)
    assert {copy.name for copy in copies} >= {"ort-wasm-simd-threaded.wasm.br", "ort.wasm.min.mjs.gz"}
    server = Server(["demo"], tmp_path / "data", env={"COPLAY_NODE_MODULES": str(modules)})
    try:
        url = f"{server.url}/static/vendor/onnxruntime-web@{version}/"
        wasm = requests.get(url + "ort-wasm-simd-threaded.wasm", headers={"Accept-Encoding": "br"}, timeout=30,
                            stream=True)
        body = wasm.raw.read(decode_content=False)
        assert wasm.headers["Content-Encoding"] == "br" and wasm.headers["Content-Type"] == "application/wasm"
        assert "immutable" in wasm.headers["Cache-Control"] and "max-age=31536000" in wasm.headers["Cache-Control"]
        assert brotli.decompress(body) == (dist / "ort-wasm-simd-threaded.wasm").read_bytes()
        assert requests.get(url + "ort.wasm.min.mjs", timeout=30).headers["Content-Type"].startswith("text/javascript")
        for path in ("ort.all.min.mjs", "package.json"):   # only what the worker loads
            assert requests.get(url + path, timeout=30).status_code == 404
        assert requests.get(f"{server.url}/static/vendor/onnxruntime-web@0.0.1/ort.wasm.min.mjs",
                            timeout=30).status_code == 404
    finally:
        server.stop()


def test_the_bundle_ships_a_browser_seats_model_or_says_how_to_install_onnxruntime_web(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from app.pyodide.bundle import BundleError, build_bundle, onnxruntime_web_version
    from game.adapters.onnx_policy import worker_model_name
    from game.loader import GameLoader
    from scenes import End

    path = tracker_model(tmp_path / "t.onnx")
    seat = AISeat(OnnxPolicy("t.onnx", observation_keys=TRACKER_KEYS), runs="browser")
    experiment = Experiment(id="b", scenes=[Match("pong", "game.games.pong:Pong", humans=["left"], ai={"right": seat}),
                                            End(id="end", html="<p>bye</p>")])
    loader = GameLoader(str(tmp_path))
    experiment.validate(loader)
    bundle = build_bundle(experiment, loader.absolute)
    name = worker_model_name(seat.factory)
    assert bundle["onnx"]["runtime"] == f"/static/vendor/onnxruntime-web@{onnxruntime_web_version()}/"
    model = bundle["onnx"]["models"][name]
    assert base64.b64decode(model["base64"]) == path.read_bytes() and model["observation_keys"] == list(TRACKER_KEYS)
    assert model["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert "onnx" not in build_bundle(Experiment(id="p", scenes=[Match("pong", "game.games.pong:Pong",
                                                                       humans=["left", "right"])]), loader.absolute)
    monkeypatch.setenv("COPLAY_NODE_MODULES", str(tmp_path / "empty"))
    with pytest.raises(BundleError, match=r"needs onnxruntime-web, which is not installed .*run scripts/setup"):
        build_bundle(experiment, loader.absolute)


def test_the_bundle_ships_the_models_of_every_match_scene_and_builds_without_any(tmp_path: Path) -> None:
    from app.pyodide.bundle import build_bundle
    from game.adapters.onnx_policy import worker_model_name
    from game.loader import GameLoader
    from scenes import End, Page

    tracker_model(tmp_path / "t.onnx")
    seat = AISeat(OnnxPolicy("t.onnx", observation_keys=TRACKER_KEYS), runs="browser")
    experiment = Experiment(id="b", scenes=[
        Match("with-ai", "game.games.pong:Pong", humans=["left"], ai={"right": seat}),
        Match("humans", "game.games.pong:Pong", humans=["left", "right"]),
        End(id="end", html="<p>bye</p>")])
    loader = GameLoader(str(tmp_path))
    experiment.validate(loader)
    assert list(build_bundle(experiment, loader.absolute)["onnx"]["models"]) == [worker_model_name(seat.factory)]
    no_match = Experiment(id="n", scenes=[Page("p", "Hello", markdown="hi"), End(id="end", html="<p>bye</p>")])
    assert "onnx" not in build_bundle(no_match, loader.absolute)
