"""Relays coordinated through Redis (issue 16, docs/scaling.md): a real redis-server, the real coordinator
(`coplay serve --redis`) and real relay processes (`coplay relay`) on loopback, headless participants."""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from app.participant.headless import HeadlessParticipant
from app.data.store import Store, database_path
from tests.relay_fixtures import SECRET, Relay, RedisServer, redis_server  # noqa: F401  (a fixture)
from tests.server_fixtures import Server, pid, replay_recording, run_together

EXPERIMENT = '''
from scenes import End, Experiment, Match, WaitingRoom

EXPERIMENT = Experiment(id="relayed", scenes=[
    Match(id="pong", game="game.games.pong:Pong", config={"max_score": 1000, "max_frames": FRAMES},
          humans=("left", "right"), fps=60, waiting_room=WaitingRoom(timeout_s=30, on_timeout="leave"),
          on_partner_drop="ai", grace_s=15, on_interrupted="continue"),
    End(id="end", html="<p>Thanks</p>", completion_code="RELAYED"),
])
'''


def experiment_file(folder: Path, frames: int) -> Path:
    path = folder / "relayed.py"
    path.write_text(EXPERIMENT.replace("FRAMES", str(frames)))
    return path


@pytest.fixture
def coordinator(tmp_path: Path, redis_server: RedisServer) -> Iterator[Server]:  # noqa: F811
    running = Server(["serve", str(experiment_file(tmp_path, 300)), "--redis", redis_server.url],
                     tmp_path / "data", env=SECRET)
    yield running
    running.stop()
    assert "Traceback" not in running.log_path.read_text()


def pair(server: Server, starts: list[dict[str, Any]], seed: int) -> list[HeadlessParticipant]:
    def note(name: str, payload: Any) -> None:
        if name == "match_start":
            starts.append(payload)
    return [HeadlessParticipant(server.url, {"PROLIFIC_PID": pid()}, seed=seed + i, on_event=note) for i in range(2)]


def matches(server: Server) -> dict[str, Any]:
    store = Store(database_path(str(server.data_dir), "relayed"))
    try:
        return {m.id: m for m in store.matches()}
    finally:
        store.close()


def test_a_match_runs_on_a_relay_and_its_recording_reaches_the_coordinator(
        tmp_path: Path, coordinator: Server, redis_server: RedisServer) -> None:  # noqa: F811
    relay = Relay("r1", coordinator.url, redis_server, "relayed", tmp_path / "relay-data")
    try:
        starts: list[dict[str, Any]] = []
        results = run_together(pair(coordinator, starts, 1), timeout=90)
        for result in results:
            assert result.completed and result.ok and not result.errors, result.to_json()
            assert result.packets_by_path.get("channel", 0) > 100
        assert {s["channel"]["url"] for s in starts} == {relay_url(redis_server, "r1")}
        match = results[0].matches[0]["match"]
        assert matches(coordinator)[match].status == "completed"
        assert replay_recording(coordinator, "relayed", match).ok
        assert (relay.data_dir / "relayed" / "recordings" / f"{match}.jsonl").read_bytes() == \
            (coordinator.data_dir / "relayed" / "recordings" / f"{match}.jsonl").read_bytes()
    finally:
        relay.stop()
    assert "Traceback" not in relay.log()


def relay_url(redis_db: RedisServer, name: str) -> str:
    raw = redis_db.client.get(f"coplay:relayed:relay:{name}")
    assert raw is not None
    return str(json.loads(raw)["url"])


def wait_for(check: Any, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)
