"""`coplay replay RECORDING`: re-simulate a recorded match and verify every checksum."""
from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from app.data.recording import read_recording
from app.analysis.replay import (ReplayResult, diff_states, recorded_game, recorded_tree, replay, resolve_game,
                                 state_at, summary)
from game.loader import load_class


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "replay", help="re-simulate a recorded match and verify its checksums",
        description="Re-simulate a recording from its seeds and inputs and compare every checksum the peers "
        "and the server recorded; where the server recorded its own, the peers' differing ones are listed as "
        "client-reported mismatches without failing. Exits 1 at a mismatch, naming the first divergent frame, "
        "and when frames were replayed but no checksum was there to compare; 0 for a recording with no frames "
        "(nothing to verify).")
    parser.add_argument("recording", metavar="RECORDING", help="a recordings/<match>.jsonl file")
    parser.add_argument("--verify", action="store_true", help="verify the checksums (the default; kept for scripts)")
    parser.add_argument("--from", dest="first", type=int, default=0, metavar="F", help="check frames from F on")
    parser.add_argument("--to", dest="last", type=int, default=None, metavar="F", help="stop at frame F")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--game", metavar="FILE.py:Class", help="replay with this game instead of the recorded one")
    source.add_argument("--recorded-source", action="store_true",
                        help="run the game source stored in the recording (not the current file)")
    parser.add_argument("--runtime", choices=("cpython", "pyodide"), default="cpython",
                        help="pyodide: also re-simulate in Pyodide 0.27.7 under Node and compare every frame's "
                             "checksum with CPython (can server bots and replays play this game with browsers?)")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        recording = read_recording(args.recording)
        if args.recorded_source:
            game_class = recorded_game(recording)
        elif args.game:
            game_class = load_class(args.game)
        else:
            game_class = resolve_game(recording)
        started = time.perf_counter()
        result = replay(args.recording, game_class, args.first, args.last, _progress, keep_states=True)
        seconds = time.perf_counter() - started
    except OSError as error:
        print(f"coplay replay: {error}", file=sys.stderr)
        return 2
    fps = recording.header.get("fps", 60)
    speed = result.frames / fps / seconds if seconds > 0 else float("inf")
    if args.json:
        print(json.dumps({**summary(result), "seconds": round(seconds, 3), "times_real_time": round(speed, 1)}))
    else:
        print(f"replayed {result.frames} frames of {len(recording.episodes)} episode(s) in {seconds:.2f} s "
              f"({speed:.0f}x real time); {result.checked} checksums compared")
    ends = ", ".join(f"episode {e}: {f} frames" for e, f in sorted(result.last_frames.items()))
    if result.truncated:
        print(f"the recording is truncated (its process died mid-write); replayed every complete frame ({ends})")
    if result.interrupted:
        print(f"interrupted: the server stopped while this match ran; replayed the part it recorded ({ends})")
    if result.client_mismatches:
        seats = sorted({m.seat for m in result.client_mismatches})
        first = result.client_mismatches[0]
        print(f"client-reported mismatches: {len(result.client_mismatches)} checksums of seat(s) {', '.join(seats)} "
              f"differ from the replay (first at episode {first.episode}, frame {first.frame}); the server's own "
              f"checksums decide, so they are listed, not failed")
    if result.ok:
        code = _print_verdict(result)
        if args.runtime == "pyodide":
            code = max(code, compare_runtimes(recording))
        return code
    first = result.mismatches[0]
    print(f"MISMATCH at episode {first.episode}, frame {first.frame}: seat {first.seat} recorded {first.recorded}, "
          f"the replay gives {first.replayed} ({len(result.mismatches)} mismatching checksums in all)")
    if args.game or args.recorded_source:
        expected = state_at(recording, recorded_game(recording), first.episode, first.frame)
        print("state diff (recorded source -> this replay):")
        for line in diff_states(expected, first.state) or ["(the states are equal: the recorded checksum came "
                                                            "from another machine's state)"]:
            print("  " + line)
    else:
        good = [f for f in recording.episodes[first.episode]["checksums"] if f < first.frame]
        print(f"the last matching checksum is at frame {max(good) if good else 'none'}; inputs between it and frame "
              f"{first.frame} (or the game on the peer) differ from what was recorded")
    return 1


def _print_verdict(result: ReplayResult) -> int:
    """Say what a replay without mismatches verified; 1 when it had frames but no checksum to compare."""
    if result.verdict == "empty":
        print("nothing to verify: the recording has no frames")
    elif result.verdict == "unverified":
        print(f"NOT VERIFIED: {result.frames} frames replayed but no checksum was recorded for them, "
              f"so nothing could be compared")
    elif result.client_mismatches:
        print("ok: every checksum that decides (the server's own, where it recorded one) matches")
    else:
        print("ok: every checksum matches")
    return 0 if result.passed else 1


def compare_runtimes(recording: Any) -> int:
    """Re-simulate every frame in Pyodide and in CPython with the recorded source; 1 at the first difference.

    Pyodide loads the recorded source tree as browsers load the bundle (older recordings: the one
    recorded module)."""
    from app.pyodide.node import PyodideError, PyodideNode, PyodideUnavailable
    from game.trajectory import first_divergence, trajectory_hashes

    header = recording.header
    episodes = {str(e): {"seed": d["seed"], "inputs": d["inputs"]} for e, d in recording.episodes.items()}
    tree = recorded_tree(recording)
    if tree is not None:
        game, source, bundle = tree["game"], None, {"files": tree.get("files") or {}, "paths": tree.get("paths")}
    else:
        game, source, bundle = header["game"], header["game_source"], None
    args = (game, source, header["config"], recording.players, episodes)
    try:
        with PyodideNode() as py:
            if bundle is not None:
                py.load_bundle(bundle)
            theirs = py.call("game.trajectory:recorded_hashes", *args)
    except (PyodideUnavailable, PyodideError) as error:
        print(f"coplay replay: --runtime pyodide: {error}", file=sys.stderr)
        return 2
    cls = recorded_game(recording)
    ours = {episode: trajectory_hashes(cls(header["config"]), data["seed"], recording.players, data["inputs"])
            for episode, data in episodes.items()}
    for episode in episodes:
        frame = first_divergence(ours[episode], theirs[episode])
        if frame is not None:
            print(f"RUNTIMES DIFFER at episode {episode}, frame {frame}: CPython {ours[episode][frame]}, Pyodide "
                  f"{theirs[episode][frame]}. Browsers and CPython (bots, replays) would desync on this game; "
                  f"see game/detmath.py")
            return 1
    frames = sum(len(d["inputs"]) for d in episodes.values())
    print(f"ok: CPython and Pyodide agree on all {frames} frames")
    return 0


def _progress(done: int, total: int) -> None:
    if total >= 20_000 and sys.stderr.isatty():
        print(f"\r  {done}/{total} frames ({100 * done // max(1, total)} %)", end="", file=sys.stderr, flush=True)
        if done >= total:
            print(file=sys.stderr)
