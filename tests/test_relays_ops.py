"""Operating relays (docs/scaling.md): admission control sees the relays' lag, the dashboard and /metrics show
the relays' figures and their matches' progress, and a relay cut off from Redis ends its matches itself.

A real redis-server, the real coordinator and real relay processes on loopback, headless participants. The
overload is real: an AI policy that burns CPU on the relay, as a model too heavy for it would (made while
`heavy.flag` exists next to it, until `calm.flag` does).
"""
from __future__ import annotations

import signal
import threading
from pathlib import Path
from typing import Any, Callable

import requests

from app.data.recording import read_recording
from app.live.admission import BUSY_MESSAGE
from app.live.metrics import parse_metrics
from app.participant.headless import HeadlessParticipant
from app.participant.result import ParticipantResult
from tests.relay_fixtures import SECRET, Relay, RedisServer, redis_server  # noqa: F401  (a fixture)
from tests.server_fixtures import Server, pid, replay_recording, run_together
from tests.test_relays import experiment_file, matches, pair, wait_for

SOLO = '''
from scenes import AISeat, End, Experiment, Match, WaitingRoom

EXPERIMENT = Experiment(id="relayed", scenes=[
    Match(id="solo", game="game.games.pong:Pong", config={"max_score": 1000, "max_frames": FRAMES},
          humans=("left",), ai={"right": AISeat("HEAVY:Heavy")}, fps=60,
          waiting_room=WaitingRoom(timeout_s=120, on_timeout="leave"), on_interrupted="continue"),
    End(id="end", html="<p>Thanks</p>", completion_code="RELAYED"),
])
'''

HEAVY = '''
import time
from pathlib import Path

HEAVY = Path(__file__).with_name("heavy.flag")
CALM = Path(__file__).with_name("calm.flag")


class Heavy:
    """Plays idle; one made while HEAVY exists first burns CPU at each decision until CALM exists."""

    def __init__(self):
        self.heavy = HEAVY.exists()

    def act(self, observation):
        if self.heavy and not CALM.exists():
            until = time.process_time() + 0.25   # CPU time, so the lag is past the limit on any machine
            while time.process_time() < until:
                pass
        return None
'''


def solo_experiment(folder: Path, frames: int) -> Path:
    (folder / "heavy.py").write_text(HEAVY)
    path = folder / "relayed.py"
    path.write_text(SOLO.replace("FRAMES", str(frames)).replace("HEAVY", str(folder / "heavy.py")))
    return path


class Solo:
    """One headless participant on a background thread, noting every server event."""

    def __init__(self, server: Server, seed: int, timeout: float = 120) -> None:
        self.events: list[tuple[str, Any]] = []
        self.participant = HeadlessParticipant(server.url, {"PROLIFIC_PID": pid()}, seed=seed,
                                               on_event=lambda name, payload: self.events.append((name, payload)))
        self.result: ParticipantResult | None = None
        self.thread = threading.Thread(target=self._run, args=(timeout,))
        self.thread.start()

    def _run(self, timeout: float) -> None:
        self.result = self.participant.run(timeout)

    def started(self) -> dict[str, Any] | None:
        return next((payload for name, payload in self.events if name == "match_start"), None)

    def join(self) -> ParticipantResult:
        self.thread.join()
        assert self.result is not None
        return self.result


def relay_of(solo: Solo, urls: dict[str, str]) -> str:
    start = solo.started()
    assert start is not None
    return urls[start["channel"]["url"]]


def gauges(server: Server) -> dict[tuple[str, Any], float]:
    return parse_metrics(requests.get(server.url + "/metrics", timeout=10).text)


def gauge(server: Server, name: str, relay: str) -> float | None:
    return gauges(server).get((name, (("relay", relay),)))


def card_urls(redis_db: RedisServer, names: list[str]) -> dict[str, str]:
    import json

    return {json.loads(redis_db.client.get(f"coplay:relayed:relay:{n}") or "{}")["url"]: n for n in names}


def admin_snapshot(server: Server) -> dict[str, Any]:
    token = (server.data_dir / "relayed" / "admin_token").read_text().strip()
    response = requests.get(server.url + "/admin/snapshot.json", headers={"Authorization": f"Bearer {token}"},
                            timeout=10)
    assert response.status_code == 200, response.text
    return dict(response.json())


