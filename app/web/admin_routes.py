"""The researcher's dashboard: /admin, its actions, and live snapshots over Socket.IO's /admin namespace.

    GET  /admin                         the dashboard (templates/admin.html, static/admin.js); without a valid
                                        admin cookie, the login form (401)
    POST /admin/login                   form fields `token` (the admin token) and `name` (a label recorded with
                                        every action); sets the admin cookie
    POST /admin/logout                  drops the cookie
    GET  /admin/snapshot.json           what the page shows (app/live/dashboard.py), with the charts
    POST /admin/entries                 {"paused": true|false}: pause or resume new entries
    POST /admin/matches/<id>/end        {"message": "..."}: end a running match ("ended_by_researcher")
    POST /admin/participants/<id>/end   {"outcome": "excluded", "note": "..."}: end a participant's study
    GET  /admin/export.zip?format=csv   `coplay export` of what is finished so far, as one zip file
    GET  /admin/matches/<id>/watch      a live spectator view of a running match (templates/admin_watch.html,
                                        static/spectate.js), fed over /admin by app/live/spectator.py

Authentication is the admin token (app/web/admin.py) and nothing weaker: the login form checks it once
and sets a signed cookie (HttpOnly, SameSite=Strict, 12 h, bound to the token's fingerprint, so a new
token ends every admin session) that names the admin's label; scripts may send `Authorization: Bearer
<token>` instead. The token never travels in a URL. State-changing requests must be JSON with the header
`X-Coplay-Admin: 1` (a cross-site form cannot send either). Every action is logged as a store event with
the admin's label, never the token. The /admin Socket.IO namespace refuses a connection without the
cookie (or `auth: {"token": ...}`), and pushes a snapshot to its admins every PUSH_SECONDS.
"""
from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from typing import Any, Callable

from flask import Flask, Response, redirect, render_template, request
from werkzeug.wrappers import Response as BaseResponse
from flask_socketio import SocketIO, join_room
from itsdangerous import BadSignature, URLSafeTimedSerializer

from app.analysis.export import FORMATS
from app.live.dashboard import Dashboard
from app.live.hub import Hub
from app.live.spectator import LiveView
from app.web.admin import ENV_VAR, fingerprint, is_admin
from app.web.admin_charts import charts
from scenes.scene_types import OUTCOMES

NAMESPACE = "/admin"
ROOM = "admins"
PUSH_SECONDS = 1.0
WATCH_SECONDS = 1 / 30   # the spectator view's frame rate
COOKIE_MAX_AGE_S = 12 * 3600
LABEL = re.compile(r"[A-Za-z0-9 _.@-]{1,40}")
MAX_MESSAGE = 500
NO_STORE = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer", "X-Content-Type-Options": "nosniff"}
HTML = {**NO_STORE, "Content-Type": "text/html; charset=utf-8"}
ENDED_BY_RESEARCHER = "ended_by_researcher"
STUDY_OUTCOMES = tuple(name for name in OUTCOMES if name != "completed")


class AdminAuth:
    """Who is an admin: the token in a bearer header, or the signed cookie the login form set."""

    def __init__(self, secret_key: str, token: str, experiment_id: str, secure: Callable[[], bool]) -> None:
        self.token = token
        self.mark = fingerprint(token)
        self.cookie = f"coplay_{experiment_id}_admin"
        self.secure = secure
        self._signer = URLSafeTimedSerializer(secret_key, salt="coplay-admin")

    def label(self) -> str | None:
        """The label of the admin making the current request (or socket connection), None if not an admin."""
        header = request.headers.get("Authorization", "")
        if header[:7].lower() == "bearer " and is_admin(header[7:].strip(), self.token):
            return "token"
        raw = request.cookies.get(self.cookie)
        if not raw:
            return None
        try:
            data = self._signer.loads(raw, max_age=COOKIE_MAX_AGE_S)
        except BadSignature:
            return None
        if not isinstance(data, dict) or data.get("fp") != self.mark or not isinstance(data.get("label"), str):
            return None
        return data["label"]

    def set_cookie(self, response: BaseResponse, label: str) -> None:
        response.set_cookie(self.cookie, self._signer.dumps({"fp": self.mark, "label": label}),
                            max_age=COOKIE_MAX_AGE_S, httponly=True, samesite="Strict", secure=self.secure(), path="/")


