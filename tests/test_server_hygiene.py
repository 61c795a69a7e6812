"""Transport and entry hygiene against the real server: headers, cookies, proxies, entry rules, idle timeouts."""
from __future__ import annotations

import os
import sqlite3
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from flask import Flask, session

from app.web import security
from tests.server_fixtures import Server, pid
from tests.test_server_robustness import RawClient

HYGIENE_EXPERIMENT = '''
from scenes import Consent, End, Experiment

EXPERIMENT = Experiment(id="hygiene", scenes=[
    Consent(id="consent", markdown="Agree?"),
    End(id="end", html="<p>Thanks</p>", completion_code="CLEAN"),
], idle_timeout_s=2)
'''


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("hygiene")
    (folder / "experiment.py").write_text(HYGIENE_EXPERIMENT)
    running = Server(["serve", str(folder / "experiment.py")], folder / "data")
    yield running
    running.stop()


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    running = Server(["demo", "--proxy-fix"], tmp_path_factory.mktemp("demo-proxy") / "data")
    yield running
    running.stop()


def rows(server: Server, experiment: str, sql: str = "SELECT platform_id, status FROM participants") -> list[tuple]:
    with sqlite3.connect(f"file:{server.data_dir / experiment / 'coplay.sqlite'}?mode=ro", uri=True) as db:
        return db.execute(sql).fetchall()


def assert_page_headers(response: requests.Response) -> None:
    headers = response.headers
    policy = headers["Content-Security-Policy"]
    assert "script-src 'self' 'wasm-unsafe-eval'" in policy and "frame-ancestors 'none'" in policy
    assert headers["X-Frame-Options"] == "DENY" and headers["Referrer-Policy"] == "no-referrer"
    assert headers["X-Content-Type-Options"] == "nosniff"


def test_a_link_without_the_platform_id_is_refused_and_creates_no_row(server: Server) -> None:
    for params in ({}, {"participant": "old-style"}, {"PROLIFIC_PID": "   "}):
        response = requests.get(server.url + "/", params=params, timeout=10)
        assert response.status_code == 403 and "lacks the PROLIFIC_PID parameter" in response.text
        assert "Set-Cookie" not in response.headers
        assert_page_headers(response)
    bad = requests.get(server.url + "/", params={"PROLIFIC_PID": "{{%PROLIFIC_PID%}}"}, timeout=10)
    assert bad.status_code == 400 and "is not a valid id" in bad.text
    assert rows(server, "hygiene", "SELECT COUNT(*) FROM participants") == [(0,)]


def test_one_participant_whatever_the_spaces_and_case_of_the_id(server: Server) -> None:
    base = pid()
    for variant in (f" {base}", base.upper(), f"{base} "):
        response = requests.get(server.url + "/", params={"PROLIFIC_PID": variant}, timeout=10)
        assert response.status_code == 200
        assert_page_headers(response)
        cookie = response.headers["Set-Cookie"]
        assert "HttpOnly" in cookie and "Secure" not in cookie   # plain http, no proxy
    assert [row for row in rows(server, "hygiene") if row[0] == base] == [(base, "active")]


def test_an_idle_participant_times_out_and_sees_a_clear_page(server: Server) -> None:
    with requests.Session() as http:
        entered = http.get(server.url + "/", params={"PROLIFIC_PID": "idle-one"}, timeout=10)
        assert entered.status_code == 200
        deadline = time.monotonic() + 15
        while ("idle-one", "timed_out") not in rows(server, "hygiene"):
            assert time.monotonic() < deadline, rows(server, "hygiene")
            time.sleep(0.2)
        cookie = "; ".join(f"{c.name}={c.value}" for c in http.cookies)
    again = requests.get(server.url + "/", params={"PROLIFIC_PID": "IDLE-ONE"}, timeout=10)
    assert again.status_code == 403 and "Session timed out" in again.text
    back = RawClient(server.url, cookie)   # the same browser (its cookie) gets the timed-out page
    try:
        scene = back.scene["scene"]
        assert scene["kind"] == "end" and scene["outcome"] == "timed_out" and "too long" in scene["html"]
    finally:
        back.sio.disconnect()


def test_a_connected_participant_does_not_time_out(server: Server) -> None:
    client = RawClient(server.url)
    try:
        time.sleep(4)
        [[status]] = rows(server, "hygiene", "SELECT status FROM participants ORDER BY rowid DESC LIMIT 1")
        assert status == "active"
    finally:
        client.sio.disconnect()


