"""`coplay play SPEC`: try a game alone in the browser before writing an experiment.

Every seat is local: human players share one keyboard (a key map each: `--keys`, else the
game's `keys`, else arrows / WASD / IJKL / numpad for the 1st to 4th player), or a player is an
AI policy run in the worker (`--ai PLAYER=POLICY`). The page (static/play.js) shows an
inspector and can pause, step one frame, change speed and reset with a seed. Nothing is
written unless `--record` (then DATA/play/recordings/, which `coplay replay` verifies).

Gymnasium and PettingZoo specs are refused: their libraries need numpy, which the browser
worker cannot load from this server yet; `coplay check-env` and `coplay simulate` run them.
"""
from __future__ import annotations

import argparse
import ipaddress
import json
import logging
import os
import signal
from collections.abc import Mapping
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from app.pyodide.bundle import BundleError, build_bundle, encode_bundle
from app.pyodide.imports import missing_imports

from game.env import action_space_for
from game.errors import CoplayError
from game.loader import GameLoader, LoadError, parse_config
from game.spaces import Discrete

if TYPE_CHECKING:
    from app.web.play import PlaySetup

# The 1st, 2nd, 3rd and 4th human player's keys when neither --keys nor the game names any:
# actions 1, 2, 3, 4, 5 (up, down, left, right, act, as the demo's games number them) of a Discrete space.
DEFAULT_KEY_SETS = (
    ("ArrowUp", "ArrowDown", "ArrowLeft", "ArrowRight", " "),
    ("w", "s", "a", "d", "e"),
    ("i", "k", "j", "l", "o"),
    ("8", "5", "4", "6", "0"),
)
NUMPY_ADAPTERS = ("gymnasium", "pettingzoo")
MAX_FPS = 240


