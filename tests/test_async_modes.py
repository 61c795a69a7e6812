"""The real server under each async mode (eventlet, gevent, threading with simple-websocket):
two headless participants complete a short match, and GET /metrics shows it."""
from __future__ import annotations

from pathlib import Path

import pytest
import requests

from app.participant.headless import HeadlessParticipant
from app.live.metrics import CONTENT_TYPE, histogram_buckets, parse_metrics
from tests.server_fixtures import Server, pid, run_together

EXPERIMENT = '''
from scenes import End, Experiment, Match, WaitingRoom

EXPERIMENT = Experiment(id="modes", scenes=[
    Match(id="pong", game="game.games.pong:Pong", config={"max_score": 1, "max_frames": 60},
          humans=("left", "right"), episodes=1, fps=60,
          waiting_room=WaitingRoom(timeout_s=20, on_timeout="leave"), on_partner_drop="end"),
    End(id="end", html="<p>Thanks</p>", completion_code="MODES"),
])
'''


@pytest.mark.parametrize("mode", ["eventlet", "gevent", "threading"])
def test_a_short_match_completes_and_metrics_show_it(mode: str, tmp_path: Path) -> None:
    (tmp_path / "experiment.py").write_text(EXPERIMENT)
    server = Server(["serve", str(tmp_path / "experiment.py"), "--async-mode", mode], tmp_path / "data")
    try:
        a = HeadlessParticipant(server.url, {"PROLIFIC_PID": pid()}, seed=1)
        b = HeadlessParticipant(server.url, {"PROLIFIC_PID": pid()}, seed=2, policy="idle")
        for result in run_together([a, b], timeout=60):
            assert result.completed and result.ok and not result.desyncs, result.to_json()
            assert result.completion_code == "MODES"
        response = requests.get(server.url + "/metrics", timeout=5)
    finally:
        server.stop()
    assert f"({mode};" in server.log_path.read_text()
    assert response.status_code == 200
    assert response.headers["Content-Type"] == CONTENT_TYPE
    samples = parse_metrics(response.text)

    def value(name: str, **labels: str) -> float:
        return samples[(name, tuple(sorted(labels.items())))]

    assert value("coplay_matches_started_total") == 1
    assert value("coplay_matches_ended_total", reason="completed") == 1
    assert value("coplay_matches_active") == 0
    assert value("coplay_participants_entered_total") == 2
    assert value("coplay_participants_completed_total") == 2
    assert value("coplay_socket_connects_total") >= 2
    assert value("coplay_connect_seconds_count") == 2
    assert value("coplay_waiting_seconds_count") == 2
    assert value("coplay_first_packet_seconds_count") == 2
    relayed = value("coplay_relayed_packets_total")
    assert relayed > 0 and value("coplay_relayed_bytes_total") > relayed
    assert value("coplay_relay_seconds_count") == relayed
    assert histogram_buckets(samples, "coplay_relay_seconds")[-1][1] == relayed
    assert value("coplay_events_total", event="packet") >= relayed
    assert value("coplay_packets_received_total", path="channel") > 0.9 * relayed   # over the match channel
    assert value("coplay_desyncs_total") == 0
    assert value("coplay_process_cpu_seconds_total") > 0
    assert value("coplay_process_resident_memory_bytes") > 1_000_000
    assert value("coplay_process_open_fds") > 0


def test_fast_websocket_mask_matches_eventlets_definition() -> None:
    from app.web.asyncmode import apply_mask

    def reference(data: bytes, mask: bytes, length: int | None = None, offset: int = 0) -> bytes:
        length = len(data) if length is None else length
        return b"".join(bytes((data[i] ^ mask[(offset + i) % 4],)) for i in range(length))

    import random

    rng = random.Random(3)
    for _ in range(300):
        data = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 40)))
        mask = bytes(rng.randrange(256) for _ in range(4))
        length = rng.choice([None, len(data), rng.randrange(0, len(data) + 1)])
        offset = rng.randrange(0, 9)
        assert apply_mask(data, mask, length, offset) == reference(data, mask, length, offset)
    assert apply_mask(bytearray(b"\x00\x01"), bytearray(b"\xff\xff\xff\xff")) == b"\xff\xfe"
