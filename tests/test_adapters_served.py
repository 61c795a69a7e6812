"""Issue 13's proof: adapter games served with zero glue. A real server (subprocess) runs an experiment
whose matches are a seeds-style CartPole, Gymnasium's CartPole-v1 and a PettingZoo parallel env; a
headless participant plays them all (an AI holds the PettingZoo env's second seat) and every recording
replays with matching checksums."""
from __future__ import annotations

import subprocess
import sys
from typing import Iterator

import pytest

from app.participant.headless import HeadlessParticipant
from tests.server_fixtures import ROOT, Server, pid, replay_recording

EXPERIMENT = '''
from scenes import End, Experiment, Match

EXPERIMENT = Experiment(id="byog", scenes=[
    Match(id="seeds", game="seeds:tests.adapter_games:SeedsCartPole", config={"max_steps": 45},
          humans=("player",), episodes=2, fps=60),
    Match(id="gym", game="gymnasium:CartPole-v1", config={"max_episode_steps": 45}, humans=("player",),
          episodes=2, fps=60),
    Match(id="pz", game="pettingzoo:tests.adapter_games", config={"max_cycles": 45}, humans=("red",),
          ai={"blue": "random"}, episodes=2, fps=60),
    End(id="end", html="<p>Thanks</p>", completion_code="BYOG"),
])
'''


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("byog")
    experiment = folder / "experiment.py"
    experiment.write_text(EXPERIMENT)
    served = Server(["serve", str(experiment)], folder / "data")
    yield served
    served.stop()


def test_a_participant_plays_every_adapter_game_and_the_recordings_replay(server: Server) -> None:
    result = HeadlessParticipant(server.url, {"PROLIFIC_PID": pid()}, seed=1).run(90)
    assert result.completed and result.ok and not result.errors and not result.desyncs, result.to_json()
    assert result.completion_code == "BYOG"
    assert [m["reason"] for m in result.matches] == ["completed"] * 3
    assert [e["status"] for e in result.episodes] == ["done"] * 6
    replays = {scene: replay_recording(server, "byog", match["match"])
               for scene, match in zip(("seeds", "gym", "pz"), result.matches)}
    assert all(replayed.ok and not replayed.truncated for replayed in replays.values()), replays
    assert replays["pz"].frames >= 40 and replays["pz"].checked >= 4, replays["pz"]
    recording = server.data_dir / "byog" / "recordings" / f"{result.matches[2]['match']}.jsonl"
    for extra in ([], ["--game", "pettingzoo:tests.adapter_games"]):
        done = subprocess.run([sys.executable, "-m", "app.cli", "replay", str(recording), *extra], cwd=ROOT,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr
    # A match with one seat sends no packets, so the server records no inputs for it yet
    # (netcode/p2p.py, app/live/match_room.py): its replay has nothing to verify.
    assert replays["seeds"].frames == replays["gym"].frames == 0
