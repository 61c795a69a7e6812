"""The Flask-SocketIO server: HTTP entry, socket events, background ticking.

A thin adapter: every decision is made by `Hub` (app/live/hub.py) and `Flow` (app/live/flow.py);
the game bundle comes from app/pyodide/bundle.py, the vendored Pyodide and Socket.IO client
from node_modules/ (app/web/assets.py).
Only `serve()` knows about eventlet; the rest takes the async mode as a setting.
"""
from __future__ import annotations

import inspect
import logging
import os
import secrets
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flask import Flask, Response, abort, render_template, request, send_from_directory, session
from flask_socketio import ConnectionRefusedError, SocketIO
from werkzeug.security import safe_join
from werkzeug.wsgi import FileWrapper

from app.web import assets, security
from app.web.precompress import precompressed_dir
from app.web.admin import admin_token, generated_secret, token_location
from app.web.agent_tokens import agent_tokens, token_locations
from app.live.agents import AgentPool, AgentTokenError
from app.pyodide.bundle import EncodedBundle, build_bundle, encode_bundle
from app.live.admission import DEFAULT_MAX_LAG_MS, settings_for
from app.pyodide.packages import served_file
from app.live.flow import Flow
from app.live.hub import Hub, Services
from app.live.tickets import Tickets
from app.web.match_channel import MatchChannelEndpoint
from game.loader import GameLoader
from app.live.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from app.live.metrics import Metrics
from app.web.replay_view import register_replay_routes
from app.web.admin_routes import register_admin_routes
from app.data.modes import env_flag, make_folder, tighten
from app.web.socket_gate import SocketGate
from app.data.store import Store, database_path
from game.env import default_action_for
from scenes.ai_seat import as_ai_seat
from scenes.policies import Bot

STATIC_DIR = Path(__file__).resolve().parents[2] / "static"
TICK_SECONDS = 0.25
VENDOR_CHUNK_BYTES = 256 * 1024


def secret_key(experiment_dir: str) -> str:
    """The session-signing key kept in the data dir, generated on first use (never a default)."""
    return generated_secret(os.path.join(experiment_dir, "secret_key"), lambda: secrets.token_hex(32))


def game_source(game_class: type) -> str:
    """The source of the module defining the game, recorded with every match."""
    return inspect.getsource(sys.modules[game_class.__module__])


@dataclass(frozen=True)
class ServerOptions:
    """How to serve: the async mode, where the experiment file is (relative game files are
    found beside it), where browsers load Pyodide from (default: this server's copy), an
    optional delay added to every relayed packet (to pilot a study at internet latency), and
    whether a reverse proxy is in front (`proxy_fix`, or COPLAY_PROXY_FIX=1; see app/web/security.py), and the
    lag above which new matches wait (`max_relay_lag_ms`, 0: never; see app/live/admission.py)."""

    async_mode: str = "eventlet"
    experiment_file: str | None = None
    pyodide_url: str | None = None
    relay_delay_ms: float = 0.0
    proxy_fix: bool = False
    max_relay_lag_ms: float = DEFAULT_MAX_LAG_MS
    packages_dir: str | None = None   # Match(packages=) wheels; default: packages/ beside the experiment file
    redis_url: str | None = None      # place matches on relay processes registered there (app/relay, docs/scaling.md)


