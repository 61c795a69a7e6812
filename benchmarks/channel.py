"""Server CPU per relayed packet: Socket.IO `packet` events vs the match channel, side by side.

    python benchmarks/channel.py [--pairs 20] [--seconds 20] [--async-mode eventlet] [--paths socketio,channel]

For each path it starts a fresh `coplay serve` of benchmarks/experiments/pong_capacity.py (one long
Pong match per pair) and lets `--pairs` pairs of wire-level clients play: each enters, connects
Socket.IO (raw Engine.IO frames over a WebSocket), sends `ready`, and on `match_start` sends a valid
netcode input packet every 1/60 s (`netcode.codec`, one frame of the default action each) to its
partner, either as Socket.IO `packet` events or on the match channel (docs/protocol.md). After a
warm-up it measures `--seconds` of play and prints, per path: packets the server relayed, the whole
server process's CPU (utime + stime from /proc/PID/stat) per relayed packet, the server's relay p99
(its coplay_relay_seconds histogram: time in MatchRoom.relay), the one-way latency sender -> server
-> receiver seen by the clients (one clock: they share this process), and the generator's own CPU
and lateness. Then the ratio channel / Socket.IO.

All clients run in this one process on one asyncio loop (aiohttp), so the generator costs much less
than the server it drives; it says so when its ticks fell behind. Figures are noisy while other
work runs on the machine: run it on a quiet one.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.live.metrics import histogram_buckets, histogram_quantile, parse_metrics  # noqa: E402
from game.env import default_action_for  # noqa: E402
from game.games.pong import Pong  # noqa: E402
from netcode import codec  # noqa: E402
from tests.server_fixtures import Server, pid  # noqa: E402

EXPERIMENT = ROOT / "benchmarks" / "experiments" / "pong_capacity.py"
FPS = 60
WARM_UP_S = 2.0
PATHS = ("socketio", "channel")


@dataclass
class Client:
    """One participant at the wire level."""

    cookie: str
    sio: aiohttp.ClientWebSocketResponse | None = None
    channel: aiohttp.ClientWebSocketResponse | None = None
    start: dict[str, Any] | None = None
    started: asyncio.Event = field(default_factory=asyncio.Event)
    frame: int = 0
    partner: str = ""
    partner_client: Client | None = None
    sent_at: dict[int, float] = field(default_factory=dict)   # frame -> perf_counter when sent
    received: int = 0


@dataclass
class Figures:
    path: str
    relayed: float
    seconds: float
    cpu_s: float
    relay_p99_ms: float
    one_way_ms: list[float]
    generator_cpu_s: float
    late_ticks: int
    ticks: int

    @property
    def cpu_us_per_packet(self) -> float:
        return self.cpu_s / self.relayed * 1e6 if self.relayed else float("nan")


def process_cpu_seconds(pid_: int) -> float:
    """utime + stime of process `pid_` (all its threads), seconds."""
    with open(f"/proc/{pid_}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def scrape(http: aiohttp.ClientSession, url: str) -> dict[Any, float]:
    async with http.get(url + "/metrics") as response:
        return parse_metrics(await response.text())


def packet(client: Client, action: Any) -> dict[str, Any]:
    """The client's next netcode input packet (one frame, no checksums), as the session sends it."""
    start = client.start
    assert start is not None
    player = start["players"][0]
    frame = client.frame
    data = codec.input_packet(gen=start["gen"], peer_gen=-1, frame=frame, adv=0, t=frame * 1000 / FPS, echo=0,
                              hold=0, inputs={player: (frame, [action])}, ack={}, checks=[], gone={})
    return {"match": start["match"], "episode": start["episode"], "to": client.partner, "data": data}


async def enter(http: aiohttp.ClientSession, url: str) -> Client:
    async with http.get(url + "/", params={"PROLIFIC_PID": pid()}, allow_redirects=False) as response:
        assert response.status == 200, response.status
        cookie = "; ".join(f"{c.key}={c.value}" for c in response.cookies.values())
    return Client(cookie)


