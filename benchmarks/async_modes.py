"""The same load under each server async mode: eventlet, gevent, threading (simple-websocket).

    python benchmarks/async_modes.py [--participants P] [--modes eventlet,gevent,threading]
                                     [--frames F] [--profile DIR]

For each mode it starts `coplay serve` on a Pong experiment (60 fps, one episode of F
frames, pairs matched at once), runs `run_loadtest` with P headless participants in
this process and prints one row per mode from its summary: completed participants,
socket disconnects, the server's relay p99 (its coplay_relay_seconds histogram, which
the load tester scrapes from GET /metrics), the participants' relay round trip p99, and
server CPU time per relayed packet.

`--profile DIR` runs each server under cProfile (eventlet and gevent only: their
greenlets share one thread) and prints its top functions; DIR/<mode>.pstats keeps them.
`--baseline` adds a row per mode with the relay path as it was before it was optimised.
The load generator shares the machine with the server: compare modes on a quiet
machine with enough cores, and read the figures as relative.
"""
from __future__ import annotations

import argparse
import math
import pstats
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.commands.loadtest import run_loadtest  # noqa: E402
from tests.server_fixtures import free_port  # noqa: E402

EXPERIMENT = '''
from scenes import End, Experiment, Match, WaitingRoom

EXPERIMENT = Experiment(id="async-bench", scenes=[
    Match(id="pong", game="game.games.pong:Pong", config={{"max_score": 1000, "max_frames": {frames}}},
          humans=("left", "right"), episodes=1, fps=60,
          waiting_room=WaitingRoom(timeout_s=60, on_timeout="leave"), on_partner_drop="end"),
    End(id="end", html="<p>Thanks</p>", completion_code="BENCH"),
])
'''

PROFILED_SERVER = '''
import cProfile, os, signal, sys
import app.web.asyncmode
out, baseline, argv = sys.argv[1], sys.argv[2] == "baseline", sys.argv[3:]
if baseline:  # the relay path as it was: eventlet's own WebSocket unmasking, packets through Flask-SocketIO
    app.web.asyncmode.speed_up_eventlet_websocket = lambda: None
app.web.asyncmode.patch_for_server(argv)
if baseline:
    import app.web.server
    _create = app.web.server.create_server
    def create_server(*args, **kwargs):
        made = _create(*args, **kwargs)
        made[1].server.handlers["/"].pop("packet")
        return made
    app.web.server.create_server = create_server
profiler = cProfile.Profile()
def stop(*_):
    profiler.disable()
    if out != "-":
        profiler.dump_stats(out)
    os._exit(0)
signal.signal(signal.SIGTERM, stop)
from app.cli import main
profiler.enable()
main(argv)
'''


def start_server(mode: str, folder: Path, frames: int, profile: Path | None,
                 baseline: bool = False) -> tuple[subprocess.Popen, str]:
    experiment = folder / "experiment.py"
    experiment.write_text(EXPERIMENT.format(frames=frames))
    port = free_port()
    args = ["serve", str(experiment), "--async-mode", mode, "--port", str(port), "--data", str(folder / "data")]
    command = ([sys.executable, "-c", PROFILED_SERVER, str(profile or "-"), "baseline" if baseline else "now", *args]
               if profile or baseline else [sys.executable, "-m", "app.cli", *args])
    log = open(folder / f"server-{mode}.log", "w")
    process = subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the {mode} server exited: {(folder / f'server-{mode}.log').read_text()}")
        try:
            if requests.get(url + "/health", timeout=1).ok:
                return process, url
        except requests.RequestException:
            pass
        time.sleep(0.2)
    process.kill()
    raise RuntimeError(f"the {mode} server did not start in 60 s")


def stop_server(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def run_mode(mode: str, participants: int, frames: int, folder: Path, profile_dir: Path | None,
             baseline: bool = False) -> dict[str, Any]:
    name = f"{mode}-before" if baseline else mode
    profile = profile_dir / f"{name}.pstats" if profile_dir and mode != "threading" else None
    (folder / name).mkdir()
    process, url = start_server(mode, folder / name, frames, profile, baseline)
    try:
        started = time.monotonic()
        summary = run_loadtest(url, participants, timeout=frames / 60 * 3 + 120, progress=None)
        wall = time.monotonic() - started
    finally:
        stop_server(process)
    server = summary["server"] or {}   # the load tester's own /metrics figures over the run
    packets = server.get("relayed_packets") or 0.0
    relay_p99 = server.get("relay_seconds_p99")
    row = {
        "mode": name, "participants": participants, "completed": summary["completed"],
        "disconnects": server.get("socket_disconnects") or 0.0, "relayed": packets,
        "relay_p99_ms": math.nan if relay_p99 is None else relay_p99 * 1000,
        "client_rtt_p99_ms": summary["relay_rtt_ms"]["p99"],
        "cpu_us_per_packet": server.get("cpu_us_per_relayed_packet") or math.nan,
        "wall_s": wall,
    }
    if profile is not None and profile.exists():
        print(f"--- {name}: top functions by own time (cProfile, {packets:.0f} packets relayed)")
        pstats.Stats(str(profile)).sort_stats("tottime").print_stats(25)
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--participants", "-n", type=int, default=10)
    parser.add_argument("--modes", default="eventlet,gevent,threading")
    parser.add_argument("--frames", type=int, default=900, help="frames per match (default 900: 15 s at 60 fps)")
    parser.add_argument("--profile", metavar="DIR", help="profile each server with cProfile into DIR")
    parser.add_argument("--baseline", action="store_true",
                        help="also run each mode with the relay path as it was before it was optimised "
                             "(eventlet's own WebSocket unmasking, packets through Flask-SocketIO's handler)")
    args = parser.parse_args(argv)
    profile_dir = Path(args.profile).resolve() if args.profile else None
    if profile_dir:
        profile_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for mode in args.modes.split(","):
            if args.baseline:
                rows.append(run_mode(mode, args.participants, args.frames, Path(folder), profile_dir, baseline=True))
            rows.append(run_mode(mode, args.participants, args.frames, Path(folder), profile_dir))
    print(f"{'mode':<16} {'done':>6} {'disconn':>8} {'relayed':>9} {'relay p99':>10} {'client rtt p99':>15} "
          f"{'CPU/packet':>11} {'wall':>7}")
    for row in rows:
        rtt = f"{row['client_rtt_p99_ms']:.1f} ms" if row["client_rtt_p99_ms"] is not None else "n/a"
        print(f"{row['mode']:<16} {row['completed']!s:>6} {row['disconnects']:>8.0f} {row['relayed']:>9.0f} "
              f"{row['relay_p99_ms']:>7.2f} ms {rtt:>15} {row['cpu_us_per_packet']:>8.0f} µs {row['wall_s']:>6.1f}s")
    print("(one machine runs both the server and the load; figures are relative, redo them on a quiet machine)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
