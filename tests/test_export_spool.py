"""The spooled `steps` export: the same files as the in-memory writer, one episode in memory at a time."""
from __future__ import annotations

import weakref
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from app.analysis import export as export_module
from app.analysis.export import export
from app.analysis.export_columns import Table, write_table
from app.analysis.export_spool import StepSpool, write_steps
from tests.export_fixtures import PLAYERS, record

LEADING = ["experiment", "episode", "frame"]

# Three episodes of mixed kinds: per column, the kind over the whole table is what matters.
EPISODES: list[tuple[list[dict[str, Any]], list[str]]] = [
    ([{"experiment": "e", "episode": 0, "frame": 0, "obs.a": 1, "obs.mix": 3, "obs.none": None, "flag": True,
       "info": '{"x":[1,2]}', "big": 1, "obs.f": 0.1, "header": ["a", 1]},
      {"experiment": "e", "episode": 0, "frame": 1, "obs.a": -7, "obs.mix": 4, "obs.none": None, "flag": None,
       "info": '{"x":null}', "big": 2, "obs.f": -0.0, "header": {"k": "v"}}],
     ["obs.a", "obs.mix", "obs.none", "obs.f"]),
    ([], ["observation"]),  # no rows, yet today's table gets an `observation` column
    ([{"experiment": "e", "episode": 2, "frame": 0, "obs.a": 2.5, "obs.mix": "three", "obs.only2": 9, "flag": False,
       "info": "{}", "big": 1 << 70, "obs.f": 1e-300, "observation": '{"y":1}', "header": None},
      {"experiment": "é✓", "episode": 2, "frame": 1, "obs.a": 3, "obs.mix": None, "obs.only2": None, "flag": True,
       "info": "line\nbreak, \"quoted\"", "big": None, "obs.f": float("inf"), "observation": None}],
     ["obs.a", "obs.mix", "obs.only2", "observation"]),
]


def spooled(directory: Path) -> StepSpool:
    spool = StepSpool(str(directory), LEADING, last=("observation",)).open()
    for rows, columns in EPISODES:
        spool.add_episode([dict(row) for row in rows], columns)
    return spool


def same_npz(a: Path, b: Path) -> None:
    with np.load(a) as old, np.load(b) as new:
        assert list(old) == list(new)
        for key in old:
            assert old[key].dtype == new[key].dtype, key
            assert np.array_equal(old[key], new[key], equal_nan=old[key].dtype.kind == "f"), key


def same_parquet(a: Path, b: Path) -> None:
    import pyarrow.parquet as pq

    old, new = pq.read_table(a), pq.read_table(b)
    assert old.schema == new.schema
    assert old.to_pylist() == new.to_pylist()


@pytest.mark.parametrize("rows", ["mixed", "none"])
def test_the_spool_writes_what_the_in_memory_writer_writes(tmp_path: Path, rows: str,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("app.analysis.export_spool.ROW_GROUP", 3)  # parquet in two row groups, typed as the whole column
    spool = spooled(tmp_path) if rows == "mixed" else StepSpool(str(tmp_path), LEADING).open()
    try:
        if rows == "mixed":
            assert spool.columns == LEADING + ["obs.a", "obs.mix", "obs.none", "obs.f", "flag", "info", "big",
                                               "header", "obs.only2", "observation"]
            assert {c: spool.kind(c) for c in ("obs.a", "obs.mix", "obs.none", "flag", "big", "obs.only2")} == {
                "obs.a": "float", "obs.mix": "str", "obs.none": "str", "flag": "bool", "big": "str",
                "obs.only2": "int"}
        table = Table(spool.columns, [row for episode, _columns in EPISODES for row in episode] if rows == "mixed"
                      else [])
        assert spool.count == len(table.rows)
        for fmt in ("csv", "npz", "parquet"):
            old = write_table(table, str(tmp_path / "old"), fmt)
            new = write_steps(spool, str(tmp_path / "new"), fmt)
            if fmt == "csv":
                assert Path(new).read_bytes() == Path(old).read_bytes()
            elif fmt == "npz":
                same_npz(Path(old), Path(new))
            else:
                import pyarrow.parquet as pq

                same_parquet(Path(old), Path(new))
                assert pq.ParquetFile(new).num_row_groups == (2 if rows == "mixed" else 0)
    finally:
        spool.close()
    assert list(tmp_path.glob(".steps-spool-*")) == []  # the spool file is gone


def test_rollback_forgets_a_failed_recordings_rows_columns_and_kinds(tmp_path: Path) -> None:
    with StepSpool(str(tmp_path), LEADING, last=("observation",)) as spool:
        spool.add_episode(EPISODES[0][0], EPISODES[0][1])
        before = (spool.columns, dict(spool.kinds), spool.count, list(spool.rows()))
        mark = spool.mark()
        spool.add_episode(EPISODES[2][0], EPISODES[2][1])
        assert spool.kind("obs.a") == "float" and "observation" in spool.columns
        spool.rollback(mark)
        assert (spool.columns, dict(spool.kinds), spool.count, list(spool.rows())) == before
        spool.add_episode(EPISODES[0][0])  # appending still works after reading and rolling back
        assert spool.count == 4 and list(spool.rows())[2:] == EPISODES[0][0]


class Row(dict):  # type: ignore[type-arg]
    """A step row that can be watched with a weak reference."""


def test_the_export_holds_one_episodes_rows_at_a_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "study"
    record(folder, "m1", episodes=20, frames=12, seed=1)
    live = [0]  # rows made and not yet freed
    alive_at_start: list[int] = []
    simulate = export_module._simulate_episode

    def freed() -> None:
        live[0] -= 1

    def watched(*args: Any) -> tuple[list[dict[str, Any]], list[str] | None]:
        alive_at_start.append(live[0])  # rows of earlier episodes still referenced somewhere
        rows, keys = simulate(*args)
        tracked = [Row(row) for row in rows]
        for row in tracked:
            weakref.finalize(row, freed)
        live[0] += len(tracked)
        return tracked, keys

    monkeypatch.setattr(export_module, "_simulate_episode", watched)
    [result] = export(str(folder), "csv", str(tmp_path / "out"))
    assert not result.skipped
    assert alive_at_start == [0] * 20
    assert live == [0]
    assert result.episodes == 20 and result.rows["steps"] == 20 * 12 * len(PLAYERS)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(
        f"{t}.csv" for t in export_module.TABLES)  # no spool left behind


def test_a_recording_failing_part_way_is_skipped_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "study"
    record(folder, "m1", episodes=4, frames=5, seed=1)
    record(folder, "m2", episodes=4, frames=7, seed=2)
    simulate = export_module._simulate_episode

    def failing(name: str, recording: Any, game_class: type, episode: int) -> Any:
        if recording.header["match"] == "m1" and episode == 2:
            raise RuntimeError("boom")
        return simulate(name, recording, game_class, episode)

    monkeypatch.setattr(export_module, "_simulate_episode", failing)
    [result] = export(str(folder), "csv", str(tmp_path / "out"))
    [(path, reason)] = result.skipped
    assert "m1" in path and "boom" in reason
    lines = (tmp_path / "out" / "steps.csv").read_text(encoding="utf-8").splitlines()
    assert len(lines) - 1 == result.rows["steps"] == 4 * 7 * len(PLAYERS)
    assert all(line.startswith("study,m2,") for line in lines[1:])
