"""What the wire-level load generator costs per packet, and how many matches one generator process offers.

    python benchmarks/wire_generator.py [--baseline DIR] [--matches 25,50,100,150,200] [--seconds 20]
                                        [--server-matches 20] [--repeat 3] [--relay-repeat 1]
                                        [--skip seat,relay,server]

Three measurements of the generator of this checkout and, with `--baseline DIR` (a git worktree of an
older commit, e.g. `git worktree add --detach /tmp/base cadf30d`), of the generator there, printed side
by side with ratios:

1. seat: two WireSeats of a 60 fps Pong match (app/loadtest/wire_match.py) hand their packets to
   each other in memory: CPU per packet built and sent, per packet received, per lockstep frame.
2. relay: ONE generator process plays M matches (2M seats, each with its match channel, ticked by the
   process's Ticker, counted by its SelfCheck, on the event loop its generator uses, exactly as
   `coplay loadtest --mode wire` does once the matches started) against a minimal echo relay in
   another process (it hands each "<episode> <to> <data>" frame to the seat named `to`, validating
   nothing, on uvloop when installed for old and new alike, so it costs far less than the server and
   the generator is what saturates). For each M: the generator's CPU per packet event (a packet sent
   or received), its share of a core, tick lateness p99 and the self-check's verdict; "max matches on
   schedule" is the largest M whose self-check found the generator keeping up (ticks and loop lag p99
   within 2 frames, under 90 % of a core) in every round (`--relay-repeat`).
3. server: `coplay loadtest URL --mode wire --processes 1` against a real `coplay serve
   benchmarks/experiments/pong_capacity.py` (run from this checkout for both generators) at
   `--server-matches` matches: the whole participant (scene flow, Socket.IO, match channel) as the
   load tester reports it ("us cpu per packet sent or received", which also counts entering and
   connecting).

Timing figures depend on what else runs on the machine: run it on a quiet one.
"""
from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import json
import os
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
FPS = 60
WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
MATCH_CONFIG = {"max_score": 1_000_000}


# ----------------------------------------------------------------------------- 1. seat (in memory)


def one_match(frames: int) -> dict[str, float]:
    """Two WireSeats of one match, packets handed over in memory; CPU per part."""
    from app.loadtest.wire_match import MatchSim, WireSeat
    from app.participant.answers import Policy
    from game.games.pong import Pong
    from netcode.config import SessionConfig

    config = {**MATCH_CONFIG, "max_frames": frames}
    env = Pong(config)
    session = SessionConfig.for_env(env, fps=FPS)
    sim = MatchSim(Pong(config), 7, env.players, session.desync_interval)
    seats = {}
    for i, (addr, player) in enumerate((("s0", "left"), ("s1", "right"))):
        start = {"match": "m", "episode": 0, "seat": addr, "gen": 0, "players": [player],
                 "peers": {"s1" if addr == "s0" else "s0": ["right" if player == "left" else "left"]}}
        seats[addr] = WireSeat(start, session, Policy("random", env, [player], seed=i), sim)
    sim_seconds = tick_seconds = receive_seconds = 0.0
    sent = received = 0
    run = sim.run
    sim.run = lambda: None   # type: ignore[method-assign]   # timed separately below
    for tick in range(frames + 30):
        now = tick * 1000 / FPS
        for addr, seat in seats.items():
            began = time.process_time()
            out = seat.tick(now)
            tick_seconds += time.process_time() - began
            sent += len(out)
            for to, data in out:
                began = time.process_time()
                seats[to].receive(addr, data, now + 1)
                receive_seconds += time.process_time() - began
                received += 1
        began = time.process_time()
        run()
        sim_seconds += time.process_time() - began
        for seat in seats.values():
            seat._check_end()
        if all(s.done for s in seats.values()):
            break
    assert sim.ended_at == frames and all(s.done for s in seats.values())
    return {"sim_us_per_frame": 1e6 * sim_seconds / frames, "us_per_packet_sent": 1e6 * tick_seconds / sent,
            "us_per_packet_received": 1e6 * receive_seconds / received}


# ----------------------------------------------------------------------------- 2. the echo relay


