"""Match recordings: round trip, order checks, damaged files, versions, and a real kill -9."""
from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from app.data import recording as recording_module
from app.data.recording import (
    FORMAT_VERSION,
    RecordingError,
    RecordingWriter,
    close_after_crash,
    held_writes,
    make_header,
    read_recording,
    recording_path,
)
from app.data.store import Store, database_path

ROOT = Path(__file__).resolve().parent.parent
SOURCE = "class Pong:\n    players = ('left', 'right')\n"


def header(**overrides: Any) -> dict[str, Any]:
    fields: dict[str, Any] = dict(
        match="m1", experiment="exp", scene="match1", created_at="2024-05-01T12:00:00.000000+00:00",
        game="pong.py:Pong", game_source=SOURCE, config={"speed": 2}, players=["left", "right"],
        seats={"s0": {"players": ["left"], "kind": "human", "participant": "p1", "policy": None},
               "s1": {"players": ["right"], "kind": "ai", "participant": None, "policy": "bots.py:Tracker"}},
        netcode={"input_delay": 1, "max_prediction": 8}, fps=60)
    fields.update(overrides)
    return make_header(**fields)


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_round_trip(tmp_path: Path) -> None:
    path = Path(recording_path(str(tmp_path / "exp"), "m1"))
    assert path == tmp_path / "exp" / "recordings" / "m1.jsonl"
    with RecordingWriter(str(path), header()) as writer:
        writer.episode(0, seed=11)
        for frame in range(5):
            writer.inputs(0, frame, [frame % 3, {"move": [1, -1]}])
        writer.checksum(0, 4, "abcdef0123456789", seat="s0")
        writer.checksum(0, 4, "abcdef0123456789", seat="s1")
        writer.event("episode_end", {"frame": 5}, episode=0, frame=5)
        writer.episode(1, seed=12)
        writer.checksum(0, 5, "0000000000000000", seat="s1")  # a late checksum of episode 0
        writer.inputs(1, 0, [2, 0])
        assert writer.next_frame(0) == 5 and writer.next_frame(1) == 1
        writer.event("match_end", {"reason": "completed"})
    assert writer.closed

    first = lines(path)[0]
    assert (first["type"], first["format"], first["version"]) == ("header", "coplay-recording", 1)
    assert first["game_source"] == SOURCE
    assert first["game_source_sha256"] == hashlib.sha256(SOURCE.encode()).hexdigest()
    assert first["python"] == ".".join(map(str, sys.version_info[:3])) and first["coplay_version"]

    recording = read_recording(str(path))
    assert recording.header == first
    assert recording.players == ["left", "right"]
    assert not recording.truncated and recording.ended
    assert recording.episodes[0]["seed"] == 11 and recording.episodes[1]["seed"] == 12
    assert recording.episodes[0]["inputs"] == [[f % 3, {"move": [1, -1]}] for f in range(5)]
    assert recording.episodes[0]["checksums"] == {4: {"s0": "abcdef0123456789", "s1": "abcdef0123456789"},
                                                  5: {"s1": "0000000000000000"}}
    assert recording.episodes[1] == {"seed": 12, "inputs": [[2, 0]], "checksums": {}}
    assert recording.complete_frames == {0: 5, 1: 1}
    assert [(e["kind"], e["episode"], e["frame"], e["data"]) for e in recording.events] == [
        ("episode_end", 0, 5, {"frame": 5}), ("match_end", None, None, {"reason": "completed"})]


def test_held_writes_go_out_together_at_the_end_or_at_close(tmp_path: Path) -> None:
    first, second = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    a, b = RecordingWriter(str(first), header()), RecordingWriter(str(second), header(match="m2"))
    a.episode(0, seed=1)
    b.episode(0, seed=2)
    on_disk = first.stat().st_size
    with held_writes():
        a.inputs(0, 0, [1, 2])
        with held_writes():   # nested: the outer block decides
            a.inputs(0, 1, [1, 2])
        b.inputs(0, 0, [0, 0])
        with pytest.raises(ValueError, match="repeats a recorded frame"):
            a.inputs(0, 1, [1, 1])   # the order check counts held lines
        assert first.stat().st_size == on_disk
        b.close()   # closing writes what it held
        assert read_recording(str(second)).episodes[0]["inputs"] == [[0, 0]]
    assert read_recording(str(first)).episodes[0]["inputs"] == [[1, 2], [1, 2]]
    a.inputs(0, 2, [0, 1])   # outside the block: written at once
    assert read_recording(str(first)).episodes[0]["inputs"][-1] == [0, 1]
    a.close()