def test_a_client_error_cannot_forge_log_lines(server: Server) -> None:
    client = RawClient(server.url)
    try:
        client.sio.emit("client_error", {"message": "boom\n2099-01-01 00:00:00,000 INFO coplay.server: forged",
                                         "traceback": "Traceback\n  line 1\x1b[2J"})
        deadline = time.monotonic() + 10
        while "boom" not in server.log_path.read_text():
            assert time.monotonic() < deadline
            time.sleep(0.1)
    finally:
        client.sio.disconnect()
    log = server.log_path.read_text()
    assert "boom\\n2099-01-01 00:00:00,000 INFO coplay.server: forged" in log and "\x1b" not in log
    assert not any(line.startswith("2099-01-01") for line in log.splitlines())


def test_the_data_folder_is_private(server: Server) -> None:
    folder = server.data_dir / "hygiene"
    assert stat.S_IMODE(os.stat(folder).st_mode) == 0o700
    for name in ("coplay.sqlite", "coplay.sqlite-wal", "coplay.sqlite-shm", "admin_token", "secret_key"):
        assert stat.S_IMODE(os.stat(folder / name).st_mode) == 0o600, name


def test_the_replay_pages_carry_the_headers_too(server: Server) -> None:
    token = (server.data_dir / "hygiene" / "admin_token").read_text().strip()
    response = requests.get(server.url + "/replay", params={"token": token}, timeout=10)
    assert response.status_code == 200
    assert_page_headers(response)


# ------------------------------------------------------------------ the demo, behind a proxy

def test_anonymous_entry_is_rate_limited_per_forwarded_address(demo: Server) -> None:
    statuses = []
    with requests.Session() as http:
        for _ in range(500):
            http.cookies.clear()
            response = http.get(demo.url + "/", headers={"X-Forwarded-For": "203.0.113.7"}, timeout=10)
            statuses.append(response.status_code)
            if response.status_code == 429:
                assert int(response.headers["Retry-After"]) >= 1 and "try again" in response.text
    assert statuses.count(200) <= 5 and statuses.count(429) >= 495
    assert rows(demo, "demo", "SELECT COUNT(*) FROM participants") == [(statuses.count(200),)]
    other = requests.get(demo.url + "/", headers={"X-Forwarded-For": "198.51.100.1"}, timeout=10)
    assert other.status_code == 200   # another address, as the proxy says
    named = requests.get(demo.url + "/", params={"PROLIFIC_PID": pid()},
                         headers={"X-Forwarded-For": "203.0.113.7"}, timeout=10)
    assert named.status_code == 200   # a platform id is never rate-limited


def test_behind_a_proxy_the_session_cookie_is_secure(demo: Server) -> None:
    response = requests.get(demo.url + "/", params={"PROLIFIC_PID": pid()},
                            headers={"X-Forwarded-Proto": "https", "X-Forwarded-Host": "study.example.org"},
                            timeout=10)
    assert response.status_code == 200
    assert "Secure" in response.headers["Set-Cookie"]
    assert "wss://study.example.org" in response.headers["Content-Security-Policy"]


# ------------------------------------------------------------------ start-up and settings

def test_an_open_folder_is_tightened_at_start_and_the_proxy_setting_comes_from_the_environment(
        tmp_path: Path) -> None:
    folder = tmp_path / "data" / "demo"
    (folder / "recordings").mkdir(parents=True)
    (folder / "recordings" / "old.jsonl").write_text("{}\n")
    for path, mode in ((folder, 0o755), (folder / "recordings", 0o777), (folder / "recordings" / "old.jsonl", 0o644)):
        os.chmod(path, mode)
    server = Server(["demo"], tmp_path / "data", env={"COPLAY_PROXY_FIX": "1", "COPLAY_DATA_GROUP_ACCESS": ""})
    try:
        assert "was readable by others: tightened 3 permission(s)" in server.log_path.read_text()
        assert [stat.S_IMODE(os.stat(p).st_mode) for p in (folder, folder / "recordings",
                                                           folder / "recordings" / "old.jsonl")] == [0o700, 0o700, 0o600]
        response = requests.get(server.url + "/", params={"PROLIFIC_PID": pid()}, timeout=10)
        assert "Secure" in response.headers["Set-Cookie"]
    finally:
        server.stop()


def test_a_page_served_over_https_directly_gets_a_secure_cookie() -> None:
    app = Flask(__name__)
    app.secret_key = "test"
    security.install(app, "/static/vendor/pyodide/", behind_proxy=False)

    @app.get("/")
    def index() -> str:
        session["x"] = 1
        return "<p>hi</p>"

    assert "Secure" not in app.test_client().get("/").headers["Set-Cookie"]
    over_https = app.test_client().get("/", base_url="https://study.example.org")
    assert "Secure" in over_https.headers["Set-Cookie"]
    assert "wss://study.example.org" in over_https.headers["Content-Security-Policy"]