def create_server(
    experiment: Any, data_dir: str, options: ServerOptions = ServerOptions(),
) -> tuple[Flask, SocketIO, Hub]:
    """Build the app for `experiment`, storing data in `data_dir/<experiment.id>/`.

    Raises ExperimentError (or its BundleError) when the experiment cannot be served, AdmissionError when
    `options.max_relay_lag_ms` is out of range.
    """
    admission = settings_for(options.max_relay_lag_ms)
    experiment_file, pyodide_url, async_mode = options.experiment_file, options.pyodide_url, options.async_mode
    resolve = GameLoader(os.path.dirname(os.path.abspath(experiment_file)) if experiment_file else None)
    experiment.validate(resolve)
    page_config = {"pyodide_url": assets.check_pyodide_url(pyodide_url or assets.default_pyodide_url())}
    package_source = assets.package_source(options.packages_dir, experiment_file, page_config["pyodide_url"])
    built = build_bundle(experiment, resolve.absolute, package_source)
    bundle, wheels = encode_bundle(built), built["wheels"]
    for why in built["unavailable"].values():
        print(f"coplay: warning: {why}; headless participants and server bots can play it", file=sys.stderr)
    experiment_dir = os.path.join(data_dir, experiment.id)
    make_folder(experiment_dir)
    _tighten(experiment_dir)
    replay_token = admin_token(experiment_dir)   # refuses a too-short COPLAY_ADMIN_TOKEN before anything starts
    app = Flask(__name__, static_folder=None)
    app.secret_key = secret_key(experiment_dir)
    app.config.update(SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SAMESITE="Lax",
                      SESSION_COOKIE_NAME=f"coplay_{experiment.id}")
    socketio = SocketIO(app, async_mode=async_mode, ping_interval=5, ping_timeout=10,
                        max_http_buffer_size=64 * 1024)
    security.install(app, page_config["pyodide_url"], options.proxy_fix or env_flag(security.PROXY_FIX_ENV),
                     lambda: relay_pool.origins if relay_pool is not None else ())
    store = Store(database_path(data_dir, experiment.id))
    metrics = Metrics()
    flow = Flow(experiment, store, metrics)

    def make_policy(spec: Any, player: str, action_space: Any, env: Any, seed: int) -> Bot:
        return Bot(as_ai_seat(spec).resolve(resolve), player=player, action_space=action_space,
                   default_action=default_action_for(env, player), seed=seed)

    hub = Hub(flow, experiment_dir, Services(
        emit=socketio.emit, disconnect=lambda sid: socketio.server.disconnect(sid),
        spawn=socketio.start_background_task, sleep=socketio.sleep, now=time.monotonic,
        resolve_game=resolve, game_source=game_source, make_policy=make_policy, game_spec=resolve.absolute,
        metrics=metrics,
    ), relay_delay_s=options.relay_delay_ms / 1000.0, admission=admission, tickets=Tickets(app.secret_key),
        agents=AgentPool(agent_tokens(experiment, experiment_dir)))
    relay_pool: Any = None
    if options.redis_url:
        from app.relay.room import attach as attach_relays   # redis-py only where relays are used

        relay_pool = attach_relays(hub, options.redis_url, experiment.id, resolve.base_dir, socketio.start_background_task,
                      socketio.sleep)
    # In front of everything else (Socket.IO, the proxy fix): `/match-ws` is the match channel.
    app.wsgi_app = MatchChannelEndpoint(app.wsgi_app, hub, socketio.server.eio)  # type: ignore[method-assign]

    @app.get("/")
    def index() -> Any:
        participant = session.get("participant")
        if participant is None or store.get_participant(participant) is None:
            entered = flow.enter(request.args.to_dict(), request.remote_addr or "")
            if entered.refusal is not None:
                headers = {"Cache-Control": "no-store"}
                if entered.retry_after is not None:
                    headers["Retry-After"] = str(entered.retry_after)
                return entered.refusal, entered.status, headers
            session["participant"] = entered.participant
        return render_template("index.html")

    @app.get("/static/<path:name>")
    def static_files(name: str) -> Any:
        return send_from_directory(STATIC_DIR, name)

    @app.get("/bundle.json")
    def bundle_json() -> Any:
        return _bundle_response(bundle)

    @app.get("/config.json")
    def config_json() -> Any:
        response = app.json.response(page_config)
        response.cache_control.no_cache = True
        return response

    register_pyodide_routes(app)

    @app.get("/static/packages/<digest>/<name>")
    def package_wheels(digest: str, name: str) -> Any:
        path = served_file(wheels, package_source.folder, digest, name)
        if path is None:
            abort(404)
        return _vendor_file("packages", path.parent, path.name, "The package", immutable=True)

    @app.get("/static/vendor/socket.io.min.js")
    @app.get("/static/vendor/socket.io.min.js.map")
    def socket_io_client() -> Any:
        return _vendor_file("socket.io", assets.socket_io_folder(), request.path.rpartition("/")[2],
                            "The Socket.IO client")

    @app.get("/health")
    def health() -> Any:
        relays = {"relays": relay_pool.live_count()} if relay_pool is not None else {}
        return {"ok": True, "experiment": experiment.id, "matches": len(hub.matches), **relays}

    @app.get("/metrics")
    def metrics_text() -> Any:
        """Aggregate figures in the Prometheus text format; no ids, so no authentication."""
        return Response(metrics.render(), mimetype=None, content_type=METRICS_CONTENT_TYPE,
                        headers={"Cache-Control": "no-store"})

    @socketio.on("connect")
    def on_connect(auth: Any = None) -> bool:
        if isinstance(auth, dict) and "agent_token" in auth:   # a remote agent (app/agent), not a page
            try:
                hub.agent_connect(request.sid, auth["agent_token"])  # type: ignore[attr-defined]
            except AgentTokenError as error:
                raise ConnectionRefusedError(error.message, {"code": error.code}) from None
            return True
        participant = session.get("participant")
        if participant is None or store.get_participant(participant) is None:
            return False
        return hub.connect(participant, request.sid)  # type: ignore[attr-defined]

    @socketio.on("disconnect")
    def on_disconnect(*_: Any) -> None:
        hub.disconnect(request.sid)  # type: ignore[attr-defined]

    # Events (every name, `packet` included) go from Engine.IO through the gate to the Hub, without
    # Flask-SocketIO's request context and signed session, which the Hub does not use.
    SocketGate(socketio.server, hub, socketio.sleep)

    register_replay_routes(app, experiment_dir, store, replay_token, pause=lambda: socketio.sleep(0))
    register_admin_routes(app, socketio, hub, replay_token, experiment_dir)

    def ticker() -> None:
        while True:
            hub.tick()
            with hub.lock:
                flow.expire_idle(lambda participant: participant in hub.sid_of or participant in hub.seat_of)
            socketio.sleep(TICK_SECONDS)

    socketio.start_background_task(ticker)
    socketio.start_background_task(hub.run_lag_probe)
    app.extensions["coplay.store"] = store
    return app, socketio, hub


