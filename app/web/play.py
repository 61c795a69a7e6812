"""The `coplay play` server: one page where a game runs in the browser worker with every seat local.

It reuses the study server's pieces: the game bundle (app/pyodide/bundle.py), the vendored
Pyodide (app/web/assets.py, served by app/web/server.py's `register_pyodide_routes`), the page shell
(templates/page.html) and the security headers (app/web/security.py). No Socket.IO: the page
(static/play.js) reads its settings from `/play.json`, and with `--record` posts the recording
records its worker queued (netcode/playground.py) to `/record`, one recording per page load.
"""
from __future__ import annotations

import datetime
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flask import Flask, Response, jsonify, render_template, request, send_from_directory
from werkzeug.sansio.utils import host_is_trusted

from app.data.modes import make_folder
from app.data.recording import RecordingWriter, make_header, recording_path
from app.pyodide.bundle import EncodedBundle
from app.web import security
from app.web.server import STATIC_DIR, _bundle_response, register_pyodide_routes
from game.errors import CoplayError

EXPERIMENT_ID = "play"                 # recordings go to DATA/play/recordings/
SEAT = "s0"                            # the page: it reports every checksum
MAX_RECORD_BYTES = 4 * 1024 * 1024     # one POST of records (a few seconds of frames at most)
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")
_SESSION = re.compile(r"[a-z0-9-]{8,64}")
_MAX_CHECKSUM_CHARS = 64


@dataclass
class PlaySetup:
    """What `coplay play` serves: the game, its seats, the page's settings."""

    spec: str                            # as given on the command line
    game: str                            # the absolute spec (recordings, replay)
    game_source: str                     # recorded with every match
    worker_game: str                     # the spec the worker loads from the bundle
    config: dict[str, Any]
    seed: int
    fps: int
    players: list[str]
    keys: dict[str, dict[str, Any]]      # human player -> {key name: action}
    ai: dict[str, str]                   # AI player -> policy spec, as given
    worker_ai: dict[str, str]            # AI player -> the spec the worker loads
    bundle: EncodedBundle
    pyodide_url: str
    record: bool = False
    data_dir: str = "data"
    seats: dict[str, dict[str, Any]] = field(default_factory=dict)

    def page_settings(self) -> dict[str, Any]:
        return {"spec": self.spec, "game": self.worker_game, "config": self.config, "seed": self.seed,
                "fps": self.fps, "players": self.players, "keys": self.keys, "ai": self.ai,
                "worker_ai": self.worker_ai, "record": self.record, "pyodide_url": self.pyodide_url}

    def recording_header(self, match: str) -> dict[str, Any]:
        return make_header(match=match, experiment=EXPERIMENT_ID, scene="play",
                           created_at=datetime.datetime.now(datetime.UTC).isoformat(),
                           game=self.game, game_source=self.game_source, config=self.config,
                           players=self.players, seats=self.seats, netcode={}, fps=self.fps)


def play_seats(players: list[str], ai: dict[str, str]) -> dict[str, dict[str, Any]]:
    """The recording's seats: the page's human players in s0, then one seat per AI player."""
    humans = [p for p in players if p not in ai]
    seats: dict[str, dict[str, Any]] = {}
    if humans:
        seats[SEAT] = {"players": humans, "kind": "human", "participant": None, "policy": None}
    for player, policy in ai.items():
        seats[f"s{len(seats)}"] = {"players": [player], "kind": "ai", "participant": None, "policy": policy}
    return seats


class RecordError(CoplayError, ValueError):
    """Records the page posted that cannot be written; the message says which and why."""

    code = "bad_play_record"


class PlayRecorder:
    """One recording per page load (`session`), in DATA/play/recordings/, written as the page posts records."""

    def __init__(self, setup: PlaySetup) -> None:
        self.setup = setup
        self.folder = str(Path(setup.data_dir) / EXPERIMENT_ID)
        self.writers: dict[str, RecordingWriter] = {}
        self.lock = threading.Lock()

    def write(self, session: Any, records: Any) -> str:
        """Write `records` to `session`'s recording (made at its first records); returns the file's path."""
        if not isinstance(session, str) or not _SESSION.fullmatch(session):
            raise RecordError("session must be 8 to 64 characters of a-z, 0-9 and '-'")
        if not isinstance(records, list):
            raise RecordError("records must be a list")
        for record in records:
            _check_record(record)
        with self.lock:
            writer = self.writers.get(session)
            if writer is None:
                stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%d-%H%M%S")
                match = f"play-{stamp}-{session[:8]}"
                make_folder(self.folder)
                writer = RecordingWriter(recording_path(self.folder, match), self.setup.recording_header(match))
                self.writers[session] = writer
            try:
                for record in records:
                    _write(writer, record)
            except ValueError as error:
                raise RecordError(str(error)) from None
            return writer.path

    def close(self) -> None:
        with self.lock:
            for writer in self.writers.values():
                if not writer.closed:
                    writer.event("match_end", {"reason": "completed"})
                    writer.close()