class _RelayConn(asyncio.Protocol):
    """One seat's channel at the echo relay: the upgrade, the ticket ("<match>:<addr>"), `ok`, then
    each frame goes to the seat it names, as "<episode> <sender> <data>"."""

    seats: dict[tuple[bytes, bytes], _RelayConn] = {}

    def __init__(self) -> None:
        self.buffer = b""
        self.upgraded = False
        self.name: tuple[bytes, bytes] | None = None   # (match, addr) from the ticket
        self.transport: Any = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if self.upgraded and not self.buffer and len(data) > 8 and data[0] == 0x81:
            # The common case: one whole text frame with the zero mask the generator's channel uses.
            length, head = data[1] & 0x7F, 6
            if length == 126:
                length, head = (data[2] << 8) | data[3], 8
            if len(data) == head + length and data[head - 4:head] == b"\0\0\0\0":
                self._text(data[head:])
                return
        self.buffer += data
        if not self.upgraded:
            head_bytes, sep, self.buffer = self.buffer.partition(b"\r\n\r\n")
            if not sep:
                self.buffer = head_bytes
                return
            key = next(line.split(b":", 1)[1].strip() for line in head_bytes.split(b"\r\n")
                       if line.lower().startswith(b"sec-websocket-key:"))
            accept = base64.b64encode(hashlib.sha1(key + WS_GUID).digest())
            self.transport.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                                 b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n")
            self.upgraded = True
        buffer, at = self.buffer, 0
        while len(buffer) - at >= 6:
            first, length, head = buffer[at], buffer[at + 1] & 0x7F, 2
            if length == 126:
                length, head = struct.unpack_from("!H", buffer, at + 2)[0], 4
            elif length == 127:
                length, head = struct.unpack_from("!Q", buffer, at + 2)[0], 10
            end = at + head + 4 + length
            if end > len(buffer):
                break
            mask, payload = buffer[at + head:at + head + 4], buffer[at + head + 4:end]
            if mask != b"\0\0\0\0":
                key = (mask * (length // 4 + 1))[:length]
                payload = (int.from_bytes(payload, "little") ^ int.from_bytes(key, "little")).to_bytes(length, "little")
            at = end
            if first & 0x0F == 0x8:
                self.transport.write(b"\x88\x02\x03\xe8")   # close 1000 back
                self.transport.close()
                return
            if first & 0x0F == 0x1:
                self._text(payload)
        self.buffer = buffer[at:]

    def _text(self, payload: bytes) -> None:
        if self.name is None:
            match, _, addr = payload.partition(b":")
            self.name = (match, addr)
            self.seats[self.name] = self
            self.send(b"ok")
            return
        episode, to, data = payload.split(b" ", 2)
        peer = self.seats.get((self.name[0], to))
        if peer is not None:
            peer.send(b"%s %s %s" % (episode, self.name[1], data))

    def send(self, payload: bytes) -> None:
        n = len(payload)
        head = bytes((0x81, n)) if n < 126 else struct.pack("!BBH", 0x81, 126, n)
        self.transport.write(head + payload)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.name is not None:
            self.seats.pop(self.name, None)


async def serve_relay(port_file: str) -> None:
    server = await asyncio.get_running_loop().create_server(_RelayConn, "127.0.0.1", 0)
    Path(port_file).write_text(str(server.sockets[0].getsockname()[1]))
    await asyncio.Event().wait()


def run_relay(port_file: str) -> None:
    """On uvloop when installed (for old and new generators alike), so the relay, which shares the
    machine's cores with the generator, takes as little CPU from it as it can."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(serve_relay(port_file))
    else:
        uvloop.run(serve_relay(port_file))


def run_drive(port: int, matches: int, seconds: float) -> dict[str, Any]:
    """`drive` on the event loop the measured checkout's generator runs on (`coplay loadtest --mode wire`)."""
    try:
        from app.loadtest.event_loop import loop_name, run
    except ImportError:   # a generator from before app.loadtest.event_loop: asyncio's loop
        return {**asyncio.run(drive(port, matches, seconds)), "loop": "asyncio"}
    return {**run(drive(port, matches, seconds)), "loop": loop_name()}


# ----------------------------------------------------------------------------- 2. the generator side


async def drive(port: int, matches: int, seconds: float) -> dict[str, Any]:
    """M matches on this process's Ticker against the echo relay; the SelfCheck's verdict and CPU."""
    import aiohttp

    from app.loadtest import wire
    from app.loadtest.selfcheck import SelfCheck, merge, verdict
    from app.loadtest.wire_match import MatchSim, WireSeat
    from app.participant.answers import Policy
    from game.games.pong import Pong
    from netcode.config import SessionConfig
    from netcode.scheduler import FixedStep
    try:
        from app.loadtest.wire_participant import Playing, WireParticipant
        from app.loadtest.wire_world import WireWorld
    except ImportError:   # a generator from before wire.py was split in three
        Playing, WireParticipant, WireWorld = wire._Playing, wire.WireParticipant, wire.WireWorld
    try:
        from app.loadtest.wire_socket import RawMatchChannel
        raw = True
    except ImportError:   # a generator from before the raw-socket channel: aiohttp's
        raw = False

    frames = int(seconds * FPS)
    config = {**MATCH_CONFIG, "max_frames": frames}
    env = Pong(config)
    session = SessionConfig.for_env(env, fps=FPS)
    check = SelfCheck(threads=False)
    world = WireWorld(check)
    background = await world.start()
    http = aiohttp.ClientSession()
    url = f"ws://127.0.0.1:{port}/match-ws"
    people: list[tuple[Any, Any, Any]] = []
    for m in range(matches):
        sim = MatchSim(Pong(config), m, env.players, session.desync_interval)
        for i, (addr, player, peer, peer_player) in enumerate((("s0", "left", "s1", "right"),
                                                               ("s1", "right", "s0", "left"))):
            match = f"m{m}"
            person = WireParticipant(f"http://127.0.0.1:{port}/", {}, 2 * m + i, world)
            person.http = http
            start = {"match": match, "episode": 0, "seat": addr, "gen": 0, "players": [player],
                     "peers": {peer: [peer_player]}}
            seat = WireSeat(start, session, Policy("random", env, [player], seed=2 * m + i), sim)

            def on_frame(e: int, s: str, d: str, person: Any = person, match: str = match) -> None:
                person._route(match, e, s, d)
            channel = (RawMatchChannel(url, f"{match}:{addr}", on_frame, print) if raw
                       else wire.MatchChannel(http, url, f"{match}:{addr}", on_frame, print))   # type: ignore[attr-defined]
            await channel.open()
            person.channel = channel
            people.append((person, seat, channel))
    check.restart()
    cpu0, began = time.process_time(), time.monotonic()
    for k, (person, seat, channel) in enumerate(people):
        phase = (k // 2) / matches / FPS   # the matches' ticks spread over a frame, as arrivals spread them
        person.playing = Playing(person, seat, FixedStep(1.0 / FPS, began + phase), FPS, channel)
        world.ticker.add(person.playing)
    deadline = began + 3 * seconds + 10
    while time.monotonic() < deadline and not all(p.playing.reported for p, _, _ in people):
        await asyncio.sleep(0.1)
    cpu, wall = time.process_time() - cpu0, time.monotonic() - began
    check.stop()
    for person, _, _ in people:
        person._close_episode("benchmark over")
    try:
        await asyncio.wait_for(asyncio.gather(*(channel.close() for _, _, channel in people)), 10)
    except TimeoutError:
        pass   # the figures are taken; a slow goodbye does not matter
    for task in background:
        task.cancel()
    await http.close()
    report = verdict(merge([check.to_json()]), FPS)
    events = report["packets_sent"] + report["packets_received"]
    return {"matches": matches, "done": sum(p.result.episodes != [] and p.result.episodes[0]["status"] == "done"
                                            for p, _, _ in people),
            "us_per_event": 1e6 * cpu / events if events else None, "cpu_percent": 100 * cpu / wall,
            "tick_p99_ms": report["tick_late_ms"]["p99"], "lag_p99_ms": report["loop_lag_ms"]["p99"],
            "desyncs": sum(len(p.result.desyncs) for p, _, _ in people),
            "on_schedule": not report["bottleneck"], "why": report["why"], "events": events}


# ----------------------------------------------------------------------------- runs in subprocesses


def _python(checkout: Path, *args: str, timeout: float) -> str:
    done = subprocess.run([sys.executable, *args], cwd=checkout, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "PYTHONPATH": str(checkout)})
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args[:3])} in {checkout} failed: {done.stderr[-600:]}")
    return done.stdout