def register_pyodide_routes(app: Flask) -> None:
    """Serve the vendored Pyodide under /static/vendor/pyodide/ and /static/vendor/pyodide@VERSION/."""

    @app.get("/static/vendor/pyodide/<path:name>")
    def pyodide_files(name: str) -> Any:
        return _vendor_file("pyodide", assets.pyodide_folder(), name, "Pyodide")

    @app.get("/static/vendor/pyodide@<version>/<path:name>")
    def versioned_pyodide_files(version: str, name: str) -> Any:
        if assets.pyodide_folder() is not None and version != assets.pyodide_version():
            return "No such Pyodide version on this server.\n", 404, {"Content-Type": "text/plain; charset=utf-8"}
        return _vendor_file("pyodide", assets.pyodide_folder(), name, "Pyodide", immutable=True)

    @app.get(f"/static/vendor/{assets.ONNXRUNTIME_WEB}@<version>/<name>")
    def onnxruntime_web_files(version: str, name: str) -> Any:
        folder, served = assets.onnxruntime_web_file(version, name)
        if not served:
            abort(404)
        return _vendor_file(assets.ONNXRUNTIME_WEB, folder, name, "onnxruntime-web", immutable=True)


def _tighten(experiment_dir: str) -> None:
    """Make an experiment folder left too open (e.g. by an older coplay) private, saying so on stderr."""
    changed = tighten(experiment_dir)
    if changed:
        shown = "; ".join(changed[:3]) + (f"; and {len(changed) - 3} more" if len(changed) > 3 else "")
        print(f"coplay: {experiment_dir} was readable by others: tightened {len(changed)} permission(s) "
              f"({shown}); set COPLAY_DATA_GROUP_ACCESS=1 to keep group read access", file=sys.stderr, flush=True)


