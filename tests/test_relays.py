"""Relays coordinated through Redis (issue 16, docs/scaling.md): a real redis-server, the real coordinator
(`coplay serve --redis`) and real relay processes (`coplay relay`) on loopback, headless participants."""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Iterator

import pytest
import requests

from app.participant.headless import HeadlessParticipant
from app.analysis.replay import replay
from app.data.recording import read_recording
from app.data.store import Store, database_path
from app.live.metrics import parse_metrics
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


def started_in_background(participants: list[HeadlessParticipant], timeout: float) -> tuple[list[Any], Any]:
    """Run `participants` on threads; returns (results so far, join) — join() waits and returns them all."""
    import threading

    results: list[Any] = [None] * len(participants)

    def play(i: int) -> None:
        results[i] = participants[i].run(timeout)

    threads = [threading.Thread(target=play, args=(i,)) for i in range(len(participants))]
    for thread in threads:
        thread.start()

    def join() -> list[Any]:
        for thread in threads:
            thread.join()
        return results

    return results, join


def test_a_relay_killed_mid_match_interrupts_only_its_matches_and_loses_nothing_recorded(
        tmp_path: Path, redis_server: RedisServer) -> None:  # noqa: F811
    coordinator = Server(["serve", str(experiment_file(tmp_path, 1800)), "--redis", redis_server.url],
                         tmp_path / "data", env=SECRET)
    # Both relays write into the coordinator's data folder, as `--relays N` does on one machine.
    relays = [Relay(name, coordinator.url, redis_server, "relayed", coordinator.data_dir) for name in ("r1", "r2")]
    try:
        urls = {relay_url(redis_server, r.name): r.name for r in relays}
        starts: list[dict[str, Any]] = []
        _, join = started_in_background(pair(coordinator, starts, 10) + pair(coordinator, starts, 20), timeout=90)
        wait_for(lambda: len({s["match"] for s in starts}) == 2)
        on = {s["match"]: urls[s["channel"]["url"]] for s in starts}
        assert sorted(on.values()) == ["r1", "r2"]   # the least-loaded relay takes each new match
        killed = next(m for m, r in on.items() if r == "r1")
        survivor = next(m for m, r in on.items() if r == "r2")
        recording = coordinator.data_dir / "relayed" / "recordings" / f"{killed}.jsonl"
        wait_for(lambda: recording.exists() and read_recording(str(recording)).complete_frames.get(0, 0) > 120)
        relays[0].kill()
        frames_before = read_recording(str(recording)).complete_frames[0]
        wait_for(lambda: matches(coordinator)[killed].status == "interrupted", timeout=25)
        assert matches(coordinator)[survivor].status == "active"
        up = parse_metrics(requests.get(coordinator.url + "/metrics", timeout=10).text)
        assert (up[("coplay_relay_up", (("relay", "r1"),))], up[("coplay_relay_up", (("relay", "r2"),))]) == (0, 1)

        results = join()
        by_match = {r.matches[0]["match"]: r for r in results}
        assert matches(coordinator)[survivor].status == "completed"
        for result in results:
            assert result.completed, result.to_json()   # on_interrupted="continue": on to the end scene
            assert result.matches[0]["reason"] == ("interrupted" if result.matches[0]["match"] == killed
                                                   else "completed")
        assert by_match[survivor].ok
        kept = read_recording(str(recording))
        assert kept.end_reason == "interrupted" and kept.complete_frames[0] >= frames_before
        assert replay(str(recording)).ok and replay_recording(coordinator, "relayed", survivor).ok

        # A new match goes to the surviving relay.
        after: list[dict[str, Any]] = []
        for result in run_together(pair(coordinator, after, 30), timeout=90):
            assert result.completed and result.ok, result.to_json()
        assert {urls[s["channel"]["url"]] for s in after} == {"r2"}
        assert replay_recording(coordinator, "relayed", after[0]["match"]).ok
    finally:
        for relay in relays:
            relay.stop()
        coordinator.stop()
    assert "Traceback" not in coordinator.log_path.read_text() + relays[1].log()


def test_relays_on_two_loopback_addresses_send_every_recording_to_the_coordinator(
        tmp_path: Path, coordinator: Server, redis_server: RedisServer) -> None:  # noqa: F811
    # Each relay has its own data folder, as on another machine: recordings are copied, checked by sha256.
    relays = [Relay(f"r{i}", coordinator.url, redis_server, "relayed", tmp_path / f"machine{i}", host=f"127.0.0.{i}")
              for i in (1, 2)]
    try:
        assert {relay_url(redis_server, r.name) for r in relays} == {
            u for u in (relay_url(redis_server, "r1"), relay_url(redis_server, "r2"))
            if u.startswith(("ws://127.0.0.1:", "ws://127.0.0.2:"))}
        starts: list[dict[str, Any]] = []
        results = run_together(pair(coordinator, starts, 40) + pair(coordinator, starts, 50), timeout=90)
        for result in results:
            assert result.completed and result.ok and not result.errors, result.to_json()
        hosts = {s["match"]: s["channel"]["url"].split(":")[1] for s in starts}
        assert sorted(set(hosts.values())) == ["//127.0.0.1", "//127.0.0.2"]
        for match in hosts:
            assert matches(coordinator)[match].status == "completed"
            copied = coordinator.data_dir / "relayed" / "recordings" / f"{match}.jsonl"
            written = [r.data_dir / "relayed" / "recordings" / f"{match}.jsonl" for r in relays]
            assert copied.read_bytes() in [w.read_bytes() for w in written if w.exists()]
            assert replay_recording(coordinator, "relayed", match).ok
    finally:
        for relay in relays:
            relay.stop()
    for relay in relays:
        assert "Traceback" not in relay.log()