def test_order_is_enforced_and_refusals_write_nothing(tmp_path: Path) -> None:
    path = tmp_path / "m1.jsonl"
    with RecordingWriter(str(path), header()) as writer:
        with pytest.raises(ValueError, match="inputs for episode 0, which has not started"):
            writer.inputs(0, 0, [0, 0])
        with pytest.raises(ValueError, match="checksum for episode 0, which has not started"):
            writer.checksum(0, 0, "x", seat="s0")
        with pytest.raises(ValueError, match="episode 1 out of order: the next episode is 0"):
            writer.episode(1, seed=1)
        writer.episode(0, seed=1)
        with pytest.raises(ValueError, match="episode 0 out of order: the next episode is 1"):
            writer.episode(0, seed=1)
        with pytest.raises(ValueError, match="inputs for frame 1 skips frames; the next frame is 0"):
            writer.inputs(0, 1, [0, 0])
        writer.inputs(0, 0, [0, 0])
        with pytest.raises(ValueError, match="inputs for frame 0 repeats a recorded frame; the next frame is 1"):
            writer.inputs(0, 0, [0, 0])
        with pytest.raises(ValueError, match=r"frame 1: 1 actions for 2 players \['left', 'right'\]"):
            writer.inputs(0, 1, [0])
        with pytest.raises(ValueError, match="must be JSON-able"):
            writer.inputs(0, 1, [0, float("nan")])
        with pytest.raises(ValueError, match="must be JSON-able"):
            writer.event("bad", {"x": object()})
        writer.inputs(0, 1, [1, 1])  # the refusals did not move the expected frame
    assert [line["type"] for line in lines(path)] == ["header", "episode", "inputs", "inputs"]
    with pytest.raises(ValueError, match="is closed"):
        writer.event("late")
    writer.close()  # twice is fine


def test_never_overwrites(tmp_path: Path) -> None:
    path = tmp_path / "m1.jsonl"
    RecordingWriter(str(path), header()).close()
    before = path.read_bytes()
    with pytest.raises(FileExistsError, match="already exists; recordings are never overwritten"):
        RecordingWriter(str(path), header())
    assert path.read_bytes() == before


def test_bad_headers_and_ids_are_refused(tmp_path: Path) -> None:
    incomplete = header()
    del incomplete["game_source"], incomplete["fps"]
    with pytest.raises(ValueError, match=r"header lacks \['game_source', 'fps'\]; build it with make_header"):
        RecordingWriter(str(tmp_path / "a.jsonl"), incomplete)
    with pytest.raises(ValueError, match="players must be a non-empty list of str"):
        RecordingWriter(str(tmp_path / "b.jsonl"), header(players=[]))
    with pytest.raises(ValueError, match="must be JSON-able"):
        RecordingWriter(str(tmp_path / "c.jsonl"), header(config={"x": float("inf")}))
    assert not any(tmp_path.iterdir())
    for bad in ("../escape", "a/b", ".hidden", ""):
        with pytest.raises(ValueError, match="cannot be a file name"):
            recording_path(str(tmp_path), bad)


def write_sample(path: Path, frames: int = 3) -> None:
    with RecordingWriter(str(path), header()) as writer:
        writer.episode(0, seed=5)
        for frame in range(frames):
            writer.inputs(0, frame, [frame, frame])


def test_truncated_last_line_is_skipped(tmp_path: Path) -> None:
    path = tmp_path / "m1.jsonl"
    write_sample(path)
    with open(path, "ab") as file:
        file.write(b'{"type":"inputs","episode":0,"frame":3,"act')  # killed mid-write
    recording = read_recording(str(path))
    assert recording.truncated and not recording.ended
    assert recording.complete_frames == {0: 3}


def test_damaged_final_line_counts_as_truncated(tmp_path: Path) -> None:
    path = tmp_path / "m1.jsonl"
    write_sample(path)
    with open(path, "ab") as file:
        file.write(b"\x00\x00\x00\n")  # what a power cut can leave
    recording = read_recording(str(path))
    assert recording.truncated and recording.complete_frames == {0: 3}