def _bundle_response(bundle: EncodedBundle) -> Response:
    """The bundle, gzipped when the browser takes it; revalidated by ETag on every load."""
    gzipped = request.accept_encodings.quality("gzip") > 0
    response = Response(bundle.gzipped if gzipped else bundle.body, mimetype="application/json")
    if gzipped:
        response.headers["Content-Encoding"] = "gzip"
    response.headers["Vary"] = "Accept-Encoding"
    response.set_etag(bundle.etag + ("-gzip" if gzipped else ""))
    response.cache_control.no_cache = True
    response.make_conditional(request)  # updates `response` in place (304 when the ETag matches)
    return response


def _vendor_file(group: str, folder: Path | None, name: str, what: str, immutable: bool = False) -> Any:
    """A file of an npm package, or 503 saying how to install it when the package is missing.

    Sent as its best precompressed copy the request accepts (app/web/precompress.py), else as it is;
    the ETag differs per encoding (werkzeug derives it from the file sent), and ranges count the
    encoded bytes, as HTTP says."""
    if folder is None:
        return assets.missing_message(what), 503, {"Content-Type": "text/plain; charset=utf-8",
                                                   "Cache-Control": "no-store"}
    if safe_join(str(folder), name) is None or not (folder / name).is_file():
        abort(404)
    max_age = assets.IMMUTABLE_MAX_AGE if immutable else assets.VENDOR_MAX_AGE
    copy = assets.compressed_copy(group, folder, name, request.accept_encodings.quality)
    if copy is None:
        response = send_from_directory(folder, name, mimetype=assets.mime_type(name), max_age=max_age)
    else:
        path, encoding = copy
        response = send_from_directory(path.parent, path.name, mimetype=assets.mime_type(name), max_age=max_age)
        response.headers["Content-Encoding"] = encoding.name
    response.vary.add("Accept-Encoding")
    response.cache_control.public = True
    response.cache_control.immutable = immutable
    # werkzeug reads files in 8 KiB blocks, one socket write each: ~1,700 writes for Pyodide's wasm.
    body = getattr(response.response, "iterable", response.response)   # under a range, the wrapped file
    if isinstance(body, FileWrapper):
        body.buffer_size = VENDOR_CHUNK_BYTES
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def serve(experiment: Any, host: str, port: int, data_dir: str, options: ServerOptions = ServerOptions()) -> None:
    """Run the server until interrupted (the caller has monkey-patched for the async mode, see app.web.asyncmode)."""
    _raise_file_limit()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app, socketio, _ = create_server(experiment, data_dir, options)
    async_mode = options.async_mode
    print(f"coplay: serving experiment {experiment.id!r} on http://{host}:{port}/ ({async_mode}; data in {data_dir})",
          flush=True)
    print(f"coplay: researcher's dashboard at http://{host}:{port}/admin", flush=True)
    print(f"coplay: replay viewer at http://{host}:{port}/replay; the admin token is in "
          f"{token_location(os.path.join(data_dir, experiment.id))}", flush=True)
    for where in token_locations(experiment, os.path.join(data_dir, experiment.id)):
        print(f"coplay: remote {where}", flush=True)
    missing = assets.missing_assets(self_hosted_pyodide=options.pyodide_url is None)
    if missing:
        print(f"coplay: warning: not installed: {', '.join(missing)}; browsers cannot play until you "
              f"{assets.SETUP_HINT}", file=sys.stderr, flush=True)
    uncompressed = assets.missing_copies()
    if uncompressed:
        print(f"coplay: note: no precompressed copies of {', '.join(uncompressed)} in {precompressed_dir()}; "
              f"sending them uncompressed (scripts/setup makes them)", file=sys.stderr, flush=True)
    run_options: dict[str, Any] = {"max_size": 100_000} if async_mode == "eventlet" else {}
    if async_mode == "threading":
        run_options["allow_unsafe_werkzeug"] = True
    socketio.run(app, host=host, port=port, log_output=False, **run_options)


def _raise_file_limit() -> None:
    """Allow as many sockets as the system permits (eventlet's default pool is 1024 connections)."""
    try:
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ImportError, ValueError, OSError):
        pass
