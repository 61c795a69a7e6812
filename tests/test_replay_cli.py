"""`coplay replay`: verification, the first divergent frame, truncation, changed sources."""
from __future__ import annotations

import inspect
import shutil
import json
import sys
from pathlib import Path
from typing import Callable

import pytest

from app.cli import main
from app.data.recording import RecordingWriter, close_after_crash, make_header
from game.games.pong import Pong
from game.hashing import state_hash
from game.policies import RandomPolicy

FRAMES = 300


def record_pong(path: Path, frames: int = FRAMES, seed: int = 4) -> None:
    """A recording as the server writes it: seeded random inputs, checksums every 10 frames."""
    source = inspect.getsource(sys.modules[Pong.__module__])
    header = make_header(match="m1", experiment="x", scene="pong", created_at="now", game="game.games.pong:Pong",
                         game_source=source, config={"max_score": 100, "max_frames": 10_000},
                         players=["left", "right"], seats={}, netcode={}, fps=60)
    policies = {p: RandomPolicy() for p in ("left", "right")}
    for index, (player, policy) in enumerate(policies.items()):
        policy.setup(player, Pong.action_space, seed + index)
    with RecordingWriter(str(path), header) as writer:
        env = Pong(header["config"])
        env.reset(seed)
        writer.episode(0, seed)
        for frame in range(frames):
            if frame % 10 == 0:
                writer.checksum(0, frame, state_hash(env.get_state()), "s0")
            actions = {p: policy.act(None) for p, policy in policies.items()}
            writer.inputs(0, frame, [actions["left"], actions["right"]])
            env.step(actions)
        writer.checksum(0, frames, state_hash(env.get_state()), "s0")
        writer.event("episode_end", {}, 0, frames)


@pytest.fixture
def recording(tmp_path: Path) -> Path:
    path = tmp_path / "m1.jsonl"
    record_pong(path)
    return path


def rewrite(path: Path, change: Callable[[dict], dict]) -> None:
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    path.write_text("".join(json.dumps(change(line)) + "\n" for line in lines))


def drop_checksums(path: Path) -> None:
    lines = path.read_text().splitlines()
    path.write_text("".join(line + "\n" for line in lines if '"type":"checksum"' not in line))


def test_a_good_recording_verifies(recording: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["replay", str(recording), "--verify"]) == 0
    out = capsys.readouterr().out
    assert f"replayed {FRAMES} frames of 1 episode(s)" in out and "31 checksums compared" in out
    assert "ok: every checksum matches" in out


def test_one_altered_input_fails_at_exactly_the_next_checked_frame(recording: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    def alter(line: dict) -> dict:
        if line.get("type") == "inputs" and line["frame"] == 57:
            line["actions"][0] = (line["actions"][0] + 1) % 3
        return line

    rewrite(recording, alter)
    assert main(["replay", str(recording)]) == 1
    out = capsys.readouterr().out
    assert "MISMATCH at episode 0, frame 60: seat s0 recorded " in out   # states after frame 57 differ; checks every 10
    assert "the last matching checksum is at frame 50" in out


def test_a_truncated_recording_replays_up_to_its_last_complete_frame(recording: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    text = recording.read_text()
    cut = text.index('"frame":123,')
    recording.write_text(text[:cut])   # the process died in the middle of writing frame 123's line
    assert main(["replay", str(recording)]) == 0
    out = capsys.readouterr().out
    assert "the recording is truncated" in out and "(episode 0: 123 frames)" in out
    assert "ok: every checksum matches" in out


def test_frames_without_a_checksum_are_not_verified(recording: Path, capsys: pytest.CaptureFixture[str]) -> None:
    drop_checksums(recording)
    assert main(["replay", str(recording)]) == 1
    out = capsys.readouterr().out
    assert "0 checksums compared" in out and f"NOT VERIFIED: {FRAMES} frames replayed but no checksum" in out
    assert "ok:" not in out
    assert main(["replay", str(recording), "--json"]) == 1
    assert json.loads(capsys.readouterr().out.splitlines()[0])["verdict"] == "unverified"


def test_a_recording_without_frames_has_nothing_to_verify(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "empty.jsonl"
    record_pong(path, frames=0)
    drop_checksums(path)
    assert main(["replay", str(path)]) == 0
    out = capsys.readouterr().out
    assert "replayed 0 frames" in out and "nothing to verify: the recording has no frames" in out


def test_an_interrupted_recording_verifies_the_part_that_exists(recording: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    text = recording.read_text()
    recording.write_text(text[:text.index('"frame":123,')])   # the server was killed mid-write...
    close_after_crash(str(recording), {"reason": "interrupted"}, episode=0)   # ...and closed it when restarted
    assert main(["replay", str(recording)]) == 0
    out = capsys.readouterr().out
    assert "interrupted: the server stopped while this match ran; replayed the part it recorded " \
           "(episode 0: 123 frames)" in out
    assert "13 checksums compared" in out and "ok: every checksum matches" in out
    assert main(["replay", str(recording), "--json"]) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[0])["end"] == "interrupted"


def test_a_changed_game_source_is_refused_unless_asked(recording: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rewrite(recording, lambda line: {**line, "game_source": line["game_source"] + "\n# edited\n",
                                     "game_source_sha256": "0" * 64} if line.get("type") == "header" else line)
    assert main(["replay", str(recording)]) == 2
    assert "differs from the one recorded with match m1" in capsys.readouterr().err
    assert main(["replay", str(recording), "--recorded-source"]) == 0


def test_an_explicit_different_game_shows_a_state_diff(recording: Path, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    other = tmp_path / "faster.py"
    other.write_text("from game.games.pong import Pong\n\n\nclass Faster(Pong):\n"
                     "    def step(self, actions):\n        result = super().step(actions)\n"
                     "        if self.frame == 35:\n            self.left_y += 1000\n        return result\n")
    assert main(["replay", str(recording), "--game", f"{other}:Faster"]) == 1
    out = capsys.readouterr().out
    assert "MISMATCH at episode 0, frame 40" in out
    assert "state['left_y']: expected " in out


def test_a_newer_format_is_refused_with_a_clear_message(recording: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rewrite(recording, lambda line: {**line, "version": 9} if line.get("type") == "header" else line)
    assert main(["replay", str(recording)]) == 2
    assert "recording format version 9 is newer than this coplay understands (1); upgrade coplay" in \
        capsys.readouterr().err


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not on PATH, so Pyodide cannot run")
def test_pyodide_runtime_agrees_frame_by_frame(recording: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["replay", str(recording), "--runtime", "pyodide"]) == 0
    assert f"ok: CPython and Pyodide agree on all {FRAMES} frames" in capsys.readouterr().out


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not on PATH, so Pyodide cannot run")
def test_pyodide_runtime_catches_a_game_using_sin(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = ("import math\nfrom game.games.pong import Pong as Base\n\n\nclass Pong(Base):\n"
              "    def get_state(self):\n        return {**super().get_state(), "
              "'wave': [math.sin(self.frame * 0.37 + k * 1.3) for k in range(200)]}\n")
    path = tmp_path / "sine.jsonl"
    record_pong(path, frames=30)
    rewrite(path, lambda line: {**line, "game_source": source} if line.get("type") == "header" else line)
    lines = path.read_text().splitlines()   # its checksums were Pong's: keep only the inputs
    path.write_text("".join(line + "\n" for line in lines if '"type": "checksum"' not in line))
    assert main(["replay", str(path), "--recorded-source", "--runtime", "pyodide"]) == 1
    assert "RUNTIMES DIFFER at episode 0, frame 0" in capsys.readouterr().out
