"""`coplay export`: per-step tables rebuilt from real recordings, plus the store's tables."""
from __future__ import annotations

import csv
import inspect
import json
import random
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from app.analysis.export import export
from app.data.recording import RecordingWriter, make_header, recording_path
from app.data.store import DATABASE_NAME, Store
from game.games.pong import Pong
from game.hashing import state_hash

GAME = "game.games.pong:Pong"
SOURCE = inspect.getsource(sys.modules[Pong.__module__])
CONFIG = {"max_score": 2, "serve_delay": 3, "ball_speed": 12, "max_ball_speed": 14, "max_frames": 500}
PLAYERS = ["left", "right"]
STEP_FIELDS = ["experiment", "match", "episode", "seed", "frame", "player", "seat", "participant", "seat_kind",
               "action", "reward", "terminated", "truncated", "info"]


def flatten(value: Any, prefix: str = "obs") -> dict[str, Any]:
    if isinstance(value, dict):
        return {k: v for key, item in value.items() for k, v in flatten(item, f"{prefix}.{key}").items()}
    if isinstance(value, list):
        return {k: v for i, item in enumerate(value) for k, v in flatten(item, f"{prefix}.{i}").items()}
    return {prefix: value}


def record_match(experiment_dir: Path, store: Store, participant: str, match_seed: int,
                 source: str = SOURCE) -> dict[str, Any]:
    """Play a 2-episode Pong match with seeded random actions and record it as the server does.

    Returns what a direct simulation saw: per episode the seed, frames, observations before
    each step ({player: obs} per frame), rewards and final scores.
    """
    seats = {"s0": {"players": ["left"], "kind": "human", "participant": participant, "policy": None},
             "s1": {"players": ["right"], "kind": "ai", "participant": None, "policy": "bots.py:Tracker"}}
    match_id = store.create_match("match1", seats, match_seed, [(participant, "s0", ["left"])])
    header = make_header(match=match_id, experiment="pong-study", scene="match1", created_at=store.now(), game=GAME,
                         game_source=source, config=CONFIG, players=PLAYERS, seats=seats,
                         netcode={"input_delay": 1, "max_prediction": 8, "desync_interval": 16}, fps=60)
    rng = random.Random(match_seed)
    played: dict[str, Any] = {"match": match_id, "episodes": []}
    with RecordingWriter(recording_path(str(experiment_dir), match_id), header) as writer:
        for episode in range(2):
            seed = rng.randrange(1 << 31)
            writer.episode(episode, seed)
            env = Pong(CONFIG)
            observations = env.reset(seed)
            seen: list[dict[str, Any]] = []
            rewards = {p: 0.0 for p in PLAYERS}
            frame = 0
            while True:
                actions = [rng.randrange(3) for _ in PLAYERS]
                writer.inputs(episode, frame, actions)
                seen.append(observations)
                result = env.step(dict(zip(PLAYERS, actions)))
                observations = result["observations"]
                for p in PLAYERS:
                    rewards[p] += result["rewards"][p]
                frame += 1
                if frame % 16 == 0:
                    writer.checksum(episode, frame, state_hash(env.get_state()), "s0")
                if result["terminated"] or result["truncated"]:
                    break
            for extra in range(frame, frame + 2):  # peers send inputs a frame or two past the end
                writer.inputs(episode, extra, [0, 0])
            final = state_hash(env.get_state())
            for seat in ("s0", "s1"):
                writer.checksum(episode, frame, final, seat)
            writer.event("episode_end", {"frames": {"s0": frame, "s1": frame}, "checksums": {"s0": final, "s1": final}},
                         episode, frame)
            played["episodes"].append({"seed": seed, "frames": frame, "observations": seen, "rewards": rewards,
                                       "scores": {"left": env.left_score, "right": env.right_score}})
        writer.event("match_end", {"reason": "completed"}, 1)
    store.end_match(match_id, "completed")
    return played


@pytest.fixture
def experiment(tmp_path: Path) -> dict[str, Any]:
    folder = tmp_path / "data" / "pong-study"
    with Store(str(folder / DATABASE_NAME)) as store:
        participant = store.create_participant("PROLIFIC-1", {"study": "x"}, seed=7)
        store.save_answers(participant, "survey", {"age": 31, "hands": ["left", "right"]})
        store.log_event("connect", {"sid": "abc"}, participant_id=participant)
        played = record_match(folder, store, participant, match_seed=11)
        changed = record_match(folder, store, participant, match_seed=12, source=SOURCE + "\n# edited\n")
    return {"folder": folder, "participant": participant, "played": played, "changed": changed}


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as file:
        return list(csv.DictReader(file))