class PlayError(CoplayError):
    """`coplay play` cannot serve this game as asked; the message says how to fix it."""

    code = "play_refused"


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "play", help="try a game alone in the browser: all seats on one keyboard or vs AI policies",
        description="Serve one page where the game runs in the browser worker, as participants run it: every "
        "player on this keyboard or played by an AI policy, with a state inspector, pause / step / speed, and "
        "reset with a seed. Nothing is recorded unless --record.")
    parser.add_argument("spec", metavar="SPEC", help="the game: FILE.py:Class, module:Class or seeds:FILE.py:Class")
    parser.add_argument("--config", default=None, metavar="JSON", help="the game's config, a JSON object")
    parser.add_argument("--seed", type=int, default=0, help="the first episode's seed (default 0)")
    parser.add_argument("--fps", type=int, default=60, help=f"frames per second at speed 1x (1 to {MAX_FPS}; "
                        "default 60)")
    parser.add_argument("--keys", action="append", default=[], metavar="PLAYER=JSON",
                        help='a human player\'s keys, e.g. left=\'{"w": 1, "s": 2}\' (KeyboardEvent.key names '
                             "to actions); repeat per player")
    parser.add_argument("--ai", action="append", default=[], metavar="PLAYER=POLICY",
                        help="let POLICY play PLAYER in the worker: random, idle, FILE.py:Class or module:Class "
                             "(a class with act(observation)); repeat per player")
    parser.add_argument("--record", action="store_true",
                        help="record what is played to DATA/play/recordings/ (coplay replay verifies it)")
    parser.add_argument("--data", default="data", help="data folder for --record (default data)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=5001, help="port (default 5001)")
    parser.add_argument("--allow-remote", action="store_true",
                        help="allow a --host other machines can reach (the page runs any game code you serve)")
    parser.add_argument("--pyodide-url", default=None, metavar="URL",
                        help="where the browser loads Pyodide from (default: this server's own copy)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from app.web.play import create_play_app

    setup = build_setup(args)
    check_host(args.host, args.allow_remote)
    app, recorder = create_play_app(setup, loopback_only=not args.allow_remote)
    from werkzeug.serving import make_server

    try:
        server = make_server(args.host, args.port, app, threaded=True)
    except (OSError, SystemExit):   # werkzeug says why on stderr, then exits
        raise PlayError(f"cannot listen on {args.host}:{args.port}: the port is in use or the address is not "
                        "this machine's; pick another --port") from None
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    signal.signal(signal.SIGTERM, _interrupt)
    host = f"[{args.host}]" if ":" in args.host else args.host
    print(f"coplay play: {args.spec} at http://{host}:{server.server_port}/ (Ctrl-C stops)", flush=True)
    if recorder is not None:
        print(f"coplay play: recording to {os.path.join(recorder.folder, 'recordings')}/", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        if recorder is not None:
            recorder.close()
    return 0


def _interrupt(*_: Any) -> None:
    raise KeyboardInterrupt   # SIGTERM stops the server as Ctrl-C does: recordings are closed


def check_host(host: str, allow_remote: bool) -> None:
    """Refuse an address other machines can reach unless `allow_remote`."""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback and not allow_remote:
        raise PlayError(f"--host {host} is reachable from other machines, and the play page runs whatever game "
                        "code this server sends; use 127.0.0.1, or add --allow-remote if you mean it")


def build_setup(args: argparse.Namespace) -> PlaySetup:
    """Everything the play server needs, checked in CPython first: a bad spec, config, key map or policy
    raises a PlayError / LoadError (exit code 2) before anything is served."""
    from app.web import assets
    from app.web.play import PlaySetup, play_seats
    from app.web.server import game_source

    spec = args.spec
    prefix, sep, rest = spec.partition(":")
    if sep and prefix in NUMPY_ADAPTERS:
        raise PlayError(
            f"{spec}: {prefix} games need numpy and {prefix}, which the browser worker cannot load from this "
            f"server yet, so coplay play cannot run them. Check the game with `coplay check-env {spec}` and play "
            f"it headless with `coplay simulate {spec}`; to try it in the browser, write it (or a wrapper) "
            "without numpy as FILE.py:Class or seeds:FILE.py:Class")
    if not 1 <= args.fps <= MAX_FPS:
        raise PlayError(f"--fps must be from 1 to {MAX_FPS}, got {args.fps}")
    if not 0 <= args.seed < 2**63:
        raise PlayError(f"--seed must be in [0, 2**63), got {args.seed}")
    try:
        pyodide_url = assets.check_pyodide_url(args.pyodide_url or assets.default_pyodide_url())
    except ValueError as error:
        raise PlayError(f"--pyodide-url: {error}") from None
    loader = GameLoader(os.getcwd())
    config = parse_config(args.config) or {}
    cls = loader(spec)
    try:
        env = cls(config)
        players = [str(p) for p in env.players]
    except Exception as error:   # the game's own code: anything may go wrong
        raise PlayError(f"{spec} cannot be built with config {json.dumps(config)}: "
                        f"{type(error).__name__}: {error}") from None
    ai_specs = _pairs(args.ai, "--ai", players)
    policies = policy_specs(ai_specs, loader)
    humans = [p for p in players if p not in ai_specs]
    keys = human_keys(env, humans, _pairs(args.keys, "--keys", humans, ai_specs))
    # A seeds: game's own file is what the browser needs; the worker wraps it again (seeds:module:Class).
    seeds = prefix == "seeds" and bool(sep)
    inner = loader.absolute(rest if seeds else spec)
    bundle = play_bundle(spec, inner, policies)
    worker_game = ("seeds:" if seeds else "") + bundle["games"][inner]
    return PlaySetup(
        spec=spec, game=loader.absolute(spec), game_source=game_source(cls), worker_game=worker_game,
        config=config, seed=args.seed, fps=args.fps, players=players, keys=keys, ai=ai_specs,
        worker_ai={p: bundle["games"][s] for p, s in policies.items()}, bundle=encode_bundle(bundle),
        pyodide_url=pyodide_url, record=args.record, data_dir=args.data, seats=play_seats(players, ai_specs))


def policy_specs(ai_specs: dict[str, str], loader: GameLoader) -> dict[str, str]:
    """{AI player: the policy class's absolute spec}; `random` and `idle` become game.policies' classes."""
    from scenes.policies import resolve_policy

    policies = {}
    for player, policy in ai_specs.items():
        try:
            policies[player] = loader.absolute(resolve_policy(policy, loader))
        except (ValueError, LoadError) as error:
            raise PlayError(f"--ai {player}={policy}: {error}") from None
    return policies


def play_bundle(spec: str, game: str, policies: dict[str, str]) -> dict[str, Any]:
    """The worker's bundle with the game and the policies, built as a served experiment's is (they stand
    in for its match scenes); refused when a module they import at load time is not in it."""
    scenes = [SimpleNamespace(id=spec, game=game, packages=()),
              *(SimpleNamespace(id=f"--ai {p}", game=s, packages=()) for p, s in policies.items())]
    try:
        bundle = build_bundle(SimpleNamespace(match_scenes=lambda: scenes), lambda given: given)
    except BundleError as error:
        raise PlayError(str(error)) from None
    for scene in scenes:
        missing = missing_imports(bundle, bundle["games"][scene.game].rpartition(":")[0])
        if missing:
            name, where = next(iter(missing.items()))
            raise PlayError(f"{scene.id}: module {where} imports {name!r}, which the browser worker does not have "
                            "(it has the standard library, game, netcode and the files beside the game); "
                            f"make {name} optional there, or try the game headless with coplay simulate")
    return bundle


def _pairs(items: list[str], option: str, players: list[str],
           taken: Mapping[str, str] | None = None) -> dict[str, str]:
    """{player: value} from PLAYER=VALUE arguments (a lone human player's --keys may leave out PLAYER=)."""
    pairs: dict[str, str] = {}
    for item in items:
        player, sep, value = item.partition("=")
        if not sep or player.lstrip().startswith("{"):
            if option == "--keys" and len(players) == 1:
                player, value = players[0], item
            else:
                raise PlayError(f"{option} {item!r}: give PLAYER={'JSON' if option == '--keys' else 'POLICY'}")
        if taken and player in taken:
            raise PlayError(f"{option} {item!r}: {player!r} is played by the AI policy {taken[player]}")
        if player not in players:
            raise PlayError(f"{option} {item!r}: no player {player!r}; the players are {', '.join(players)}")
        if player in pairs:
            raise PlayError(f"{option}: {player!r} is given twice")
        pairs[player] = value
    return pairs


def human_keys(env: Any, humans: list[str], given: dict[str, str]) -> dict[str, dict[str, Any]]:
    """Each human player's {key name: action}: --keys, else the game's `keys`, else the defaults;
    every action is checked against the player's space and no key may serve two players."""
    own = getattr(env, "keys", None)
    if isinstance(own, Mapping) and own and set(own) <= set(env.players):
        game_keys = {str(p): dict(k) for p, k in own.items() if isinstance(k, Mapping)}
    elif isinstance(own, Mapping) and own:
        game_keys = {humans[0]: dict(own)} if humans else {}
    else:
        game_keys = {}
    keys: dict[str, dict[str, Any]] = {}
    owner: dict[str, str] = {}
    for index, player in enumerate(humans):
        if player in given:
            try:
                mapping = json.loads(given[player])
            except json.JSONDecodeError as error:
                raise PlayError(f"--keys {player}=...: not JSON: {error}") from None
            if not isinstance(mapping, dict):
                raise PlayError(f"--keys {player}=...: give a JSON object {{key name: action}}")
        elif player in game_keys:
            mapping = game_keys[player]
        else:
            mapping = default_keys(action_space_for(env, player), index)
        space = action_space_for(env, player)
        for key, action in mapping.items():
            if not isinstance(key, str) or not key:
                raise PlayError(f"keys of {player!r}: {key!r:.40} is not a key name (KeyboardEvent.key)")
            reason = space.why_not(action)
            if reason:
                raise PlayError(f"keys of {player!r}: {key!r} -> {action!r:.40} is not an action: {reason}")
            if key in owner:
                raise PlayError(f"key {key!r} is bound for both {owner[key]!r} and {player!r}; give one of them "
                                "other keys with --keys")
            owner[key] = player
        keys[player] = mapping
    return keys


def default_keys(space: Any, index: int) -> dict[str, Any]:
    """The `index`-th default key set on actions start+1... of a Discrete space; {} for other spaces or index."""
    if not isinstance(space, Discrete) or index >= len(DEFAULT_KEY_SETS):
        return {}
    return {key: space.start + 1 + i for i, key in enumerate(DEFAULT_KEY_SETS[index]) if i + 1 < space.n}
