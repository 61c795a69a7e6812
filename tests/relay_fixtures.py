"""A real redis-server on a free loopback port in a temp dir, and real relay processes (`coplay relay`)."""
from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import pytest
import redis

from tests.server_fixtures import ROOT, free_port, stop_process

SECRET = {"COPLAY_RELAY_SECRET": secrets.token_hex(32)}   # made per test run, never a fixed value


class RedisServer:
    """`redis-server` as a subprocess: no persistence, bound to 127.0.0.1 on a free port."""

    def __init__(self, folder: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail("redis-server is missing: run scripts/setup (or apt-get install redis-server)")
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        folder.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(folder)], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        self.client = redis.Redis.from_url(self.url)
        deadline = time.monotonic() + 10
        while True:
            try:
                self.client.ping()
                return
            except redis.ConnectionError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    pytest.fail("redis-server did not start")
                time.sleep(0.05)

    def stop(self) -> None:
        self.client.close()
        stop_process(self.process)


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path / "redis")
    yield server
    server.stop()


class Relay:
    """`python -m app.cli relay ...` as a subprocess, ready once it registered in Redis."""

    def __init__(self, name: str, coordinator: str, redis_server: RedisServer, experiment: str, data_dir: Path,
                 host: str = "127.0.0.1", port: int = 0, public_url: str | None = None) -> None:
        self.name = name
        data_dir.mkdir(parents=True, exist_ok=True)
        self.data_dir = data_dir
        self.log_path = data_dir / f"relay-{name}.log"
        self._log = open(self.log_path, "w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "relay", "--coordinator", coordinator, "--redis", redis_server.url,
             "--host", host, "--port", str(port), "--data", str(data_dir), "--id", name,
             *(["--public-url", public_url] if public_url else [])],
            cwd=ROOT, stdout=self._log, stderr=subprocess.STDOUT, env={**os.environ, **SECRET})
        key = f"coplay:{experiment}:relay:{name}"
        deadline = time.monotonic() + 60
        while not redis_server.client.exists(key):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.kill()
                pytest.fail(f"relay {name} did not register:\n{self.log_path.read_text()}")
            time.sleep(0.1)

    def kill(self) -> None:
        """kill -9: no goodbye, its heartbeat just stops."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        stop_process(self.process)
        self._log.close()

    def log(self) -> str:
        return self.log_path.read_text()
