"""The replay viewer's HTTP routes, for researchers only (behind the admin token, app/web/admin.py).

    GET /replay                                   the matches, each linking to its viewer
    GET /replay/<match>                           the viewer page (templates/replay.html, static/replay.js)
    GET /replay/<match>/episodes.json             per episode: frames, fps, players, seed, checksums
    GET /replay/<match>/frames.json?episode=E&start=S&count=C
                                                  frames S..S+C-1: render() primitives, actions, rewards,
                                                  recorded vs replayed checksum

The token is accepted as `Authorization: Bearer <token>` or `?token=<token>`; a valid
`?token=` also marks the signed session cookie as admin, so the page's own fetches need
no token. The frames come from app/analysis/frames.py; both pages are Jinja2 templates in
app/web/templates/ that share replay_base.html.
"""
from __future__ import annotations

import functools
import os
from typing import Any, Callable

from flask import Flask, Response, render_template, request, session

from app.web.admin import ENV_VAR, fingerprint, is_admin
from app.data.recording import RecordingError
from app.analysis.replay import ReplayError
from app.analysis.frames import MAX_COUNT, ReplayFrames, UnknownMatch
from app.data.store import Store

NO_STORE = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer", "X-Content-Type-Options": "nosniff"}
HTML = {**NO_STORE, "Content-Type": "text/html; charset=utf-8"}


def register_replay_routes(app: Flask, experiment_dir: str, store: Store, token: str,
                           pause: Callable[[], None] = lambda: None) -> ReplayFrames:
    """Add the replay routes to `app`; `pause()` is called now and then during long re-simulations."""
    experiment_id = os.path.basename(os.path.normpath(experiment_dir))
    frames = ReplayFrames(experiment_dir, pause)
    required = (f"admin token required: pass ?token=... (the token is in DATA/{experiment_id}/admin_token "
                f"or {ENV_VAR})")
    mark = fingerprint(token)

    def authorized() -> bool:
        header = request.headers.get("Authorization", "")
        if header[:7].lower() == "bearer " and is_admin(header[7:].strip(), token):
            return True
        if "token" in request.args and is_admin(request.args.get("token"), token):
            session["admin"] = mark
            return True
        return session.get("admin") == mark

    def admin_only(as_json: bool) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        def wrap(view: Callable[..., Any]) -> Callable[..., Any]:
            @functools.wraps(view)
            def guarded(*args: Any, **kwargs: Any) -> Any:
                if not authorized():
                    headers = {**NO_STORE, "WWW-Authenticate": 'Bearer realm="coplay admin"'}
                    if as_json:
                        return {"error": required}, 401, headers
                    return required, 401, {**headers, "Content-Type": "text/plain; charset=utf-8"}
                return view(*args, **kwargs)
            return guarded
        return wrap

    def failure(error: Exception) -> tuple[dict[str, str], int, dict[str, str]]:
        """The JSON answer for a failed lookup or re-simulation."""
        if isinstance(error, UnknownMatch):
            return {"error": str(error)}, 404, NO_STORE
        if isinstance(error, KeyError):
            return {"error": error.args[0] if error.args else str(error)}, 404, NO_STORE
        return {"error": str(error)}, 500, NO_STORE

    @app.get("/replay")
    @admin_only(as_json=False)
    def replay_list() -> Any:
        page = render_template("replay_list.html", experiment=experiment_id, matches=_match_rows(store, frames))
        return page, 200, HTML

    @app.get("/replay/<match>")
    @admin_only(as_json=False)
    def replay_page(match: str) -> Any:
        try:
            frames.path(match)
        except UnknownMatch as error:
            return str(error), 404, {**NO_STORE, "Content-Type": "text/plain; charset=utf-8"}
        return render_template("replay.html"), 200, HTML

    @app.get("/replay/<match>/episodes.json")
    @admin_only(as_json=True)
    def replay_episodes(match: str) -> Any:
        try:
            return frames.episodes(match), 200, NO_STORE
        except (UnknownMatch, KeyError, RecordingError, ReplayError) as error:
            return failure(error)

    @app.get("/replay/<match>/frames.json")
    @admin_only(as_json=True)
    def replay_frames(match: str) -> Any:
        try:
            episode = _int_param("episode", None, 0, None)
            start = _int_param("start", None, 0, None)
            count = _int_param("count", 300, 1, MAX_COUNT)
        except ValueError as error:
            return {"error": str(error)}, 400, NO_STORE
        try:
            body = frames.frames_json(match, episode, start, count)
        except IndexError as error:
            return {"error": str(error)}, 400, NO_STORE
        except (UnknownMatch, KeyError, RecordingError, ReplayError) as error:
            return failure(error)
        return Response(body, mimetype="application/json", headers=NO_STORE)

    return frames


def _int_param(name: str, default: int | None, low: int, high: int | None) -> int:
    """The integer query parameter `name`; ValueError with a clear message when missing or out of range."""
    raw = request.args.get(name)
    if raw is None or raw == "":
        if default is None:
            raise ValueError(f"the query parameter {name!r} is required (an integer)")
        return default
    if not raw.isascii() or not raw.lstrip("-").isdigit() or len(raw) > 12:
        raise ValueError(f"{name} must be an integer, got {raw[:20]!r}")
    value = int(raw)
    if value < low or (high is not None and value > high):
        bound = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise ValueError(f"{name} must be {bound}, got {value}")
    return value


def _seats_text(seats: dict[str, Any]) -> str:
    parts = []
    for addr, seat in sorted(seats.items()):
        who = seat.get("participant") if seat.get("kind") == "human" else seat.get("policy")
        parts.append(f"{addr}: {seat.get('kind', '?')} {'/'.join(seat.get('players', []))}"
                     + (f" ({who})" if who else ""))
    return "; ".join(parts)


def _match_rows(store: Store, frames: ReplayFrames) -> list[dict[str, Any]]:
    """The matches for the admin list, newest first (`episodes` is None without a recording)."""
    return [{"id": match.id, "scene": match.scene_id, "created_at": match.created_at, "seats": _seats_text(match.seats),
             "episodes": frames.episode_count(match.id),
             "end": "still playing" if match.status == "active" else match.status}
            for match in reversed(store.matches())]
