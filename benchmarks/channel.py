"""Server CPU per relayed packet: Socket.IO `packet` events vs the match channel, side by side.

    python benchmarks/channel.py [--pairs 20] [--seconds 20] [--async-mode eventlet] [--paths socketio,channel]
                                 [--baseline DIR] [--repeat R] [--profile]

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

`--baseline DIR` runs every path against the server code of DIR too (an older checkout, e.g.
`git worktree add --detach /tmp/base COMMIT`), in turns with this checkout's, and prints old and new
side by side; `--repeat R` takes R turns of each and reports the medians. `--profile` samples the
server with py-spy during each measurement and prints where its CPU went, in µs per relayed packet
by component (the sampled share of each component times the measured user CPU per packet; the
kernel's CPU, system calls, a row of its own).

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
import shutil
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
from benchmarks.server_profile import Profile, sample  # noqa: E402
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
    code: str          # "new" (this checkout) or "old" (--baseline)
    relayed: float
    seconds: float
    cpu_s: float
    sys_s: float       # of cpu_s, in the kernel (socket reads and writes, epoll, file writes)
    relay_p99_ms: float
    one_way_ms: list[float]
    generator_cpu_s: float
    late_ticks: int
    ticks: int
    profile: Profile | None = None

    @property
    def cpu_us_per_packet(self) -> float:
        return self.cpu_s / self.relayed * 1e6 if self.relayed else float("nan")


def process_cpu_seconds(pid_: int) -> tuple[float, float]:
    """(utime + stime, stime) of process `pid_` (all its threads), seconds."""
    with open(f"/proc/{pid_}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / tick, int(fields[12]) / tick


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


async def play(url: str, server_pid: int, path: str, pairs: int, seconds: float, profile: bool) -> Figures:
    lags: list[float] = []
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:   # 4 sockets a pair
        clients = list(await asyncio.gather(*(enter(http, url) for _ in range(2 * pairs))))
        readers = list(await asyncio.gather(*(connect(c, http, url, lags) for c in clients)))
        waiting: dict[str, Client] = {}
        live: list[Client] = []   # the clients whose pair plays: each pair starts as soon as it can, so that
                                  # no seat falls silent (an AI takes it) while the last matches start

        async def join(c: Client) -> None:
            await c.started.wait()
            assert c.start is not None
            partner = waiting.pop(c.start["match"], None)
            if partner is None:
                waiting[c.start["match"]] = c
                return
            c.partner_client, partner.partner_client = partner, c
            if path == "channel":
                readers.extend(await asyncio.gather(open_channel(c, http, url, lags),
                                                    open_channel(partner, http, url, lags)))
            live.extend((c, partner))

        joining = asyncio.ensure_future(asyncio.wait_for(asyncio.gather(*(join(c) for c in clients)), 60))
        action = default_action_for(Pong({}), "left")
        loop = asyncio.get_running_loop()
        period = 1 / FPS
        began = loop.time()
        measure_from = measure_to = float("inf")
        before: dict[Any, float] = {}
        cpu_before = sys_before = gen_before = 0.0
        tick = late = ticks = 0
        spy = None
        while True:
            due = began + tick * period
            now = loop.time()
            if joining.done():
                if joining.exception() is not None:
                    raise RuntimeError(f"{sum(c.started.is_set() for c in clients)} of {len(clients)} clients saw "
                                       f"their match start in 60 s, {len(live)} play (the server held the rest: "
                                       "admission control, or it was too slow)") from joining.exception()
                if measure_from == float("inf"):
                    measure_from, measure_to = now + WARM_UP_S, now + WARM_UP_S + seconds
            if now >= measure_to:
                break
            if now - due > period:
                late += 1 if now >= measure_from else 0
            if not before and now >= measure_from:
                before = await scrape(http, url)
                (cpu_before, sys_before), gen_before = process_cpu_seconds(server_pid), own_cpu()
                lags.clear()
                spy = sample(server_pid, seconds) if profile else None
            for c in live:
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
        (cpu_after, sys_after), gen_after = process_cpu_seconds(server_pid), own_cpu()
        after = await scrape(http, url)
        samples = spy.collect() if spy is not None else None
        for reader in readers:
            reader.cancel()
        for c in clients:
            for ws in (c.channel, c.sio):
                if ws is not None:
                    await ws.close()
    delta = {key: after.get(key, 0.0) - before.get(key, 0.0) for key in after}
    relayed = delta.get(("coplay_relayed_packets_total", ()), 0.0)
    p99 = histogram_quantile(0.99, histogram_buckets(delta, "coplay_relay_seconds"))
    return Figures(path, "", relayed, seconds, cpu_after - cpu_before, sys_after - sys_before, p99 * 1000, [x * 1000 for x in lags],
                   gen_after - gen_before, late, ticks, samples)


def own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run_path(path: str, mode: str, pairs: int, seconds: float, folder: Path, code: Path, profile: bool) -> Figures:
    """One measurement of `path` against a fresh server running the code of checkout `code`."""
    frames = int((seconds + WARM_UP_S + 60) * FPS)   # the matches outlast the measurement
    data = Path(tempfile.mkdtemp(dir=folder))
    server = Server(["serve", str(EXPERIMENT), "--async-mode", mode], data,
                    env={"COPLAY_CAPACITY_FRAMES": str(frames), "PYTHONPATH": str(code)}, root=code)
    try:
        return asyncio.run(play(server.url, server.process.pid, path, pairs, seconds, profile))
    finally:
        server.stop()
        shutil.rmtree(data, ignore_errors=True)


def median_of(turns: list[Figures]) -> Figures:
    """The turn whose CPU per packet is the median (its other figures come with it); profiles add up."""
    ordered = sorted(turns, key=lambda f: f.cpu_us_per_packet)
    middle = ordered[(len(ordered) - 1) // 2]
    profiles = [f.profile for f in turns if f.profile is not None]
    if profiles:
        middle.profile = Profile.merged(profiles)
    return middle


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
    parser.add_argument("--baseline", type=Path, metavar="DIR",
                        help="an older checkout of coplay whose server runs in turns with this one's")
    parser.add_argument("--repeat", type=int, default=1, help="turns per path (and code); medians are printed")
    parser.add_argument("--profile", action="store_true", help="sample the server with py-spy (installed)")
    args = parser.parse_args()
    paths = [p for p in args.paths.split(",") if p]
    unknown = set(paths) - set(PATHS)
    if unknown:
        parser.error(f"--paths takes {', '.join(PATHS)}; got {sorted(unknown)}")
    if args.baseline is not None and not (args.baseline / "app" / "cli.py").is_file():
        parser.error(f"--baseline {args.baseline} is not a checkout of coplay (no app/cli.py there)")
    if args.repeat < 1:
        parser.error("--repeat is at least 1")
    codes = {"new": ROOT, **({"old": args.baseline.resolve()} if args.baseline is not None else {})}
    print(f"{args.pairs} pairs at {FPS} fps for {args.seconds:g} s, {args.async_mode}, {args.repeat} turn(s) each; "
          f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} before the run")
    turns: dict[tuple[str, str], list[Figures]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.repeat):
            for path in paths:
                for code, folder in codes.items():
                    figures = run_path(path, args.async_mode, args.pairs, args.seconds, Path(tmp), folder, args.profile)
                    figures.code = code
                    turns.setdefault((path, code), []).append(figures)
    results = {key: median_of(figures) for key, figures in turns.items()}
    header = (f"{'path':<9} {'code':<4} {'relayed/s':>9} {'server CPU %':>12} {'µs/packet':>10} {'(kernel)':>8} "
              f"{'relay p99 ms':>12} "
              f"{'one-way p50/p99 ms':>19} {'generator CPU %':>15} {'late ticks':>10}")
    print(header)
    for f in results.values():
        print(f"{f.path:<9} {f.code:<4} {f.relayed / f.seconds:>9.0f} {100 * f.cpu_s / f.seconds:>12.1f} "
              f"{f.cpu_us_per_packet:>10.1f} {f.sys_s / f.relayed * 1e6 if f.relayed else 0:>8.1f} "
              f"{f.relay_p99_ms:>12.3f} "
              f"{quantile(f.one_way_ms, 0.5):>9.2f}/{quantile(f.one_way_ms, 0.99):<9.2f} "
              f"{100 * f.generator_cpu_s / f.seconds:>15.1f} {f.late_ticks:>4}/{f.ticks:<5}")
        if f.late_ticks > f.ticks * 0.05:
            print(f"  ({f.path}: the load generator, not the server, fell behind on "
                  f"{100 * f.late_ticks / max(f.ticks, 1):.0f} % of its ticks)")
    if args.repeat > 1:
        for (path, code), figures in turns.items():
            print(f"  {path} {code}: µs/packet of each turn "
                  f"{', '.join(f'{f.cpu_us_per_packet:.1f}' for f in figures)}")
    for path in paths:
        if (path, "old") in results:
            old, new = results[(path, "old")], results[(path, "new")]
            print(f"{path}: new / old CPU per packet x{new.cpu_us_per_packet / old.cpu_us_per_packet:.2f} "
                  f"({old.cpu_us_per_packet:.1f} -> {new.cpu_us_per_packet:.1f} µs)")
    if ("socketio", "new") in results and ("channel", "new") in results:
        old, new = results[("socketio", "new")], results[("channel", "new")]
        print(f"channel / Socket.IO: CPU per packet x{new.cpu_us_per_packet / old.cpu_us_per_packet:.2f}, "
              f"relay p99 x{new.relay_p99_ms / old.relay_p99_ms:.2f}, one-way p99 "
              f"x{quantile(new.one_way_ms, 0.99) / quantile(old.one_way_ms, 0.99):.2f}")
    if args.profile:
        for path in paths:
            columns = {code: results[(path, code)] for code in codes}
            print(f"\n{path}: server CPU by component, µs per relayed packet (user CPU shared out by py-spy's "
                  f"samples holding the GIL; kernel CPU from /proc)")
            print(Profile.table({code: (f.profile, (f.cpu_s - f.sys_s) / f.relayed * 1e6, f.sys_s / f.relayed * 1e6)
                                 for code, f in columns.items() if f.profile is not None and f.relayed}))
    print(f"load average after: {os.getloadavg()[0]:.2f} (figures are noisy when it is high)")
    print(json.dumps({f"{p}/{c}": {"cpu_us_per_packet": round(f.cpu_us_per_packet, 1),
                                    "relay_p99_ms": round(f.relay_p99_ms, 3), "relayed_per_s": round(f.relayed / f.seconds),
                                    "one_way_p99_ms": round(quantile(f.one_way_ms, 0.99), 2), "median_lag_ms":
                                    round(statistics.median(f.one_way_ms), 2) if f.one_way_ms else None}
                      for (p, c), f in results.items()}))


if __name__ == "__main__":
    main()