async def read_socketio(client: Client, ws: aiohttp.ClientWebSocketResponse, lags: list[float]) -> None:
    """Engine.IO pings, the scene flow, and (Socket.IO path) relayed packets."""
    async for message in ws:
        text = message.data
        if text == "2":
            await ws.send_str("3")
        elif text.startswith('42["packet"'):
            note_packet(client, json.loads(text[2:])[1]["data"], lags)
        elif text.startswith('42["scene"'):
            await ws.send_str('42["ready",{"index":0}]')
        elif text.startswith('42["match_start"'):
            start = json.loads(text[2:])[1]
            client.start = start
            client.partner = next(iter(start["peers"]))
            client.started.set()


async def read_channel(client: Client, ws: aiohttp.ClientWebSocketResponse, lags: list[float]) -> None:
    async for message in ws:
        if message.type == aiohttp.WSMsgType.TEXT and not message.data.startswith("!"):
            note_packet(client, message.data.split(" ", 2)[2], lags)


def note_packet(client: Client, data: str, lags: list[float]) -> None:
    """One packet from the partner: its one-way latency, by the frame it carries."""
    client.received += 1
    frame = codec.decode(data).frame
    partner = client.partner_client
    sent = partner.sent_at.pop(frame, None) if partner is not None else None
    if sent is not None:
        lags.append(time.perf_counter() - sent)


async def connect(client: Client, http: aiohttp.ClientSession, url: str, lags: list[float]) -> asyncio.Task[None]:
    address = url.replace("http://", "ws://") + "/socket.io/?EIO=4&transport=websocket"
    ws = await http.ws_connect(address, headers={"Cookie": client.cookie}, autoping=False)
    opened = await ws.receive_str()
    assert opened.startswith("0"), opened
    await ws.send_str("40")
    client.sio = ws
    return asyncio.ensure_future(read_socketio(client, ws, lags))


async def open_channel(client: Client, http: aiohttp.ClientSession, url: str, lags: list[float]) -> asyncio.Task[None]:
    assert client.start is not None
    spec = client.start["channel"]
    ws = await http.ws_connect(url.replace("http://", "ws://") + spec["url"], autoping=True)
    await ws.send_str(spec["ticket"])
    answer = await ws.receive_str()
    assert answer == "ok", answer
    client.channel = ws
    return asyncio.ensure_future(read_channel(client, ws, lags))


async def play(url: str, server_pid: int, path: str, pairs: int, seconds: float) -> Figures:
    lags: list[float] = []
    async with aiohttp.ClientSession() as http:
        clients = list(await asyncio.gather(*(enter(http, url) for _ in range(2 * pairs))))
        readers = list(await asyncio.gather(*(connect(c, http, url, lags) for c in clients)))
        await asyncio.wait_for(asyncio.gather(*(c.started.wait() for c in clients)), 60)
        by_match: dict[str, list[Client]] = {}
        for c in clients:
            assert c.start is not None
            by_match.setdefault(c.start["match"], []).append(c)
        for a, b in by_match.values():
            a.partner_client, b.partner_client = b, a
        if path == "channel":
            # all at once: opened one by one, the last matches' seats would fall silent (an AI takes them)
            readers += await asyncio.gather(*(open_channel(c, http, url, lags) for c in clients))
        action = default_action_for(Pong({}), "left")
        loop = asyncio.get_running_loop()
        period = 1 / FPS
        began = loop.time()
        measure_from, measure_to = began + WARM_UP_S, began + WARM_UP_S + seconds
        before: dict[Any, float] = {}
        cpu_before = gen_before = 0.0
        tick = late = ticks = 0
        while True:
            due = began + tick * period
            now = loop.time()
            if now >= measure_to:
                break
            if now - due > period:
                late += 1 if now >= measure_from else 0
            if not before and now >= measure_from:
                before = await scrape(http, url)
                cpu_before, gen_before = process_cpu_seconds(server_pid), own_cpu()
                lags.clear()
            for c in clients:
                p = packet(c, action)
                c.sent_at[c.frame] = time.perf_counter()
                c.frame += 1
                if path == "channel":
                    assert c.channel is not None
                    await c.channel.send_str(f"{p['episode']} {p['to']} {p['data']}")
                else:
                    assert c.sio is not None
                    await c.sio.send_str("42" + json.dumps(["packet", p], separators=(",", ":")))
                if len(c.sent_at) > 600:
                    c.sent_at.pop(next(iter(c.sent_at)))
            ticks += 1 if now >= measure_from else 0
            tick += 1
            await asyncio.sleep(max(0.0, began + tick * period - loop.time()))
        cpu_after, gen_after = process_cpu_seconds(server_pid), own_cpu()
        after = await scrape(http, url)
        for reader in readers:
            reader.cancel()
        for c in clients:
            for ws in (c.channel, c.sio):
                if ws is not None:
                    await ws.close()
    delta = {key: after.get(key, 0.0) - before.get(key, 0.0) for key in after}
    relayed = delta.get(("coplay_relayed_packets_total", ()), 0.0)
    p99 = histogram_quantile(0.99, histogram_buckets(delta, "coplay_relay_seconds"))
    return Figures(path, relayed, seconds, cpu_after - cpu_before, p99 * 1000, [x * 1000 for x in lags],
                   gen_after - gen_before, late, ticks)


