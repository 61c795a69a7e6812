"""`coplay check-env SPEC`: run the env checker (game/checker.py) on a game class.

Besides the in-process checks, it re-runs the checker's trajectory in two subprocesses
with different PYTHONHASHSEED values and compares them frame by frame. That catches
what one process cannot see: iterating a set of strings, or calling hash() on a string,
gives a different order in every Python process (and in every browser).

With `--runtime pyodide` it also plays the trajectory in Pyodide 0.27.7 under Node (the
browser's Python) and compares the checksums with CPython's frame by frame: the check
that tells whether server-side bots and browsers can share a match of this game. Pyodide
gets the same bundle the server sends browsers (app/pyodide/bundle.py: the game's folder
with its sub-packages, and the packages it needs from `--packages-dir`).

Exit status: 0 when the game passes, 1 when a check fails, 2 for usage errors (the
spec or --config cannot be loaded, Node or Pyodide is missing).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import traceback
from pathlib import Path

from game.loader import LoadError, absolute_spec, load_class, parse_config
from app.pyodide.bundle import BundleError, game_bundle
from app.pyodide.node import PyodideError, PyodideNode, PyodideUnavailable, pyodide_dir
from app.pyodide.packages import PackageError, PackageSource
from game.checker import CheckReport, EnvCheckError, check_env
from game.trajectory import checker_hashes, first_divergence

HASH_SEEDS = ("1", "2")
CHILD_TIMEOUT = 600  # seconds for one subprocess run of the trajectory
_REPO_ROOT = Path(__file__).resolve().parents[2]


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "check-env",
        help="check that a game class follows the Environment contract",
        description="Run the env checker: contract shapes, JSON-able values, determinism, "
        "snapshots, rollbacks, no global random, no dependence on string hashing.",
    )
    parser.add_argument("spec", metavar="SPEC", help="the game class, as FILE.py:Class or package.module:Class")
    parser.add_argument("--config", metavar="JSON", help="the game's config, as a JSON object")
    parser.add_argument("--frames", metavar="N", type=_positive_int, default=300, help="frames to play (default 300)")
    parser.add_argument(
        "--seed", metavar="S", type=int, default=0, help="seed of the first episode and of the inputs (default 0)"
    )
    parser.add_argument(
        "--runtime", choices=("cpython", "pyodide"), default="cpython",
        help="pyodide: also play the trajectory in Pyodide under Node and compare it with CPython frame by frame",
    )
    parser.add_argument(
        "--packages-dir", metavar="DIR", default="packages",
        help="with --runtime pyodide: the folder of wheels the game needs (Match packages=; default ./packages)")
    parser.add_argument(
        "--no-hash-seed-check", action="store_true",
        help=f"skip re-running the game in subprocesses with PYTHONHASHSEED={' and '.join(HASH_SEEDS)}",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    env_class = load_class(args.spec)
    config = parse_config(args.config)
    try:
        report = check_env(env_class, config, frames=args.frames, seed=args.seed)
        if not args.no_hash_seed_check:
            check_hash_seed(args.spec, args.config, args.frames, args.seed)
        if args.runtime == "pyodide":
            check_pyodide(args.spec, config, args.frames, args.seed, Path(args.packages_dir))
    except (PyodideUnavailable, BundleError, PackageError) as exc:
        print(f"check-env: --runtime pyodide: {exc}", file=sys.stderr)
        return 2
    except EnvCheckError as exc:
        _print_failure(env_class.__name__, exc)
        return 1
    _print_success(report, hash_seed_checked=not args.no_hash_seed_check)
    if args.runtime == "pyodide":
        print("  pyodide:    same checksums as CPython at every frame")
    return 0


def check_pyodide(spec: str, config: dict | None, frames: int, seed: int,
                  packages_dir: Path | None = None) -> None:
    """Play the trajectory in Pyodide under Node, from the game's browser bundle; raise EnvCheckError at
    the first frame that differs. BundleError (or its PackageError) when the browser could not get the game."""
    spec = absolute_spec(spec)
    source = PackageSource(folder=packages_dir.resolve() if packages_dir else None, pyodide_folder=pyodide_dir())
    bundle = game_bundle(spec, source)
    if spec in bundle["unavailable"]:
        raise BundleError(bundle["unavailable"][spec])
    with PyodideNode() as py:
        try:
            py.load_bundle(bundle, source)
            theirs = py.call("game.trajectory:checker_hashes", bundle["games"][spec], config, frames, seed)
        except PyodideError as exc:
            raise EnvCheckError("pyodide_failed", f"The game failed in Pyodide: {exc}") from None
    ours = checker_hashes(spec, config, frames, seed)
    frame = first_divergence(ours, theirs)
    if frame is not None:
        raise EnvCheckError(
            "runtime_mismatch",
            f"CPython and Pyodide diverge at frame {frame} (checksum {ours[frame]} in CPython, {theirs[frame]} in "
            f"Pyodide) with the same seed and inputs. Browsers run Pyodide, so a server-side bot or a replay in "
            f"CPython would desync from them. The usual cause is a transcendental float function (math.sin, cos, "
            f"atan2, exp, pow), whose last bit differs between the two runtimes' C libraries: use integer or "
            f"+ - * / sqrt arithmetic instead.",
        )
    if len(ours) != len(theirs):
        raise EnvCheckError(
            "runtime_mismatch", f"CPython played {len(ours)} frames but Pyodide {len(theirs)} with the same inputs.")


def check_hash_seed(spec: str, config: str | None, frames: int, seed: int) -> None:
    """Play the trajectory under each of HASH_SEEDS in a subprocess; raise EnvCheckError if they differ.

    Each child writes its checksums to a file of its own, not to stdout, which the game (or a
    library it imports) may print to."""
    with tempfile.TemporaryDirectory(prefix="coplay-hash-seed-") as folder:
        outputs = {hash_seed: Path(folder, f"checksums-{hash_seed}.json") for hash_seed in HASH_SEEDS}
        runs = {hash_seed: _start_child(spec, config, frames, seed, hash_seed, outputs[hash_seed])
                for hash_seed in HASH_SEEDS}
        checksums = {hash_seed: _child_checksums(child, hash_seed, outputs[hash_seed])
                     for hash_seed, child in runs.items()}
    (seed_a, a), (seed_b, b) = checksums.items()
    frame = first_divergence(a, b)
    if frame is not None:
        raise EnvCheckError(
            "hash_seed_dependent",
            f"The game is not deterministic across Python processes: with PYTHONHASHSEED={seed_a} and "
            f"PYTHONHASHSEED={seed_b}, the same seed and inputs diverge at frame {frame}. The game depends "
            f"on the hash of strings, which differs in every process and browser: don't iterate over a "
            f"set or frozenset of strings or call hash() on them; use a list, a dict, or sorted(...).",
        )


def _start_child(spec: str, config: str | None, frames: int, seed: int, hash_seed: str,
                 output: Path) -> subprocess.Popen:
    command = [sys.executable, "-m", "app.commands.check_env", spec, "--frames", str(frames), "--seed", str(seed),
               "--output", str(output)]
    if config is not None:
        command += ["--config", config]
    path = os.pathsep.join(filter(None, [str(_REPO_ROOT), os.environ.get("PYTHONPATH")]))
    environment = dict(os.environ, PYTHONHASHSEED=hash_seed, PYTHONPATH=path)
    return subprocess.Popen(command, env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _child_checksums(child: subprocess.Popen, hash_seed: str, output: Path) -> list[str]:
    try:
        _, err = child.communicate(timeout=CHILD_TIMEOUT)
    except subprocess.TimeoutExpired:
        child.kill()
        child.communicate()
        err = f"timed out after {CHILD_TIMEOUT} s"
    if child.returncode == 0:
        try:
            return json.loads(output.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            err = f"unreadable result file {output.name}: {exc}"
    raise EnvCheckError(
        "hash_seed_check_failed",
        f"Re-running the game in a subprocess with PYTHONHASHSEED={hash_seed} failed: {err.strip()[-1000:]} "
        f"The game passed in this process, so it likely depends on something that differs between "
        f"processes (global state, files, the environment). Skip this check with --no-hash-seed-check.",
    )


def _print_failure(name: str, error: EnvCheckError) -> None:
    if error.code == "env_raised" and error.__cause__ is not None:
        traceback.print_exception(error.__cause__, file=sys.stderr)
    print(f"check-env: {name} FAILED [{error.code}]", file=sys.stderr)
    print(error.message, file=sys.stderr)


def _print_success(report: CheckReport, hash_seed_checked: bool) -> None:
    if report.generic_snapshot:
        snapshots = (
            "generic snapshot (no get_state/set_state): slower than your own get_state; see game/snapshot.py"
        )
    else:
        snapshots = "get_state/set_state"
    print(
        f"check-env: {report.env_name} passed ({report.frames} frames, {_plural(report.episodes, 'episode')}, "
        f"seed {report.seed})"
    )
    print(f"  players:    {', '.join(report.players)}")
    print(f"  snapshots:  {snapshots}")
    print(
        f"  mean time:  step {report.step_us:.1f} µs, get_state {report.get_state_us:.1f} µs, "
        f"state_hash {report.state_hash_us:.1f} µs"
    )
    if hash_seed_checked:
        print(f"  hash seed:  same trajectory with PYTHONHASHSEED={' and '.join(HASH_SEEDS)}")


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1, got {text!r}")
    return value


def _child_main(argv: list[str]) -> int:
    """The subprocess side of the hash-seed check: write the trajectory checksums as JSON to --output."""
    parser = argparse.ArgumentParser(prog="python -m app.commands.check_env")
    parser.add_argument("spec")
    parser.add_argument("--config")
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", required=True)
    args = parser.parse_args(argv)
    try:
        checksums = checker_hashes(args.spec, parse_config(args.config), args.frames, args.seed)
    except (LoadError, EnvCheckError) as exc:
        print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    Path(args.output).write_text(json.dumps(checksums))
    return 0


if __name__ == "__main__":
    sys.exit(_child_main(sys.argv[1:]))