@pytest.mark.parametrize(("tail", "dropped"), [
    (b"", 0),                                                   # the last line was whole
    (b'{"type":"inputs","episode":0,"frame":3,"act', 43),      # killed mid-write
    (b"\x00\x00\x00\n", 4),                                      # power loss
])
def test_closing_after_a_crash_never_glues_onto_a_partial_line(tmp_path: Path, tail: bytes, dropped: int) -> None:
    path = tmp_path / "m1.jsonl"
    write_sample(path)
    whole = path.read_bytes()
    with open(path, "ab") as file:
        file.write(tail)
    assert close_after_crash(str(path), {"reason": "interrupted"}, episode=0) == dropped
    assert path.read_bytes().startswith(whole)
    recording = read_recording(str(path))
    assert not recording.truncated and recording.complete_frames == {0: 3}
    assert recording.end_reason == "interrupted" and recording.ended
    assert recording.events[-1]["data"] == {"reason": "interrupted", **({"dropped_bytes": dropped} if dropped else {})}


def test_closing_after_a_crash_refuses_a_file_without_a_whole_header(tmp_path: Path) -> None:
    path = tmp_path / "m1.jsonl"
    path.write_bytes(b'{"type":"header","format":"coplay-rec')
    with pytest.raises(RecordingError, match="no complete header line"):
        close_after_crash(str(path), {"reason": "interrupted"})
    assert path.read_bytes() == b'{"type":"header","format":"coplay-rec'
    with pytest.raises(FileNotFoundError):
        close_after_crash(str(tmp_path / "none.jsonl"), {"reason": "interrupted"})


def test_damage_before_the_last_line_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "m1.jsonl"
    write_sample(path)
    text = path.read_text().splitlines()
    text[2] = text[2][:10]
    path.write_text("\n".join(text) + "\n")
    with pytest.raises(RecordingError, match=r"m1.jsonl, line 3: not a JSON object"):
        read_recording(str(path))


@pytest.mark.parametrize(("content", "message"), [
    (b"", "no header line; the match's process died before writing it"),
    (b'{"type":"header","format":"coplay-rec', "no header line"),
    (b"hello\n", "the header line is not JSON"),
    (b'{"type":"header","format":"other","version":1}\n', "not a coplay recording"),
    (b'{"type":"header","format":"coplay-recording","version":"1"}\n', "unknown recording format version '1'"),
    (b'{"type":"header","format":"coplay-recording","version":2}\n',
     r"recording format version 2 is newer than this coplay understands \(1\); upgrade coplay"),
])
def test_unreadable_files_are_refused(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "m1.jsonl"
    path.write_bytes(content)
    with pytest.raises(RecordingError, match=message):
        read_recording(str(path))


@pytest.mark.parametrize(("record", "message"), [
    ({"type": "inputs", "episode": 0, "frame": 0, "actions": [0, 0]}, "episode 0, which has not started"),
    ({"type": "episode", "episode": 0}, "a episode record lacks the field 'seed'"),
    ({"type": "episode", "episode": [0], "seed": 1}, "line 2"),
])
def test_malformed_records_are_refused(tmp_path: Path, record: dict[str, Any], message: str) -> None:
    path = tmp_path / "m1.jsonl"
    RecordingWriter(str(path), header()).close()
    with open(path, "a") as file:
        file.write(json.dumps(record) + "\n" + json.dumps({"type": "event", "kind": "x"}) + "\n")
    with pytest.raises(RecordingError, match=message):
        read_recording(str(path))


def test_reader_checks_frame_order(tmp_path: Path) -> None:
    path = tmp_path / "m1.jsonl"
    write_sample(path, frames=2)
    with open(path, "a") as file:
        file.write(json.dumps({"type": "inputs", "episode": 0, "frame": 5, "actions": [0, 0]}) + "\n\n")
    with pytest.raises(RecordingError, match="line 5: inputs for frame 5, expected frame 2"):
        read_recording(str(path))


def test_unknown_records_and_fields_are_skipped(tmp_path: Path) -> None:
    """The versioning policy: additions keep the version, readers ignore what they do not know."""
    path = tmp_path / "m1.jsonl"
    write_sample(path, frames=1)
    with open(path, "a") as file:
        file.write(json.dumps({"type": "ping_stats", "rtt": 40}) + "\n")
        file.write(json.dumps({"type": "inputs", "episode": 0, "frame": 1, "actions": [1, 1], "new": 1}) + "\n")
    recording = read_recording(str(path))
    assert recording.episodes[0]["inputs"] == [[0, 0], [1, 1]] and not recording.truncated


def test_fsync_every(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(recording_module.os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd)))
    now = [0.0]
    writer = RecordingWriter(str(tmp_path / "a.jsonl"), header(), fsync_every=1.0, clock=lambda: now[0])
    writer.episode(0, seed=1)
    assert synced == []  # less than a second since opening
    now[0] = 1.5
    writer.inputs(0, 0, [0, 0])
    assert len(synced) == 1
    writer.inputs(0, 1, [0, 0])
    assert len(synced) == 1
    writer.sync()
    writer.close()
    assert len(synced) == 3
    with RecordingWriter(str(tmp_path / "b.jsonl"), header()) as plain:
        plain.episode(0, seed=1)
    assert len(synced) == 3  # no fsync_every: no fsync at all


