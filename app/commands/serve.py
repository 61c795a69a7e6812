"""`coplay serve EXPERIMENT.py` and `coplay demo`: run the experiment server."""
from __future__ import annotations

import argparse
import importlib.util
import os
import sys
from pathlib import Path


from app.data.modes import GROUP_ACCESS_ENV
from app.live.admission import DEFAULT_MAX_LAG_MS, MAX_LAG_ENV, AdmissionError, parse_max_lag_ms
from app.web.asyncmode import ASYNC_MODES, requested_mode
from scenes import Experiment, ExperimentError


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    serve = subparsers.add_parser("serve", help="serve an experiment file",
                                  description="Serve the Experiment defined in a Python file.")
    serve.add_argument("experiment", metavar="EXPERIMENT.py", help="a Python file defining one Experiment")
    _common(serve)
    serve.set_defaults(func=run_serve)
    demo = subparsers.add_parser("demo", help="serve the built-in demo experiment",
                                 description="Serve the demo: consent, instructions, Pong (human vs human, AI "
                                 "after 20 s), a kitchen game with an AI partner, a survey, the end.")
    _common(demo)
    demo.set_defaults(func=run_demo)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=5000, help="port (default 5000)")
    parser.add_argument("--data", default="data", help="data folder; the experiment's data goes in DATA/<id>/")
    parser.add_argument("--async-mode", choices=ASYNC_MODES, default=requested_mode([]),
                        help="eventlet (default), gevent or threading")
    parser.add_argument("--pyodide-url", type=_pyodide_url, default=None, metavar="URL",
                        help="where browsers load Pyodide 0.27.7 from: an index URL such as a CDN's "
                             ".../v0.27.7/full/ (its packages may then be listed in Match packages= without "
                             "a wheel in the package folder); default: this server's own copy from node_modules")
    parser.add_argument("--packages-dir", default=None, metavar="DIR",
                        help="the folder of wheels for Match(packages=...), served to browsers (default: "
                             "packages/ beside the experiment file; fill it with `coplay packages fetch`)")
    parser.add_argument("--relay-delay-ms", type=float, default=0.0, metavar="MS",
                        help="delay every relayed packet to participants by MS (pilot a study at internet "
                             "latency on one machine; default 0)")
    parser.add_argument("--max-relay-lag-ms", type=_max_lag_ms, metavar="MS",
                        default=os.environ.get(MAX_LAG_ENV, f"{DEFAULT_MAX_LAG_MS:g}"),
                        help="start no new match while packets spend more than MS in the server (event-loop "
                             "lag plus relay time, held for a second); participants wait with a message and "
                             f"running matches go on (default {DEFAULT_MAX_LAG_MS:g}; 0 turns admission control "
                             f"off; same as {MAX_LAG_ENV}=MS)")
    parser.add_argument("--proxy-fix", action="store_true",
                        help="behind a reverse proxy (nginx, Caddy...) that terminates https: honour its "
                             "X-Forwarded-For/-Proto/-Host headers and send the session cookie as Secure "
                             "(same as COPLAY_PROXY_FIX=1)")
    parser.add_argument("--redis", default=None, metavar="URL",
                        help="scale out: place matches on relay processes registered in this Redis "
                             "(`coplay relay`; set COPLAY_RELAY_SECRET for both; docs/scaling.md)")
    parser.add_argument("--relays", type=int, default=0, metavar="N",
                        help="start N relay processes on this machine beside this coordinator (with a private "
                             "redis-server unless --redis is given; default 0: one process, matches run in it)")
    parser.add_argument("--data-group-access", action="store_true",
                        help="let the owner's group read the data: folders 0750 and files 0640 instead of "
                             "0700/0600 (same as COPLAY_DATA_GROUP_ACCESS=1)")


def _pyodide_url(text: str) -> str:
    from app.web.assets import check_pyodide_url

    try:
        return check_pyodide_url(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _max_lag_ms(text: str) -> float:
    try:
        return parse_max_lag_ms(text)
    except AdmissionError as error:
        raise argparse.ArgumentTypeError(f"{error.message} (from --max-relay-lag-ms or {MAX_LAG_ENV})") from None


def load_experiment(path: str) -> Experiment:
    """The one Experiment object defined at the top level of the file at `path`."""
    file = Path(path).resolve()
    if not file.is_file():
        raise ExperimentError(f"no such file: {path}")
    sys.path.insert(0, str(file.parent))
    spec = importlib.util.spec_from_file_location(f"coplay_experiment_{file.stem}", file)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    found = [value for value in vars(module).values() if isinstance(value, Experiment)]
    if len(found) != 1:
        raise ExperimentError(f"{path} must define exactly one Experiment at top level, found {len(found)}")
    return found[0]


def run_serve(args: argparse.Namespace) -> int:
    return _serve(load_experiment(args.experiment), args, args.experiment)


def run_demo(args: argparse.Namespace) -> int:
    from app.commands.demo_experiment import EXPERIMENT

    return _serve(EXPERIMENT, args, None)


def _serve(experiment: Experiment, args: argparse.Namespace, experiment_file: str | None) -> int:
    from app.web.server import ServerOptions, serve

    if args.data_group_access:
        os.environ[GROUP_ACCESS_ENV] = "1"   # read wherever data files are created (app/data/modes.py)
    try:
        redis_url = _start_relays(experiment, args) if args.relays > 0 else args.redis
        options = ServerOptions(async_mode=args.async_mode, experiment_file=experiment_file,
                                pyodide_url=args.pyodide_url, relay_delay_ms=args.relay_delay_ms,
                                proxy_fix=args.proxy_fix, max_relay_lag_ms=args.max_relay_lag_ms,
                                packages_dir=args.packages_dir, redis_url=redis_url)
        serve(experiment, args.host, args.port, args.data, options)
    except KeyboardInterrupt:
        pass
    return 0


def _start_relays(experiment: Experiment, args: argparse.Namespace) -> str:
    """`--relays N`: the Redis URL (a private redis-server unless --redis), with N relays started beside."""
    from app.relay.launch import ensure_secret, start_redis, start_relays

    ensure_secret()
    redis_url = args.redis or start_redis(os.path.join(args.data, experiment.id, "redis"))
    host = "127.0.0.1" if args.host in ("0.0.0.0", "::") else args.host
    start_relays(args.relays, f"http://{host}:{args.port}", redis_url, host, args.data)
    return str(redis_url)
