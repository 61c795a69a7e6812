"""The real server as a subprocess (eventlet lives there, never in the test process),
and helpers to run headless participants against it."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
import requests

from app.participant.headless import HeadlessParticipant
from app.participant.result import ParticipantResult
from app.analysis.replay import ReplayResult, replay
from app.live.match_room import MatchRoom

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """`python -m app.cli ARGS --port P --data D` as a subprocess, ready once /health answers.
    `env` adds to (or overrides) the environment it runs in; `root` is the checkout whose code runs."""

    def __init__(self, args: list[str], data_dir: Path, env: dict[str, str] | None = None, root: Path = ROOT) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.data_dir = data_dir
        data_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = data_dir / "server.log"
        self._log = open(self.log_path, "w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "app.cli", *args, "--port", str(self.port), "--data", str(data_dir)],
            cwd=root, stdout=self._log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})},
        )
        deadline = time.monotonic() + 60
        while True:
            if self.process.poll() is not None:
                self.stop()
                pytest.fail(f"the server exited with {self.process.returncode}:\n{self.log_path.read_text()}")
            try:
                if requests.get(self.url + "/health", timeout=1).status_code == 200:
                    return
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                self.stop()
                pytest.fail(f"the server did not answer /health in 60 s:\n{self.log_path.read_text()}")
            time.sleep(0.2)

    def stop(self) -> None:
        stop_process(self.process)
        self._log.close()


def stop_process(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, and SIGKILL if `process` has not ended 10 s later."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def pid() -> str:
    return f"e2e-{uuid.uuid4().hex[:10]}"


def run_together(participants: list[HeadlessParticipant], timeout: float = 60) -> list[ParticipantResult]:
    results: list[ParticipantResult | None] = [None] * len(participants)

    def play(i: int) -> None:
        results[i] = participants[i].run(timeout)

    threads = [threading.Thread(target=play, args=(i,)) for i in range(len(participants))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(r is not None for r in results)
    return results  # type: ignore[return-value]


def replay_recording(server: Server, experiment_id: str, match_id: str) -> ReplayResult:
    """Re-simulate a match the server recorded and check every checksum in it."""
    return replay(str(server.data_dir / experiment_id / "recordings" / f"{match_id}.jsonl"))


class SettlesAtOnce:
    """`MatchHost.settle` for test hosts without a server: run the room's referee to the end at once."""

    _settling = False

    def settle(self, room: MatchRoom) -> None:
        if self._settling:   # asked again from inside the referee: the loop below carries on
            return
        self._settling = True
        try:
            while room.referee_work(10_000):
                pass
        finally:
            self._settling = False
