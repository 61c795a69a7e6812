"""`coplay serve --relays N`: a private redis-server and N relay processes beside the coordinator."""
from __future__ import annotations

import atexit
import ctypes
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time

from app.relay.bus import SECRET_ENV, RelayError

REDIS_WAIT_S = 10.0
PR_SET_PDEATHSIG = 1


def _end_with_parent() -> None:
    """In the child, before exec: get SIGTERM when the coordinator dies, however it dies (Linux)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass   # not Linux: atexit still stops them on a normal exit


def ensure_secret() -> None:
    """A fresh ticket secret for this coordinator and its children, unless COPLAY_RELAY_SECRET is set."""
    if not os.environ.get(SECRET_ENV):
        os.environ[SECRET_ENV] = secrets.token_hex(32)


def start_redis(folder: str) -> str:
    """Start Debian's redis-server on a private unix socket in `folder` (no TCP port); its URL."""
    server = shutil.which("redis-server")
    if server is None:
        raise RelayError("--relays needs redis-server (Debian: apt-get install redis-server; scripts/setup "
                         "installs it), or give --redis URL of a running one")
    os.makedirs(folder, mode=0o700, exist_ok=True)
    sock = os.path.join(folder, "redis.sock")
    process = subprocess.Popen([server, "--port", "0", "--unixsocket", sock, "--unixsocketperm", "700",
                                "--save", "", "--appendonly", "no", "--dir", folder],
                               stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, preexec_fn=_end_with_parent)
    _stop_at_exit(process)
    deadline = time.monotonic() + REDIS_WAIT_S
    while not os.path.exists(sock):
        if process.poll() is not None or time.monotonic() > deadline:
            raise RelayError(f"redis-server did not start (socket {sock})")
        time.sleep(0.05)
    return f"unix://{sock}"


def start_relays(count: int, coordinator: str, redis_url: str, host: str, data_dir: str) -> list[subprocess.Popen[bytes]]:
    """`count` relay processes on `host`, free ports, writing into the coordinator's data folder."""
    processes = []
    for _ in range(count):
        process = subprocess.Popen([sys.executable, "-m", "app.cli", "relay", "--coordinator", coordinator,
                                    "--redis", redis_url, "--host", host, "--port", "0", "--data", data_dir],
                                   preexec_fn=_end_with_parent)
        _stop_at_exit(process)
        processes.append(process)
    return processes


def _stop_at_exit(process: subprocess.Popen[bytes]) -> None:
    def stop() -> None:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()

    atexit.register(stop)