def test_serve_with_relays_starts_its_own_redis_and_relays_and_plays_matches_on_them(tmp_path: Path) -> None:
    coordinator = Server(["serve", str(experiment_file(tmp_path, 300)), "--relays", "2"], tmp_path / "data")
    try:
        import redis

        private = redis.Redis(unix_socket_path=str(coordinator.data_dir / "relayed" / "redis" / "redis.sock"))
        wait_for(lambda: len(private.keys("coplay:relayed:relay:*")) == 2, timeout=60)
        cards = [json.loads(private.get(k) or "{}") for k in private.keys("coplay:relayed:relay:*")]
        relay_pids = [card["pid"] for card in cards]
        # Browsers may open the relays' channels: their origins are in the pages' connect-src.
        origins = [card["url"].rsplit("/", 1)[0] for card in cards]

        def policy() -> str:
            page = requests.get(coordinator.url + "/", params={"PROLIFIC_PID": pid()}, timeout=10)
            return page.headers["Content-Security-Policy"]
        wait_for(lambda: all(origin in policy() for origin in origins), timeout=10)
        starts: list[dict[str, Any]] = []
        results = run_together(pair(coordinator, starts, 60) + pair(coordinator, starts, 70), timeout=90)
        for result in results:
            assert result.completed and result.ok and not result.errors, result.to_json()
        assert len({s["channel"]["url"] for s in starts}) == 2   # one match on each relay
        for match in {s["match"] for s in starts}:
            assert replay_recording(coordinator, "relayed", match).ok
        private.close()
    finally:
        coordinator.stop()
    # The relays end with the coordinator.
    wait_for(lambda: not any(Path(f"/proc/{p}").exists() and "zombie" not in _state(p) for p in relay_pids))
    assert "Traceback" not in coordinator.log_path.read_text()


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/status").read_text().lower()
    except OSError:
        return "zombie"


def test_a_match_a_relay_cannot_start_ends_as_an_error_and_participants_go_on(
        tmp_path: Path, redis_server: RedisServer) -> None:  # noqa: F811
    (tmp_path / "mygame.py").write_text("from game.games.pong import Pong as MyPong\n")
    (tmp_path / "relayed.py").write_text(EXPERIMENT.replace("game.games.pong:Pong", "mygame.py:MyPong")
                                         .replace("FRAMES", "300"))
    coordinator = Server(["serve", str(tmp_path / "relayed.py"), "--redis", redis_server.url], tmp_path / "data",
                         env=SECRET)
    relay = Relay("r1", coordinator.url, redis_server, "relayed", tmp_path / "elsewhere")
    try:
        (tmp_path / "mygame.py").unlink()   # as on a relay machine without the experiment's files
        results = run_together(pair(coordinator, [], 90), timeout=60)
        for result in results:
            assert result.completed and not result.matches, result.to_json()   # never started: on to the end
        assert [m.status for m in matches(coordinator).values()] == ["error"]
        assert "could not start on relay r1" in coordinator.log_path.read_text()
    finally:
        relay.stop()
        coordinator.stop()


def test_a_relay_serves_metrics_counting_the_packets_of_a_match_played_through_it(
        tmp_path: Path, coordinator: Server, redis_server: RedisServer) -> None:  # noqa: F811
    relay = Relay("r1", coordinator.url, redis_server, "relayed", tmp_path / "relay-data")
    try:
        base = relay_url(redis_server, "r1").replace("ws://", "http://").rsplit("/", 1)[0]
        before = parse_metrics(requests.get(base + "/metrics", timeout=10).text)
        assert before[("coplay_relay_seconds_count", ())] == 0
        results = run_together(pair(coordinator, [], 20), timeout=90)
        for result in results:
            assert result.completed and result.ok, result.to_json()
        response = requests.get(base + "/metrics", timeout=10)
        assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        after = parse_metrics(response.text)
        relayed = after[("coplay_relay_seconds_count", ())]
        sent = sum(r.packets_by_path.get("channel", 0) for r in results)
        delivered = sum(r.stats["packets_received"] for r in results)   # counted until each episode's end
        assert 100 < delivered <= relayed <= sent
        assert after[("coplay_relayed_packets_total", ())] == relayed
        assert after[("coplay_process_cpu_seconds_total", ())] > 0
        assert after[("coplay_matches_active", ())] == 0
        assert requests.get(base + "/nothing", timeout=10).status_code == 404
    finally:
        relay.stop()
    assert "Traceback" not in relay.log()
