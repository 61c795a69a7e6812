"""An AI seat with runs="browser" in real Chromium against the real server: the demo's kitchen with the AI
partner played in the participant's worker (a local player of their peer), and the seat moving to a server
bot when the hosting page goes away. The recordings replay, attribute the AI's inputs to its seat (where it
ran, its seed), and hold exactly what the seat's policy chooses (app/analysis/policy_replay.py)."""
from __future__ import annotations

import csv
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from app.analysis.export import export
from app.analysis.policy_replay import agreement, policy_steps
from app.data.recording import Recording, read_recording
from game.adapters.onnx_policy import OnnxPolicy
from scenes.ai_seat import AISeat
from tests.browser_fixtures import open_participant
from tests.server_fixtures import Server, pid, replay_recording
from tests.test_onnx_policy import TRACKER_KEYS, tracker_model

PARTNER = AISeat("random", runs="browser", reaction_delay_frames=3, action_repeat=2, seed=11)
EXPERIMENT = '''
from scenes import AISeat, End, Experiment, Match

EXPERIMENT = Experiment(id="kitchen-ai", scenes=[
    Match(id="kitchen", game="game.games.cooking:Cooking", config={"time_limit": TIME_LIMIT}, humans=("chef_1",),
          ai={"chef_2": AISeat("random", runs="browser", reaction_delay_frames=3, action_repeat=2, seed=11)},
          episodes=1, fps=8, grace_s=120),
    End(id="end", html="<p>Thanks</p>", completion_code="KITCHEN"),
])
'''


def _server(folder: Path, time_limit: int) -> Server:
    (folder / "experiment.py").write_text(EXPERIMENT.replace("TIME_LIMIT", str(time_limit)))
    return Server(["serve", str(folder / "experiment.py")], folder / "data")


@pytest.fixture()
def server(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Server]:
    served = _server(tmp_path, request.param)
    yield served
    served.stop()


def _recording(server: Server, match: str, experiment: str = "kitchen-ai") -> Recording:
    return read_recording(str(server.data_dir / experiment / "recordings" / f"{match}.jsonl"))


def _wait_for_end(server: Server, match: str, timeout: float, experiment: str = "kitchen-ai") -> Recording:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        recording = _recording(server, match, experiment)
        ends = [e for e in recording.events if e.get("kind") == "match_end"]
        if ends:
            return recording
        time.sleep(0.5)
    events = [(e["kind"], e.get("frame")) for e in recording.events][-10:]
    raise AssertionError(f"match {match} did not end within {timeout} s; its last events: {events}; "
                         f"the server's log: {server.log_path.read_text()[-3000:]}")


def _play_through(browser: Any, server: Server, experiment: str) -> Recording:
    """One participant (autopilot) plays the match to its end; its recording."""
    page = open_participant(browser, server.url, f"PROLIFIC_PID={pid()}&autopilot=1")
    try:
        state = page.wait_for(lambda s: bool(s.get("match", {}).get("checksums")), 120, "the match to end")
        assert not page.console_errors, page.console_errors
    finally:
        page.close()
    return _wait_for_end(server, state["match"]["checksums"][0]["match"], 30, experiment)


def _steps(server: Server, out: Path, experiment: str = "kitchen-ai") -> list[dict[str, str]]:
    export(str(server.data_dir / experiment), "csv", str(out))
    with open(out / "steps.csv", newline="") as file:
        return list(csv.DictReader(file))


def _chef_2_inputs(recording: Recording) -> list[Any]:
    column = recording.players.index("chef_2")
    return [inputs[column] for inputs in recording.episodes[0]["inputs"]]


@pytest.mark.parametrize("server", [120], indirect=True)
def test_the_ai_partner_plays_in_the_participants_worker(browser: Any, server: Server, tmp_path: Path) -> None:
    recording = _play_through(browser, server, "kitchen-ai")
    seats = recording.header["seats"]
    assert seats["s1"]["players"] == ["chef_2"] and seats["s1"]["kind"] == "ai"
    assert seats["s1"]["ai"]["runs"] == "browser" and seats["s1"]["ai"]["seed"] == 11
    assert [e["data"]["reason"] for e in recording.events if e["kind"] == "match_end"] == ["completed"]
    assert not [e for e in recording.events if e["kind"] == "seat_changed"]
    replayed = subprocess.run([sys.executable, "-m", "app.cli", "replay", "--verify", recording.path],
                              capture_output=True, text=True, timeout=120)
    assert replayed.returncode == 0, replayed.stdout + replayed.stderr
    # What the worker played is exactly what the seat's policy (seed, delay, repeat) chooses, as a server bot would.
    steps = list(policy_steps(recording, PARTNER, "chef_2"))
    assert len(steps) >= 120 and agreement(steps) == 1.0
    assert len(set(map(str, _chef_2_inputs(recording)))) > 1, "the AI partner never moved"
    rows = [r for r in _steps(server, tmp_path / "export") if r["player"] == "chef_2"]
    assert rows and {(r["policy"], r["policy_runs"], r["policy_seed"]) for r in rows} == {("random", "browser", "11")}