def test_csv_export(experiment: dict[str, Any], tmp_path: Path) -> None:
    out = tmp_path / "out"
    [result] = export(str(experiment["folder"]), "csv", str(out))
    played, changed = experiment["played"], experiment["changed"]

    # The recording made with another game source is skipped, with the reason; the rest exported.
    assert result.recordings == 1 and result.episodes == 2
    [(skipped_path, reason)] = result.skipped
    assert changed["match"] in skipped_path and "differs" in reason

    steps = read_csv(out / "steps.csv")
    assert list(steps[0])[:len(STEP_FIELDS)] == STEP_FIELDS
    assert "observation" not in steps[0] and "obs.ball.0" in steps[0] and "obs.side" in steps[0]
    assert result.rows["steps"] == len(steps)
    assert {row["match"] for row in steps} == {played["match"]}
    for episode, expected in enumerate(played["episodes"]):
        rows = [row for row in steps if row["episode"] == str(episode)]
        # Exactly frames x players rows: the inputs past episode_end are not part of the episode.
        assert len(rows) == expected["frames"] * len(PLAYERS)
        assert [(int(r["frame"]), r["player"]) for r in rows] == [
            (f, p) for f in range(expected["frames"]) for p in PLAYERS]
        assert {r["seed"] for r in rows} == {str(expected["seed"])}
        # Observations before acting equal a direct simulation's.
        for row in rows:
            want = flatten(expected["observations"][int(row["frame"])][row["player"]])
            for key, value in want.items():
                assert row[key] == str(value), (key, row["frame"], row["player"])
        # Rewards add up to the score changes.
        for player, opponent in (("left", "right"), ("right", "left")):
            total = sum(float(r["reward"]) for r in rows if r["player"] == player)
            assert total == expected["rewards"][player]
            assert total == expected["scores"][player] - expected["scores"][opponent]
        last = rows[-1]
        assert last["terminated"] == "True" or last["truncated"] == "True"
        assert json.loads(last["info"])["scores"] == expected["scores"]
        assert {(r["player"], r["seat"], r["seat_kind"], r["participant"]) for r in rows} == {
            ("left", "s0", "human", experiment["participant"]), ("right", "s1", "ai", "")}

    [participant] = read_csv(out / "participants.csv")
    assert participant["id"] == experiment["participant"] and participant["platform_id"] == "PROLIFIC-1"
    assert json.loads(participant["url_params"]) == {"study": "x"}
    answers = read_csv(out / "answers.csv")
    assert [(a["question_id"], a["value"]) for a in answers] == [("age", "31"), ("hands", '["left","right"]')]
    events = read_csv(out / "events.csv")
    assert [e["kind"] for e in events if e["source"] == "store"] == ["connect"]
    recorded = [e for e in events if e["source"] == "recording"]
    assert [(e["kind"], e["episode"]) for e in recorded] == [("episode_end", "0"), ("episode_end", "1"),
                                                             ("match_end", "1")]
    assert recorded[0]["frame"] == str(played["episodes"][0]["frames"])
    assert {e["match_id"] for e in recorded} == {played["match"]}
    matches = read_csv(out / "matches.csv")
    assert [m["id"] for m in matches] == [played["match"], changed["match"]]
    assert {m["status"] for m in matches} == {"completed"}
    assert len(read_csv(out / "match_participants.csv")) == 2


def test_npz_export_of_a_data_root(experiment: dict[str, Any], tmp_path: Path) -> None:
    out = tmp_path / "out"
    [result] = export(str(experiment["folder"].parent), "npz", str(out))
    assert result.experiment == "pong-study" and len(result.skipped) == 1
    with np.load(out / "pong-study" / "steps.npz") as steps:
        assert steps["frame"].dtype == np.int64 and steps["reward"].dtype == np.float64
        assert steps["player"].dtype.kind == "U" and steps["terminated"].dtype == bool
        assert steps["action"].dtype == np.int64
        played = experiment["played"]
        total = sum(e["frames"] for e in played["episodes"]) * len(PLAYERS)
        assert len(steps["frame"]) == total == result.rows["steps"]
        for episode, expected in enumerate(played["episodes"]):
            mask = steps["episode"] == episode
            assert mask.sum() == expected["frames"] * len(PLAYERS)
            want = [flatten(expected["observations"][f][p]) for f in range(expected["frames"]) for p in PLAYERS]
            for key in want[0]:
                column = steps[key][mask]
                assert column.tolist() == [w[key] for w in want], key
            for player in PLAYERS:
                assert steps["reward"][mask & (steps["player"] == player)].sum() == expected["rewards"][player]
    with np.load(out / "pong-study" / "participants.npz") as participants:
        assert participants["id"].tolist() == [experiment["participant"]]
    with np.load(out / "pong-study" / "answers.npz") as answers:
        assert answers["question_id"].tolist() == ["age", "hands"]
        assert answers["value"].tolist() == ["31", '["left","right"]']  # mixed types become text
    with np.load(out / "pong-study" / "events.npz") as events:
        assert events["kind"].tolist() == ["connect", "episode_end", "episode_end", "match_end"]
        assert np.isnan(events["frame"][0]) and events["frame"][1] == experiment["played"]["episodes"][0]["frames"]