_RECORD_FIELDS: dict[str, dict[str, type]] = {
    "episode": {"episode": int, "seed": int}, "inputs": {"episode": int, "frame": int, "actions": list},
    "checksum": {"episode": int, "frame": int, "checksum": str},
    "event": {"episode": int, "frame": int, "kind": str, "data": dict},
}


def _check_record(record: Any) -> None:
    kind = record.get("type") if isinstance(record, dict) else None
    fields = _RECORD_FIELDS.get(kind) if isinstance(kind, str) else None
    if fields is None:
        raise RecordError(f"not a recording record: {record!r:.80}")
    for name, expected in fields.items():
        value = record.get(name)
        if not isinstance(value, expected) or isinstance(value, bool):
            raise RecordError(f"a {kind} record needs {name} ({expected.__name__})")
    if kind == "event" and record["kind"] != "episode_end":
        raise RecordError(f"the page may record only episode_end events, not {record['kind']!r:.40}")
    if kind == "checksum" and len(record["checksum"]) > _MAX_CHECKSUM_CHARS:
        raise RecordError("a checksum is at most 64 characters")


def _write(writer: RecordingWriter, record: dict[str, Any]) -> None:
    kind = record["type"]
    if kind == "episode":
        writer.episode(record["episode"], record["seed"])
    elif kind == "inputs":
        writer.inputs(record["episode"], record["frame"], record["actions"])
    elif kind == "checksum":
        writer.checksum(record["episode"], record["frame"], record["checksum"], SEAT)
    else:
        writer.event(record["kind"], record["data"], record["episode"], record["frame"])


def create_play_app(setup: PlaySetup, loopback_only: bool = True) -> tuple[Flask, PlayRecorder | None]:
    """The play page's Flask app, and its recorder when `setup.record` is on. `loopback_only` answers
    requests for loopback host names only (a site that rebinds its DNS name to 127.0.0.1 gets 400)."""
    app = Flask(__name__, static_folder=None)
    app.config["MAX_CONTENT_LENGTH"] = MAX_RECORD_BYTES
    if loopback_only:
        @app.before_request
        def loopback_names_only() -> Any:
            if not host_is_trusted(request.host, LOOPBACK_HOSTS):
                return _refuse(f"this play server answers for 127.0.0.1 and localhost only, not {request.host}",
                               400)
            return None
    security.install(app, setup.pyodide_url, behind_proxy=False)
    recorder = PlayRecorder(setup) if setup.record else None

    @app.get("/")
    def index() -> Any:
        return render_template("play.html", spec=setup.spec)

    @app.get("/play.json")
    def settings() -> Any:
        response = jsonify(setup.page_settings())
        response.cache_control.no_cache = True
        return response

    @app.get("/bundle.json")
    def bundle_json() -> Any:
        return _bundle_response(setup.bundle)

    @app.get("/static/<path:name>")
    def static_files(name: str) -> Any:
        return send_from_directory(STATIC_DIR, name)

    register_pyodide_routes(app)

    @app.get("/health")
    def health() -> Any:
        return {"ok": True, "game": setup.spec}

    @app.post("/record")
    def record() -> Any:
        if recorder is None:
            return _refuse("this play server does not record; start it with --record", 404)
        origin = request.headers.get("Origin")
        if origin is not None and origin != f"{request.scheme}://{request.host}":
            return _refuse("records come from the play page only", 403)
        body = request.get_json(silent=True)
        if not isinstance(body, dict) or not request.is_json:
            return _refuse("send a JSON object {session, records}", 400)
        try:
            path = recorder.write(body.get("session"), body.get("records"))
        except RecordError as error:
            return _refuse(str(error), 400)
        return {"ok": True, "recording": path}

    return app, recorder


def _refuse(message: str, status: int) -> Response:
    response = jsonify({"ok": False, "error": message})
    response.status_code = status
    return response