def test_threads_share_one_writer(tmp_path: Path) -> None:
    path = tmp_path / "m1.jsonl"
    with RecordingWriter(str(path), header()) as writer:
        writer.episode(0, seed=1)

        def work(worker: int) -> None:
            for i in range(200):
                writer.event("tick", {"worker": worker, "i": i, "pad": "x" * 500})

        threads = [threading.Thread(target=work, args=(n,)) for n in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    recording = read_recording(str(path))
    assert len(recording.events) == 1200 and not recording.truncated


CHILD = """
import sys
from app.data.recording import RecordingWriter, make_header
from app.data.store import Store
store = Store(sys.argv[1])
writer = RecordingWriter(sys.argv[2], make_header(
    match="m1", experiment="exp", scene="match1", created_at="2024-05-01T12:00:00+00:00", game="pong.py:Pong",
    game_source="", config={}, players=["left", "right"], seats={}, netcode={}, fps=60))
writer.episode(0, seed=1)
pad = "x" * 2000  # long lines make a kill in the middle of a write likelier
for i in range(10**7):
    store.log_event("tick", {"i": i})
    writer.inputs(0, i, [i, pad])
    print(f"acked {i}", flush=True)
"""


def test_kill_9_loses_nothing_acknowledged(tmp_path: Path) -> None:
    """A real SIGKILL mid-stream: every row and record acknowledged before it is still there."""
    database = database_path(str(tmp_path), "exp")
    path = recording_path(str(tmp_path / "exp"), "m1")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with open(tmp_path / "stderr.txt", "wb") as stderr, subprocess.Popen(
            [sys.executable, "-c", CHILD, database, path], cwd=ROOT, env=env,
            stdout=subprocess.PIPE, stderr=stderr) as child:
        assert child.stdout is not None
        seen = 0
        while seen < 300:
            line = child.stdout.readline()
            assert line, f"the child stopped early: {(tmp_path / 'stderr.txt').read_text()}"
            seen += 1
        os.kill(child.pid, signal.SIGKILL)
        output = line + child.stdout.read()
        assert child.wait() == -signal.SIGKILL
    acked = [int(number) for number in re.findall(rb"^acked (\d+)\n", output, flags=re.MULTILINE)]
    last = acked[-1]
    assert last >= 299

    with Store(database) as store:
        rows = [event["data"]["i"] for event in store.events(kind="tick")]
    recording = read_recording(path)
    frames = [actions[0] for actions in recording.episodes[0]["inputs"]]
    # Every acknowledged write is there, in order; at most the next iteration's writes besides.
    assert rows[: last + 1] == list(range(last + 1)) and len(rows) in (last + 1, last + 2)
    assert frames[: last + 1] == list(range(last + 1)) and len(frames) in (last + 1, last + 2)
    assert len(frames) <= len(rows)
    assert recording.header["format"] == "coplay-recording" and recording.header["version"] == FORMAT_VERSION

    # The next server start closes it: whatever the kill cut short goes, every acknowledged frame stays.
    close_after_crash(path, {"reason": "interrupted"}, episode=0)
    closed = read_recording(path)
    assert closed.episodes[0]["inputs"] == recording.episodes[0]["inputs"] and not closed.truncated
    assert closed.end_reason == "interrupted"