def eventually(check: Callable[[], Any], timeout: float = 30) -> None:
    wait_for(check, timeout)


def test_a_lagging_relay_gets_no_new_matches_and_the_dashboard_shows_relayed_matches(
        tmp_path: Path, redis_server: RedisServer) -> None:  # noqa: F811
    flag = tmp_path / "heavy.flag"
    coordinator = Server(["serve", str(solo_experiment(tmp_path, 900)), "--redis", redis_server.url],
                         tmp_path / "data", env={**SECRET, "COPLAY_ADMIN_TOKEN": ""})
    relays = [Relay(name, coordinator.url, redis_server, "relayed", coordinator.data_dir) for name in ("r1", "r2")]
    solos: list[Solo] = []
    try:
        urls = card_urls(redis_server, ["r1", "r2"])
        eventually(lambda: gauge(coordinator, "coplay_relay_up", "r2") == 1)
        flag.write_text("on")
        heavy = Solo(coordinator, 1)
        solos.append(heavy)
        eventually(lambda: heavy.started() is not None)
        assert relay_of(heavy, urls) == "r1"   # both empty: the first by id
        eventually(lambda: gauge(coordinator, "coplay_relay_admitting", "r1") == 0)
        flag.unlink()   # the matches started from now on are light
        assert (gauge(coordinator, "coplay_relay_lag_seconds", "r1") or 0) > 0.15
        assert gauge(coordinator, "coplay_relay_admitting", "r2") == 1
        assert gauges(coordinator)[("coplay_admission_open", ())] == 1   # r2 still takes matches

        # By count alone the third match would go to r1 (one match each); r1 lags, so both go to r2.
        light = [Solo(coordinator, 2)]
        eventually(lambda: light[0].started() is not None)
        eventually(lambda: gauge(coordinator, "coplay_relay_matches", "r2") == 1)   # a tie by every count
        assert gauge(coordinator, "coplay_relay_matches", "r1") == 1
        light.append(Solo(coordinator, 3))
        solos.extend(light)
        eventually(lambda: light[1].started() is not None)
        assert [relay_of(s, urls) for s in light] == ["r2", "r2"]

        # The dashboard shows relayed matches as in-process ones: where, frame, pings; and each relay's figures.
        def progressed() -> bool:
            snapshot = admin_snapshot(coordinator)
            live = {m["id"]: m for m in snapshot["live"]["matches"]}
            match = live.get(light[0].started()["match"])   # type: ignore[index]
            on_r2 = [r["matches"] for r in snapshot["health"]["admission"].get("relays", []) if r["id"] == "r2"]
            return match is not None and match["frame"] > 60 and match["seats"][0]["ping_ms"] is not None \
                and on_r2 == [2]   # both light matches started there, as the relay's heartbeat says
        eventually(progressed)
        snapshot = admin_snapshot(coordinator)
        assert {m["relay"] for m in snapshot["live"]["matches"]} == {"r1", "r2"}
        relays_status = {r["id"]: r for r in snapshot["health"]["admission"]["relays"]}
        assert relays_status["r1"]["admitting"] is False and relays_status["r2"]["admitting"] is True
        assert relays_status["r2"]["matches"] == 2 and relays_status["r2"]["packets_per_s"] > 0
        assert snapshot["live"]["rtt_ms"]
        figures = gauges(coordinator)
        assert figures[("coplay_relay_matches", (("relay", "r2"),))] == 2
        assert figures[("coplay_relay_packets_per_second", (("relay", "r2"),))] > 0

        # The overload ends: r1 takes matches again.
        (tmp_path / "calm.flag").write_text("on")
        eventually(lambda: gauge(coordinator, "coplay_relay_admitting", "r1") == 1, timeout=40)
        for solo in solos:
            result = solo.join()
            assert result.completed and result.ok, result.to_json()
        for solo in solos:
            assert matches(coordinator)[solo.started()["match"]].status == "completed"   # type: ignore[index]
    finally:
        flag.unlink(missing_ok=True)
        for solo in solos:
            solo.thread.join(timeout=150)
        for relay in relays:
            relay.stop()
        coordinator.stop()
    log = coordinator.log_path.read_text()
    assert "relay r1 lags" in log and "Traceback" not in log
    assert "Traceback" not in relays[0].log() + relays[1].log()