def register_admin_routes(app: Flask, socketio: SocketIO, hub: Hub, token: str, experiment_dir: str,
                          admission: Callable[[], dict[str, Any] | None] | None = None) -> Dashboard:
    """Add /admin and the /admin namespace to `app`; start the task pushing snapshots to admins."""
    experiment_id = hub.flow.experiment.id
    auth = AdminAuth(str(app.secret_key), token, experiment_id,
                     lambda: bool(app.config.get("SESSION_COOKIE_SECURE")) or request.is_secure)
    dashboard = Dashboard(hub, admission)
    store = hub.store
    admins: set[str] = set()
    watchers: dict[str, set[str]] = {}   # match id -> sids of its spectator pages
    where = f"DATA/{experiment_id}/admin_token, or {ENV_VAR}"   # not the real path: strangers see this

    def login_page(error: str | None, status: int) -> Any:
        return render_template("admin_login.html", experiment=experiment_id, error=error, where=where), status, HTML

    def admin_only(view: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(view)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            label = auth.label()
            if label is None:
                return ({"error": f"admin only: log in at /admin with the admin token ({where})"}, 401,
                        {**NO_STORE, "WWW-Authenticate": 'Bearer realm="coplay admin"'})
            return view(label, *args, **kwargs)
        return guarded

    def action(view: Callable[..., Any]) -> Callable[..., Any]:
        """An admin's state-changing JSON request (the header and content type keep other sites out)."""
        @functools.wraps(view)
        def checked(label: str, *args: Any, **kwargs: Any) -> Any:
            if request.headers.get("X-Coplay-Admin") != "1" or not request.is_json:
                return {"error": "send JSON with the header X-Coplay-Admin: 1"}, 400, NO_STORE
            body = request.get_json(silent=True)
            if not isinstance(body, dict):
                return {"error": "the body must be a JSON object"}, 400, NO_STORE
            try:
                return view(label, body, *args, **kwargs)
            except ValueError as error:
                return {"error": str(error)}, 400, NO_STORE
        return admin_only(checked)

    def full_snapshot() -> dict[str, Any]:
        snapshot = dashboard.snapshot()
        snapshot["charts"] = charts(snapshot)
        return snapshot

    @app.get("/admin")
    def admin_page() -> Any:
        if auth.label() is None:
            return login_page(None, 401)
        return render_template("admin.html", experiment=experiment_id, outcomes=STUDY_OUTCOMES,
                               formats=FORMATS), 200, HTML

    @app.post("/admin/login")
    def admin_login() -> Any:
        name = request.form.get("name", "").strip() or "admin"
        if not is_admin(request.form.get("token", "").strip(), token):
            return login_page("That is not the admin token.", 401)
        if not LABEL.fullmatch(name):
            return login_page("Your name: 1 to 40 letters, digits, spaces or _ . @ -", 400)
        store.log_event("admin_login", {"by": name})
        response = redirect("/admin", 303)
        auth.set_cookie(response, name)
        response.headers.update(NO_STORE)
        return response

    @app.post("/admin/logout")
    def admin_logout() -> Any:
        response = redirect("/admin", 303)
        response.delete_cookie(auth.cookie, path="/", httponly=True, samesite="Strict")
        return response

    @app.get("/admin/snapshot.json")
    @admin_only
    def snapshot_json(label: str) -> Any:
        return full_snapshot(), 200, NO_STORE

    @app.post("/admin/entries")
    @action
    def entries(label: str, body: dict[str, Any]) -> Any:
        paused = body.get("paused")
        if not isinstance(paused, bool):
            raise ValueError("'paused' must be true or false")
        with hub.lock:
            changed = hub.flow.entries.set(paused, label)
        return {"changed": changed, **hub.flow.entries.state()}, 200, NO_STORE

    @app.post("/admin/matches/<match_id>/end")
    @action
    def end_match(label: str, body: dict[str, Any], match_id: str) -> Any:
        message = _text(body, "message") or None
        with hub.lock:
            if not hub.end_match(match_id, ENDED_BY_RESEARCHER, message):
                return {"error": f"match {match_id[:40]!r} is not running"}, 404, NO_STORE
            store.log_event("admin_end_match", {"by": label, "message": message}, match_id=match_id)
        return {"ended": match_id}, 200, NO_STORE

    @app.post("/admin/participants/<participant>/end")
    @action
    def end_study(label: str, body: dict[str, Any], participant: str) -> Any:
        outcome = body.get("outcome", "excluded")
        if outcome not in STUDY_OUTCOMES:
            raise ValueError(f"'outcome' must be one of {', '.join(STUDY_OUTCOMES)}")
        note = _text(body, "note")
        with hub.lock:
            record = store.get_participant(participant)
            if record is None:
                return {"error": f"no participant {participant[:40]!r}"}, 404, NO_STORE
            if record.status != "active":
                return {"error": f"participant {participant} has already ended ({record.status})"}, 409, NO_STORE
            hub.end_study(participant, outcome, {"by_researcher": label, "note": note})
            store.log_event("admin_end_study", {"by": label, "outcome": outcome, "note": note},
                            participant_id=participant)
        return {"participant": participant, "outcome": outcome}, 200, NO_STORE

    @app.get("/admin/export.zip")
    @admin_only
    def export_zip(label: str) -> Any:
        fmt = request.args.get("format", "csv")
        if fmt not in FORMATS:
            return {"error": f"format must be one of {', '.join(FORMATS)}"}, 400, NO_STORE
        store.log_event("admin_export", {"by": label, "format": fmt})
        try:
            path = _export_zip(experiment_dir, fmt)
        except ValueError as error:
            return {"error": str(error)}, 500, NO_STORE
        return _stream_and_delete(path, f"{experiment_id}-export.zip")

    @app.get("/admin/matches/<match_id>/watch")
    def watch_page(match_id: str) -> Any:
        if auth.label() is None:
            return login_page(None, 401)
        return render_template("admin_watch.html", experiment=experiment_id), 200, HTML

    @socketio.on("connect", namespace=NAMESPACE)
    def admin_connect(auth_data: Any = None) -> bool:
        """The dashboard (snapshots), or with `auth: {"watch": MATCH}` a spectator page (that match's frames)."""
        label = auth.label()
        if label is None and isinstance(auth_data, dict) and is_admin(auth_data.get("token"), token):
            label = "token"
        if label is None:
            return False
        sid = request.sid  # type: ignore[attr-defined]
        watch = auth_data.get("watch") if isinstance(auth_data, dict) else None
        if isinstance(watch, str) and watch:
            watchers.setdefault(watch, set()).add(sid)
            join_room(f"watch:{watch}", sid=sid, namespace=NAMESPACE)
            return True
        admins.add(sid)
        join_room(ROOM, sid=sid, namespace=NAMESPACE)
        socketio.emit("snapshot", full_snapshot(), namespace=NAMESPACE, to=sid)
        return True

    @socketio.on("disconnect", namespace=NAMESPACE)
    def admin_disconnect(*_: Any) -> None:
        sid = request.sid  # type: ignore[attr-defined]
        admins.discard(sid)
        for match_id, sids in list(watchers.items()):
            sids.discard(sid)
            if not sids:
                del watchers[match_id]

    def watch() -> None:
        """Push each spectated match's live frame to its spectator pages."""
        views: dict[str, LiveView] = {}
        while True:
            socketio.sleep(WATCH_SECONDS)
            for match_id in list(watchers):
                with hub.lock:
                    room = hub.matches.get(match_id)
                    if room is None:
                        views.pop(match_id, None)
                        frame: dict[str, Any] = {"match": match_id, "ended": True}
                    else:
                        view = views.get(match_id)
                        if view is None or view.room is not room:
                            view = views[match_id] = LiveView(room)
                        frame = view.frame()
                socketio.emit("frame", frame, namespace=NAMESPACE, to=f"watch:{match_id}")
            for match_id in set(views) - set(watchers):
                del views[match_id]

    def push() -> None:
        while True:
            socketio.sleep(PUSH_SECONDS)
            if admins:
                socketio.emit("snapshot", full_snapshot(), namespace=NAMESPACE, to=ROOM)

    socketio.start_background_task(push)
    socketio.start_background_task(watch)
    return dashboard


def _text(body: dict[str, Any], key: str) -> str:
    value = body.get(key, "")
    if not isinstance(value, str) or len(value) > MAX_MESSAGE:
        raise ValueError(f"{key!r} must be a text of at most {MAX_MESSAGE} characters")
    return value.strip()


def _export_zip(experiment_dir: str, fmt: str) -> str:
    """`coplay export` of the experiment, run as a child process (the server keeps serving meanwhile), zipped
    into a temporary file; returns its path. Raises ValueError with the export's own message on failure."""
    work = tempfile.mkdtemp(prefix="coplay-export-")
    try:
        out = os.path.join(work, "export")
        done = subprocess.run([sys.executable, "-m", "app.cli", "export", experiment_dir, "--format", fmt,
                               "--out", out], capture_output=True, text=True, timeout=3600)
        if done.returncode != 0:
            raise ValueError(f"the export failed: {(done.stderr or done.stdout).strip()[-500:]}")
        handle, path = tempfile.mkstemp(prefix="coplay-export-", suffix=".zip")
        with os.fdopen(handle, "wb") as raw, zipfile.ZipFile(raw, "w", zipfile.ZIP_DEFLATED) as archive:
            for folder, _, files in os.walk(out):
                for name in sorted(files):
                    full = os.path.join(folder, name)
                    archive.write(full, os.path.relpath(full, out))
        return path
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _stream_and_delete(path: str, filename: str) -> Response:
    def chunks() -> Any:
        try:
            with open(path, "rb") as handle:
                while chunk := handle.read(256 * 1024):
                    yield chunk
        finally:
            os.unlink(path)

    return Response(chunks(), mimetype="application/zip", headers={
        **NO_STORE, "Content-Disposition": f'attachment; filename="{filename}"',
        "Content-Length": str(os.path.getsize(path))})