def seat_figures(checkout: Path, seconds: float, repeat: int) -> dict[str, float]:
    out = _python(checkout, str(Path(__file__).resolve()), "--child-seat", str(seconds), str(repeat),
                  timeout=600)
    return json.loads(out.strip().splitlines()[-1])


def relay_run(checkout: Path, matches: int, seconds: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as folder:
        port_file = Path(folder) / "port"
        relay = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--child-relay", str(port_file)],
                                 env={**os.environ, "PYTHONPATH": str(ROOT)})
        try:
            for _ in range(200):
                if port_file.exists() and port_file.read_text():
                    break
                time.sleep(0.05)
            out = _python(checkout, str(Path(__file__).resolve()), "--child-drive", port_file.read_text(),
                          str(matches), str(seconds), timeout=6 * seconds + 120)
        finally:
            relay.terminate()
            relay.wait()
    return json.loads(out.strip().splitlines()[-1])


def server_run(checkout: Path, matches: int, seconds: float) -> dict[str, Any]:
    sys.path.insert(0, str(ROOT))
    from benchmarks.capacity import EXPERIMENT, ServerProcess

    with tempfile.TemporaryDirectory() as folder:
        server = ServerProcess(ROOT, ["serve", str(ROOT / EXPERIMENT), "--async-mode", "eventlet"],
                               Path(folder) / "data", {"COPLAY_CAPACITY_FRAMES": str(int(seconds * FPS))})
        try:
            out_file = Path(folder) / "summary.json"
            subprocess.run([sys.executable, "-m", "app.cli", "loadtest", server.url, "--mode", "wire",
                            "--participants", str(2 * matches), "--processes", "1", "--json", str(out_file)],
                           cwd=checkout, capture_output=True, text=True, timeout=10 * seconds + 180,
                           env={**os.environ, "PYTHONPATH": str(checkout)})
        finally:
            server.stop()
        summary = json.loads(out_file.read_text())
    g = summary.get("generator") or {}
    return {"completed": summary.get("completed"), "participants": summary.get("participants"),
            "us_per_event": g.get("cpu_us_per_packet"), "cpu_percent": (g.get("cpu_percent_per_process") or [None])[0],
            "tick_p99_ms": (g.get("tick_late_ms") or {}).get("p99"), "channel_packets": g.get("channel_packets"),
            "packets_sent": g.get("packets_sent"), "desyncs": summary.get("desyncs")}