@pytest.mark.parametrize("server", [400], indirect=True)
def test_the_ai_partner_moves_to_a_server_bot_when_its_host_leaves(browser: Any, server: Server,
                                                                     tmp_path: Path) -> None:
    _host_leaves(browser, server, tmp_path, "kitchen-ai", "chef_2", PARTNER, end=400)


def _host_leaves(browser: Any, server: Server, tmp_path: Path, experiment: str, player: str, partner: AISeat,
                 end: int) -> None:
    """The hosting page goes away at frame 40 or later: a server bot with the same policy plays the AI seat on."""
    page = open_participant(browser, server.url, f"PROLIFIC_PID={pid()}&autopilot=1")
    try:
        state = page.wait_for(lambda s: s.get("match", {}).get("frame", 0) >= 40, 120, "the match to be under way")
        assert not page.console_errors, page.console_errors
    finally:
        page.close()   # the host leaves: its seat is held (a stand-in plays it), the AI partner moves to the server
    match = state["match"]["match"]
    recording = _wait_for_end(server, match, 90, experiment)
    assert [e["data"]["reason"] for e in recording.events if e["kind"] == "match_end"] == ["completed"]
    moved = [e for e in recording.events if e["kind"] == "seat_changed" and e["data"]["seat"] == "s1"]
    assert len(moved) == 1 and moved[0]["data"]["ai"]["runs"] == "server" and moved[0]["data"]["by"] == "ai"
    frame = moved[0]["frame"]
    assert 40 <= frame < end
    replayed = replay_recording(server, experiment, match)
    assert replayed.verdict == "ok", replayed.mismatches
    # Browser before the move, server after it: the same policy, so the seat's inputs are its choices throughout.
    assert agreement(list(policy_steps(recording, partner, player))) == 1.0
    runs = {int(r["frame"]): r["policy_runs"] for r in _steps(server, tmp_path / "export", experiment)
            if r["player"] == player}
    assert {runs[f] for f in runs if f < frame} == {"browser"} and {runs[f] for f in runs if f >= frame} == {"server"}


# ----------------------------------------------------------------------------- an ONNX policy in the worker

ONNX_DELAY, ONNX_REPEAT, ONNX_SEED = 2, 3, 5
ONNX_EXPERIMENT = f'''
from scenes import AISeat, End, Experiment, Match, OnnxPolicy

EXPERIMENT = Experiment(id="pong-onnx", scenes=[
    Match(id="pong", game="game.games.pong:Pong", config={{"max_score": 3, "max_frames": MAX_FRAMES}},
          humans=("left",), episodes=1, fps=60, grace_s=120,
          ai={{"right": AISeat(OnnxPolicy("tracker.onnx", observation_keys=["ball.1", "paddle"]), runs="browser",
                              reaction_delay_frames={ONNX_DELAY}, action_repeat={ONNX_REPEAT}, seed={ONNX_SEED})}}),
    End(id="end", html="<p>Thanks</p>", completion_code="PONG"),
])
'''


@pytest.fixture()
def onnx_server(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Server]:
    tracker_model(tmp_path / "tracker.onnx")
    (tmp_path / "experiment.py").write_text(ONNX_EXPERIMENT.replace("MAX_FRAMES", str(request.param)))
    served = Server(["serve", str(tmp_path / "experiment.py")], tmp_path / "data")
    yield served
    served.stop()


def _onnx_partner(server: Server) -> AISeat:
    """The seat's settings as CPython onnxruntime runs them (app/analysis/policy_replay.py)."""
    model = OnnxPolicy(str(server.data_dir.parent / "tracker.onnx"), observation_keys=TRACKER_KEYS)
    return AISeat(model, reaction_delay_frames=ONNX_DELAY, action_repeat=ONNX_REPEAT, seed=ONNX_SEED)


@pytest.mark.parametrize("onnx_server", [600], indirect=True)
def test_an_onnx_partner_plays_in_the_worker_with_onnxruntime_web(browser: Any, onnx_server: Server) -> None:
    server = onnx_server
    recording = _play_through(browser, server, "pong-onnx")
    path = recording.path
    ai = recording.header["seats"]["s1"]["ai"]
    assert ai["runs"] == "browser" and ai["seed"] == ONNX_SEED and len(ai["model_sha256"]) == 64
    assert [e["data"]["reason"] for e in recording.events if e["kind"] == "match_end"] == ["completed"]
    replayed = subprocess.run([sys.executable, "-m", "app.cli", "replay", "--verify", path],
                              capture_output=True, text=True, timeout=120)
    assert replayed.returncode == 0, replayed.stdout + replayed.stderr
    # onnxruntime-web in the worker chose, frame by frame, what CPython onnxruntime chooses on the same observations.
    steps = list(policy_steps(recording, _onnx_partner(server), "right"))
    assert len(steps) >= 300 and agreement(steps) == 1.0
    column = recording.players.index("right")
    assert {inputs[column] for inputs in recording.episodes[0]["inputs"]} >= {1, 2}, "the ONNX partner never moved"


@pytest.mark.parametrize("onnx_server", [900], indirect=True)
def test_an_onnx_partner_moves_to_a_server_bot_when_its_host_leaves(browser: Any, onnx_server: Server,
                                                                      tmp_path: Path) -> None:
    _host_leaves(browser, onnx_server, tmp_path, "pong-onnx", "right", _onnx_partner(onnx_server), end=900)
