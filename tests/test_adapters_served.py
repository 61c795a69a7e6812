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
    Match(id="plain", game="plain_game.py:Walk", humans=("me",), ai={"bot": "random"}, episodes=1, fps=60),
    End(id="end", html="<p>Thanks</p>", completion_code="BYOG"),
])
'''


# A plain game without get_state/set_state: served matches used to refuse it ("[invalid_config] ... set
# desync_interval=0 or implement get_state/set_state"), and with desync_interval=0 crashed in
# netcode/episode.py (AttributeError: get_state). The generic snapshot now serves it with desync checks.
PLAIN_GAME = '''
import random
from game.spaces import Discrete


class Walk:
    players = ("me", "bot")
    action_space = Discrete(3)
    default_action = 1

    def __init__(self, config=None):
        self.rng = random.Random(0)
        self.pos = {"me": 0, "bot": 0}
        self.frame = 0

    def reset(self, seed):
        self.rng = random.Random(seed)
        self.pos = {"me": 0, "bot": 0}
        self.frame = 0
        return {p: list(self.pos.values()) for p in self.players}

    def step(self, actions):
        self.frame += 1
        for player, action in actions.items():
            self.pos[player] += action - 1 + (self.rng.random() < 0.1)
        observations = {p: list(self.pos.values()) for p in self.players}
        return {"observations": observations, "rewards": {p: 0.0 for p in self.players},
                "terminated": self.frame >= 80, "truncated": False, "info": {}}
'''


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("byog")
    experiment = folder / "experiment.py"
    experiment.write_text(EXPERIMENT)
    (folder / "plain_game.py").write_text(PLAIN_GAME)
    served = Server(["serve", str(experiment)], folder / "data")
    yield served
    served.stop()


def test_a_participant_plays_every_adapter_game_and_the_recordings_replay(server: Server) -> None:
    result = HeadlessParticipant(server.url, {"PROLIFIC_PID": pid()}, seed=1).run(90)
    assert result.completed and result.ok and not result.errors and not result.desyncs, result.to_json()
    assert result.completion_code == "BYOG"
    assert [m["reason"] for m in result.matches] == ["completed"] * 4
    assert [e["status"] for e in result.episodes] == ["done"] * 7
    replays = {scene: replay_recording(server, "byog", match["match"])
               for scene, match in zip(("seeds", "gym", "pz", "plain"), result.matches)}
    assert all(replayed.ok and not replayed.truncated for replayed in replays.values()), replays
    assert replays["pz"].frames >= 40 and replays["pz"].checked >= 4, replays["pz"]
    assert replays["plain"].frames == 80 and replays["plain"].checked >= 8, replays["plain"]
    recording = server.data_dir / "byog" / "recordings" / f"{result.matches[2]['match']}.jsonl"
    for extra in ([], ["--game", "pettingzoo:tests.adapter_games"]):
        done = subprocess.run([sys.executable, "-m", "app.cli", "replay", str(recording), *extra], cwd=ROOT,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr
    # A one-seat match sends its inputs and checksums to the server, so it replays with checks too.
    for scene in ("seeds", "gym"):
        assert replays[scene].frames > 0 and replays[scene].checked > 0, replays[scene]
