"""Recorded Pong matches for export tests and benchmarks/export.py, written as the server writes them."""
from __future__ import annotations

import inspect
import random
import sys
from pathlib import Path

from app.data.recording import RecordingWriter, make_header, recording_path
from game.games.pong import Pong

GAME = "game.games.pong:Pong"
SOURCE = inspect.getsource(sys.modules[Pong.__module__])
PLAYERS = ["left", "right"]


def record(folder: Path, match: str, episodes: int, frames: int, seed: int) -> None:
    """A recording of `episodes` Pong episodes of `frames` frames each, seeded random inputs."""
    config = {"max_score": 10**6, "max_frames": frames}
    header = make_header(match=match, experiment="spool", scene="match", created_at="now", game=GAME,
                         game_source=SOURCE, config=config, players=PLAYERS, seats={}, netcode={}, fps=60)
    rng = random.Random(seed)
    with RecordingWriter(recording_path(str(folder), match), header) as writer:
        for episode in range(episodes):
            episode_seed = rng.randrange(1 << 31)
            writer.episode(episode, episode_seed)
            env = Pong(config)
            env.reset(episode_seed)
            for frame in range(frames):
                actions = [rng.randrange(3) for _ in PLAYERS]
                writer.inputs(episode, frame, actions)
                env.step(dict(zip(PLAYERS, actions)))
            writer.event("episode_end", {}, episode, frames)