def test_truncated_recording_exports_what_it_has(experiment: dict[str, Any], tmp_path: Path) -> None:
    played = experiment["played"]
    path = Path(recording_path(str(experiment["folder"]), played["match"]))
    lines = path.read_bytes().split(b"\n")
    # Keep the header, episode 0 and its first 30 inputs, then a cut-short line: a server killed mid-write.
    end = next(i for i, line in enumerate(lines)
               if line.startswith(b'{"type":"inputs"') and json.loads(line)["frame"] == 29)
    kept = lines[:end + 1]
    path.write_bytes(b"\n".join(kept) + b"\n" + b'{"type":"inp')
    out = tmp_path / "out"
    [result] = export(str(experiment["folder"]), "csv", str(out))
    steps = read_csv(out / "steps.csv")
    assert len(steps) == 30 * len(PLAYERS)
    assert any("cut short" in note for note in result.notes)


def test_parquet_export_matches_csv(experiment: dict[str, Any], tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    [result] = export(str(experiment["folder"]), "parquet", str(tmp_path / "pq"))
    export(str(experiment["folder"]), "csv", str(tmp_path / "csv"))
    steps = pq.read_table(tmp_path / "pq" / "steps.parquet")
    assert steps.num_rows == result.rows["steps"] == len(read_csv(tmp_path / "csv" / "steps.csv"))
    assert str(steps.schema.field("frame").type) == "int64" and str(steps.schema.field("reward").type) == "double"
    assert str(steps.schema.field("terminated").type) == "bool"
    as_text = [{k: "" if v is None else str(v) for k, v in row.items()} for row in steps.to_pylist()]
    assert as_text == read_csv(tmp_path / "csv" / "steps.csv")
    answers = pq.read_table(tmp_path / "pq" / "answers.parquet").to_pylist()
    assert [(a["question_id"], a["value"]) for a in answers] == [("age", "31"), ("hands", '["left","right"]')]


def test_parquet_without_pyarrow_exits_2(experiment: dict[str, Any], tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    from app import cli

    for name in [m for m in sys.modules if m == "pyarrow" or m.startswith("pyarrow.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "pyarrow", None)   # `import pyarrow` now raises ImportError
    out = tmp_path / "out"
    assert cli.main(["export", str(experiment["folder"]), "--format", "parquet", "--out", str(out)]) == 2
    assert "pip install pyarrow" in capsys.readouterr().out
    assert not out.exists()


def test_cli_prints_a_summary(experiment: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from app import cli

    assert cli.main(["export", str(experiment["folder"]), "--out", str(tmp_path / "out")]) == 0
    text = capsys.readouterr().out
    assert "steps:" in text and "SKIPPED" in text and "differs" in text and "steps.csv" in text
    assert cli.main(["export", str(tmp_path / "nowhere")]) == 2
    assert "no such folder" in capsys.readouterr().out


def test_seat_taken_by_ai_changes_the_seat_columns(experiment: dict[str, Any], tmp_path: Path) -> None:
    played = experiment["played"]
    path = Path(recording_path(str(experiment["folder"]), played["match"]))
    event = {"type": "event", "episode": 0, "frame": 10, "kind": "seat_changed",
             "data": {"seat": "s0", "players": ["left"], "participant": experiment["participant"], "why": "silent",
                      "by": "ai"}}
    with open(path, "a", encoding="utf-8") as file:
        file.write(json.dumps(event) + "\n")
    export(str(experiment["folder"]), "csv", str(tmp_path / "out"))
    left = [r for r in read_csv(tmp_path / "out" / "steps.csv") if r["player"] == "left"]
    held = [(r["episode"], int(r["frame"]), r["seat_kind"], r["participant"]) for r in left]
    assert all(kind == "human" and who == experiment["participant"] for e, f, kind, who in held if e == "0" and f < 10)
    assert all(kind == "ai" and who == "" for e, f, kind, who in held if e == "1" or f >= 10)
