"""End to end: a real eventlet server on loopback, really overloaded. A test-only CPU hog (a green thread the
test experiment starts, burning 300 ms of CPU between short sleeps while a flag file exists) makes the event
loop lag as an overloaded server's does. A pair arriving then waits with the busy message while the match
already running goes on and completes; once the load goes, admission reopens and the waiting pair plays."""
from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any, Callable

import pytest
import requests

from app.data.store import Store, database_path
from app.live.admission import BUSY_MESSAGE
from app.live.metrics import parse_metrics
from app.participant.headless import HeadlessParticipant
from app.participant.result import ParticipantResult
from tests.server_fixtures import Server, pid, replay_recording

EXPERIMENT = '''
import os
import threading
import time

from scenes import End, Experiment, Match, WaitingRoom

HOG_FLAG = os.path.join(os.path.dirname(os.path.abspath(__file__)), "hog")


def _hog():
    """Test-only load: while HOG_FLAG exists, hold the event loop 300 ms at a time."""
    while True:
        if os.path.exists(HOG_FLAG):
            end = time.perf_counter() + 0.3
            while time.perf_counter() < end:
                pass
            time.sleep(0.02)
        else:
            time.sleep(0.1)


threading.Thread(target=_hog, daemon=True).start()   # a green thread: the server monkey-patched first

EXPERIMENT = Experiment(id="adm", scenes=[
    Match(id="pong", game="game.games.pong:Pong", config={"max_score": 99, "max_frames": 900},
          humans=("left", "right"), episodes=1, fps=60,
          waiting_room=WaitingRoom(timeout_s=3, on_timeout="ai"), on_partner_drop="ai", fill_policy="random"),
    End(id="end", html="<p>Thanks</p>", completion_code="ADM"),
], allow_anonymous=True)
'''


class Tape:
    """Every server event a participant saw, with when."""

    def __init__(self) -> None:
        self.events: list[tuple[float, str, Any]] = []

    def __call__(self, name: str, payload: Any) -> None:
        self.events.append((time.monotonic(), name, payload))

    def first(self, name: str, where: Callable[[Any], bool] = lambda payload: True) -> float | None:
        return next((at for at, event, payload in self.events if event == name and where(payload)), None)


def start(url: str, seed: int) -> tuple[Tape, list[ParticipantResult], threading.Thread]:
    tape, results = Tape(), []
    participant = HeadlessParticipant(url, {"PROLIFIC_PID": pid()}, seed=seed, on_event=tape)
    thread = threading.Thread(target=lambda: results.append(participant.run(150)))
    thread.start()
    return tape, results, thread


def wait_for(condition: Callable[[], bool], seconds: float, what: str) -> float:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)
    return time.monotonic()


def admission_open(server: Server) -> float:
    samples = parse_metrics(requests.get(server.url + "/metrics", timeout=10).text)
    return samples[("coplay_admission_open", ())]


def test_under_real_overload_a_new_pair_waits_while_the_running_match_completes(tmp_path: Path) -> None:
    folder = tmp_path / "study"
    folder.mkdir()
    (folder / "experiment.py").write_text(EXPERIMENT)
    hog = folder / "hog"
    server = Server(["serve", str(folder / "experiment.py"), "--max-relay-lag-ms", "100"], tmp_path / "data")
    try:
        first = [start(server.url, seed) for seed in (1, 2)]
        wait_for(lambda: all(tape.first("match_start") for tape, _, _ in first), 60, "the first pair's match")
        hog.touch()
        closed = wait_for(lambda: admission_open(server) == 0, 30, "admission to close under load")
        second = [start(server.url, seed) for seed in (3, 4)]
        busy = wait_for(lambda: all(tape.first("waiting", lambda p: p.get("busy")) for tape, _, _ in second), 60,
                        "the second pair to be told the server is busy")
        time.sleep(4)   # longer than their waiting room's 3 s timeout: the clock is paused, no AI fills a seat
        assert not any(tape.first("match_start") for tape, _, _ in second)
        hog.unlink()
        unloaded = time.monotonic()
        for _, _, thread in first + second:
            thread.join(180)
        samples = parse_metrics(requests.get(server.url + "/metrics", timeout=10).text)
    finally:
        hog.unlink(missing_ok=True)
        server.stop()

    (result_a1,), (result_a2,) = first[0][1], first[1][1]
    for result in (result_a1, result_a2):   # the running match went on through the overload, untouched
        assert result.completed and result.ok and not result.desyncs, result.to_json()
        assert [m["reason"] for m in result.matches] == ["completed"]
    for tape, _, _ in first:
        assert tape.first("seat_changed") is None
        match_end = tape.first("match_end")
        assert match_end is not None and match_end > busy, "the first match should still run while the pair waits"
    (result_b1,), (result_b2,) = second[0][1], second[1][1]
    for (tape, _, _), result in zip(second, (result_b1, result_b2)):
        waiting = [payload for _, event, payload in tape.events if event == "waiting" and payload.get("busy")]
        assert waiting and all(p["message"] == BUSY_MESSAGE for p in waiting)
        started = tape.first("match_start")
        assert started is not None and started > unloaded
        assert result.completed and result.ok, result.to_json()
    assert result_b1.matches[0]["match"] == result_b2.matches[0]["match"], "the held pair plays together"
    assert samples[("coplay_admission_closes_total", ())] >= 1
    assert samples[("coplay_admission_held_starts_total", ())] >= 1
    with Store(database_path(str(tmp_path / "data"), "adm")) as store:
        changes = [e["data"] for e in store.events("admission")]
    # The close under load, with the first match running, then a reopening (a busy machine may add more).
    under_load = [i for i, c in enumerate(changes) if not c["open"] and c["matches"] == 1 and c["loop_lag_ms"] > 100]
    assert under_load and any(c["open"] for c in changes[under_load[0] + 1:]), changes
    assert replay_recording(server, "adm", result_a1.matches[0]["match"]).ok
    print(f"the pair was told {busy - closed:.1f} s after admission closed, and started "
          f"{started - unloaded:.1f} s after the load went; admission changes: {changes}")