def own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run_path(path: str, mode: str, pairs: int, seconds: float, folder: Path) -> Figures:
    frames = int((seconds + WARM_UP_S + 60) * FPS)   # the matches outlast the measurement
    server = Server(["serve", str(EXPERIMENT), "--async-mode", mode], folder / path / "data",
                    env={"COPLAY_CAPACITY_FRAMES": str(frames)})
    try:
        return asyncio.run(play(server.url, server.process.pid, path, pairs, seconds))
    finally:
        server.stop()


def quantile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--async-mode", default="eventlet", choices=("eventlet", "gevent", "threading"))
    parser.add_argument("--paths", default=",".join(PATHS))
    args = parser.parse_args()
    paths = [p for p in args.paths.split(",") if p]
    unknown = set(paths) - set(PATHS)
    if unknown:
        parser.error(f"--paths takes {', '.join(PATHS)}; got {sorted(unknown)}")
    print(f"{args.pairs} pairs at {FPS} fps for {args.seconds:g} s, {args.async_mode}; "
          f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} before the run")
    results: dict[str, Figures] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for path in paths:
            results[path] = run_path(path, args.async_mode, args.pairs, args.seconds, Path(tmp))
    header = (f"{'path':<9} {'relayed/s':>9} {'server CPU %':>12} {'µs/packet':>10} {'relay p99 ms':>12} "
              f"{'one-way p50/p99 ms':>19} {'generator CPU %':>15} {'late ticks':>10}")
    print(header)
    for f in results.values():
        print(f"{f.path:<9} {f.relayed / f.seconds:>9.0f} {100 * f.cpu_s / f.seconds:>12.1f} "
              f"{f.cpu_us_per_packet:>10.1f} {f.relay_p99_ms:>12.3f} "
              f"{quantile(f.one_way_ms, 0.5):>9.2f}/{quantile(f.one_way_ms, 0.99):<9.2f} "
              f"{100 * f.generator_cpu_s / f.seconds:>15.1f} {f.late_ticks:>4}/{f.ticks:<5}")
        if f.late_ticks > f.ticks * 0.05:
            print(f"  ({f.path}: the load generator, not the server, fell behind on "
                  f"{100 * f.late_ticks / max(f.ticks, 1):.0f} % of its ticks)")
    if {"socketio", "channel"} <= results.keys():
        old, new = results["socketio"], results["channel"]
        print(f"channel / Socket.IO: CPU per packet x{new.cpu_us_per_packet / old.cpu_us_per_packet:.2f}, "
              f"relay p99 x{new.relay_p99_ms / old.relay_p99_ms:.2f}, one-way p99 "
              f"x{quantile(new.one_way_ms, 0.99) / quantile(old.one_way_ms, 0.99):.2f}")
    print(f"load average after: {os.getloadavg()[0]:.2f} (figures are noisy when it is high)")
    print(json.dumps({p: {"cpu_us_per_packet": round(f.cpu_us_per_packet, 1), "relay_p99_ms": round(f.relay_p99_ms, 3),
                          "relayed_per_s": round(f.relayed / f.seconds), "one_way_p99_ms":
                          round(quantile(f.one_way_ms, 0.99), 2), "median_lag_ms":
                          round(statistics.median(f.one_way_ms), 2) if f.one_way_ms else None}
                      for p, f in results.items()}))


if __name__ == "__main__":
    main()