def test_when_every_relay_lags_new_matches_wait_and_running_ones_go_on(
        tmp_path: Path, redis_server: RedisServer) -> None:  # noqa: F811
    flag = tmp_path / "heavy.flag"
    coordinator = Server(["serve", str(solo_experiment(tmp_path, 600)), "--redis", redis_server.url],
                         tmp_path / "data", env=SECRET)
    relay = Relay("r1", coordinator.url, redis_server, "relayed", coordinator.data_dir)
    solos: list[Solo] = []
    try:
        eventually(lambda: gauge(coordinator, "coplay_relay_up", "r1") == 1)
        flag.write_text("on")
        heavy = Solo(coordinator, 1, timeout=180)
        solos.append(heavy)
        eventually(lambda: heavy.started() is not None)
        eventually(lambda: gauges(coordinator)[("coplay_admission_open", ())] == 0)
        flag.unlink()   # the matches started from now on are light
        held = Solo(coordinator, 2, timeout=180)
        solos.append(held)
        eventually(lambda: any(name == "waiting" and payload.get("busy") for name, payload in held.events))
        busy = next(payload for name, payload in held.events if name == "waiting" and payload.get("busy"))
        assert busy["message"] == BUSY_MESSAGE
        assert held.started() is None
        running = heavy.started()["match"]   # type: ignore[index]
        assert matches(coordinator)[running].status == "active"   # the match already running goes on

        (tmp_path / "calm.flag").write_text("on")   # the overload ends: admission reopens, the held match starts
        eventually(lambda: held.started() is not None, timeout=60)
        assert held.started()["channel"]["url"].startswith("ws://127.0.0.1:")   # type: ignore[index]
        for solo in solos:
            result = solo.join()
            assert result.completed and result.ok, result.to_json()
        assert matches(coordinator)[running].status == "completed"
    finally:
        flag.unlink(missing_ok=True)
        for solo in solos:
            solo.thread.join(timeout=200)
        relay.stop()
        coordinator.stop()
    log = coordinator.log_path.read_text()
    assert "admission closed" in log and "admission reopened" in log and "Traceback" not in log


def test_a_relay_cut_off_from_redis_ends_its_matches_itself_and_hands_the_recording_over_later(
        tmp_path: Path, redis_server: RedisServer) -> None:  # noqa: F811
    coordinator = Server(["serve", str(experiment_file(tmp_path, 3600)), "--redis", redis_server.url],
                         tmp_path / "data", env=SECRET)
    relay = Relay("r1", coordinator.url, redis_server, "relayed", tmp_path / "elsewhere")   # its own disk
    stopped = False
    try:
        starts: list[dict[str, Any]] = []
        participants = pair(coordinator, starts, 80)
        results: list[Any] = []
        runner = threading.Thread(target=lambda: results.extend(run_together(participants, timeout=120)))
        runner.start()
        eventually(lambda: len(starts) == 2)
        match = starts[0]["match"]
        on_relay = relay.data_dir / "relayed" / "recordings" / f"{match}.jsonl"
        eventually(lambda: on_relay.exists() and read_recording(str(on_relay)).complete_frames.get(0, 0) > 120)
        redis_server.process.send_signal(signal.SIGSTOP)   # Redis hangs: neither side can reach it
        stopped = True
        # The relay notices by itself, before its card expires, and ends the match: its recording is closed.
        eventually(lambda: read_recording(str(on_relay)).end_reason == "interrupted", timeout=25)
        assert matches(coordinator)[match].status == "active"   # the coordinator cannot know yet
        redis_server.process.send_signal(signal.SIGCONT)
        stopped = False
        eventually(lambda: matches(coordinator)[match].status == "interrupted", timeout=30)
        collected = coordinator.data_dir / "relayed" / "recordings" / f"{match}.jsonl"
        eventually(lambda: collected.exists() and collected.read_bytes() == on_relay.read_bytes(), timeout=20)
        assert replay_recording(coordinator, "relayed", match).ok
        runner.join()
        for result in results:
            assert result.completed, result.to_json()   # on_interrupted="continue": on to the end scene
            assert result.matches[0]["reason"] == "interrupted"
        assert "cut off from Redis" in relay.log()
    finally:
        if stopped:
            redis_server.process.send_signal(signal.SIGCONT)
        relay.stop()
        coordinator.stop()
    assert "Traceback" not in coordinator.log_path.read_text() + relay.log()