# ----------------------------------------------------------------------------- the report


def fmt(value: Any, digits: int = 1) -> str:
    return "n/a" if not isinstance(value, (int, float)) else f"{value:.{digits}f}"


def ratio(old: Any, new: Any) -> str:
    return f"{old / new:.1f}x" if isinstance(old, (int, float)) and isinstance(new, (int, float)) and new else "n/a"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] and argv[0].startswith("--child-"):
        sys.path.insert(0, os.getcwd())   # the checkout measured (before this script's folder, whose netcode.py
                                          # would shadow the netcode package)
    if argv[:1] == ["--child-seat"]:
        runs = [one_match(int(float(argv[1]) * FPS)) for _ in range(int(argv[2]))]
        print(json.dumps({key: statistics.median(r[key] for r in runs) for key in runs[0]}))
        return 0
    if argv[:1] == ["--child-relay"]:
        run_relay(argv[1])
        return 0
    if argv[:1] == ["--child-drive"]:
        print(json.dumps(run_drive(int(argv[1]), int(argv[2]), float(argv[3]))))
        return 0
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--baseline", metavar="DIR", help="an older checkout whose generator runs beside this one")
    parser.add_argument("--matches", default="25,50,100,150,200", help="M for the relay runs (default 25,50,100,150,200)")
    parser.add_argument("--seconds", type=float, default=20.0, help="match length (default 20)")
    parser.add_argument("--server-matches", type=int, default=20, help="matches against the real server (default 20)")
    parser.add_argument("--repeat", type=int, default=3, help="in-memory seat runs; the least is printed (default 3)")
    parser.add_argument("--relay-repeat", type=int, default=1, help="rounds of the relay runs (default 1)")
    parser.add_argument("--skip", default="", help="comma-separated parts to leave out: seat, relay, server")
    args = parser.parse_args(argv)
    skip = set(filter(None, args.skip.split(",")))
    checkouts = {"new": ROOT, **({"old": Path(args.baseline).resolve()} if args.baseline else {})}
    labels = list(checkouts)[::-1]   # old first
    print(f"generators: {', '.join(f'{k} = {v}' for k, v in checkouts.items())}; {os.cpu_count()} cores; "
          "figures are noisy when other processes run")

    if "seat" not in skip:
        runs: dict[str, list[dict[str, float]]] = {label: [] for label in labels}
        for _ in range(args.repeat):   # alternately, so both see the same background load
            for label in labels:
                runs[label].append(seat_figures(checkouts[label], args.seconds, 1))
        # The least of the runs: other processes only ever add to a CPU figure.
        seats = {label: {key: min(r[key] for r in runs[label]) for key in runs[label][0]} for label in labels}
        print(f"\n1. seat in memory (us cpu, least of {args.repeat})" + "".join(f"{label:>10}" for label in labels)
              + "     old/new")
        for key, name in (("us_per_packet_sent", "per packet built and sent"),
                          ("us_per_packet_received", "per packet received"), ("sim_us_per_frame", "per lockstep frame")):
            row = "".join(f"{fmt(seats[label][key]):>10}" for label in labels)
            print(f"   {name:<38}{row}" + (f"  {ratio(seats['old'][key], seats['new'][key]):>10}" if "old" in seats else ""))

    if "relay" not in skip:
        print(f"\n2. one generator process against an echo relay ({args.seconds:g} s matches)")
        print(f"   {'gen':<4} {'loop':<8} {'matches':>7} {'done':>9} {'us/event':>9} {'cpu %':>6} {'tick p99':>9} {'lag p99':>8}  "
              "self-check")
        kept: dict[tuple[str, int], list[bool]] = {}   # (generator, M) -> on schedule, per run
        broken: set[str] = set()   # generators that timed out or failed: larger M would too
        per_event: dict[str, list[float]] = {label: [] for label in labels}
        sizes = [int(m) for m in args.matches.split(",")]
        for _ in range(args.relay_repeat):   # old and new alternately, so both see the same background load
            for matches in sizes:
                for label in labels:
                    if label in broken:
                        continue
                    try:
                        r = relay_run(checkouts[label], matches, args.seconds)
                    except subprocess.TimeoutExpired as error:
                        print(f"   {label:<4} {matches:>7} did not finish within {error.timeout:.0f} s (the generator "
                              "fell so far behind that its matches never ended)")
                        broken.add(label)
                        continue
                    except RuntimeError as error:
                        print(f"   {label:<4} {matches:>7} failed: {error}")
                        broken.add(label)
                        continue
                    if r["us_per_event"] is not None:
                        per_event[label].append(r["us_per_event"])
                    verdict = "on schedule" if r["on_schedule"] else "FELL BEHIND: " + "; ".join(r["why"])
                    print(f"   {label:<4} {r.get('loop', '?'):<8} {matches:>7} {r['done']:>4}/{2 * matches:<4} "
                          f"{fmt(r['us_per_event']):>9} {fmt(r['cpu_percent'], 0):>6} {fmt(r['tick_p99_ms']):>9} "
                          f"{fmt(r['lag_p99_ms']):>8}  {verdict}" + (f"; {r['desyncs']} desyncs" if r["desyncs"] else ""))
                    kept.setdefault((label, matches), []).append(
                        r["on_schedule"] and r["done"] == 2 * matches and not r["desyncs"])
        for label in labels:
            median = statistics.median(per_event[label]) if per_event[label] else None
            runs = ", ".join(f"{m}: {sum(kept.get((label, m), []))}/{len(kept.get((label, m), []))}" for m in sizes)
            best = max([m for m in sizes if kept.get((label, m)) and all(kept[(label, m)])], default=0)
            print(f"   {label}: on schedule in (runs kept up / runs) {runs}; max matches on schedule in every run: "
                  f"{best}; median {fmt(median)} us cpu per packet event")

    if "server" not in skip:
        print(f"\n3. coplay loadtest --mode wire --processes 1 against coplay serve, {args.server_matches} matches")
        for label in labels:
            r = server_run(checkouts[label], args.server_matches, args.seconds)
            print(f"   {label:<4} completed {r['completed']}/{r['participants']}, {fmt(r['us_per_event'])} us cpu per "
                  f"packet sent or received, {fmt(r['cpu_percent'], 0)} % of a core, tick p99 "
                  f"{fmt(r['tick_p99_ms'])} ms, {r['channel_packets']} of {r['packets_sent']} sent on match channels, "
                  f"{r['desyncs']} desyncs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
