"""The experiment's SQLite store: participants, scene visits, answers, matches, events.

One file per experiment, `DATA/<experiment_id>/coplay.sqlite` (see `database_path`), created
with the data file mode (app/data/modes.py); SQLite gives its -wal and -shm files the same mode.

Durability: the database runs in WAL mode with `synchronous=NORMAL`, and every
write method commits before it returns. A commit writes the transaction to the WAL
file with write(2), so once a method has returned its row is in the operating
system's hands and survives the process being killed (even `kill -9`). Power loss
may lose the last few commits (never corrupt the file); pass `synchronous="FULL"`
to fsync on every commit when that matters more than speed.

Threads: one connection (`check_same_thread=False`) guarded by `Store.lock`, a
re-entrant lock. Hold it yourself to make a read-then-write sequence atomic, e.g.
`with store.lock: counts = store.arm_counts(...); store.assign_condition(...)`.
"""
from __future__ import annotations

import json
import os
import secrets
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from app.data.modes import make_folder, open_file
from game.errors import CoplayError

SCHEMA_VERSION = 1
DATABASE_NAME = "coplay.sqlite"
PARTICIPANT_STATUSES = ("active", "completed", "declined", "waiting_timeout", "partner_dropped", "excluded", "error",
                        "timed_out")
MATCH_STATUSES = ("active", "completed", "partner_dropped", "abandoned", "error", "interrupted", "ended_by_researcher")

_SCHEMA = """
CREATE TABLE participants (
    id TEXT PRIMARY KEY, platform_id TEXT, url_params TEXT NOT NULL, created_at TEXT NOT NULL,
    status TEXT NOT NULL, outcome_at TEXT, seed INTEGER NOT NULL, condition TEXT,
    scene_index INTEGER NOT NULL DEFAULT 0, plan TEXT NOT NULL DEFAULT '[]');
CREATE UNIQUE INDEX participants_platform_id ON participants(platform_id) WHERE platform_id IS NOT NULL;
CREATE TABLE scene_visits (
    id INTEGER PRIMARY KEY, participant_id TEXT NOT NULL REFERENCES participants(id),
    scene_index INTEGER NOT NULL, scene_id TEXT NOT NULL, kind TEXT NOT NULL,
    entered_at TEXT NOT NULL, left_at TEXT, data TEXT);
CREATE INDEX scene_visits_participant ON scene_visits(participant_id);
CREATE TABLE survey_answers (
    participant_id TEXT NOT NULL REFERENCES participants(id), scene_id TEXT NOT NULL,
    question_id TEXT NOT NULL, value TEXT NOT NULL, answered_at TEXT NOT NULL,
    PRIMARY KEY (participant_id, scene_id, question_id));
CREATE TABLE matches (
    id TEXT PRIMARY KEY, scene_id TEXT NOT NULL, created_at TEXT NOT NULL, ended_at TEXT,
    status TEXT NOT NULL, seats TEXT NOT NULL, recording TEXT NOT NULL, seed INTEGER NOT NULL);
CREATE TABLE match_participants (
    match_id TEXT NOT NULL REFERENCES matches(id), participant_id TEXT NOT NULL REFERENCES participants(id),
    seat TEXT NOT NULL, players TEXT NOT NULL, PRIMARY KEY (match_id, participant_id));
CREATE TABLE events (
    id INTEGER PRIMARY KEY, at TEXT NOT NULL, participant_id TEXT, match_id TEXT,
    kind TEXT NOT NULL, data TEXT NOT NULL);
CREATE INDEX events_kind ON events(kind);
"""

# Columns stored as JSON text, decoded by the read helpers.
_JSON_COLUMNS = {"url_params", "condition", "plan", "data", "value", "seats", "players"}


def new_id() -> str:
    """A random, unguessable id (16 hex digits) for participants and matches."""
    return secrets.token_hex(8)


def database_path(data_dir: str, experiment_id: str) -> str:
    """Where an experiment's database lives: `<data_dir>/<experiment_id>/coplay.sqlite`."""
    return os.path.join(data_dir, experiment_id, DATABASE_NAME)


def utc_now() -> datetime:
    """The default clock: the wall clock, in UTC."""
    return datetime.now(UTC)


@dataclass(frozen=True)
class Participant:
    """One row of `participants`, JSON columns decoded."""

    id: str
    platform_id: str | None
    url_params: dict[str, Any]
    created_at: str
    status: str
    outcome_at: str | None
    seed: int
    condition: dict[str, str] | None
    scene_index: int
    plan: list[str]


@dataclass(frozen=True)
class Match:
    """One row of `matches`, JSON columns decoded; `recording` is relative to the store's directory."""

    id: str
    scene_id: str
    created_at: str
    ended_at: str | None
    status: str
    seats: dict[str, Any]
    recording: str
    seed: int


def _dumps(value: Any, what: str) -> str:
    try:
        return json.dumps(value, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError) as error:
        raise ValueError(f"{what} must be JSON-able (no NaN/Infinity): {error}") from None


def _decode(row: sqlite3.Row) -> dict[str, Any]:
    return {key: json.loads(row[key]) if key in _JSON_COLUMNS and row[key] is not None else row[key]
            for key in row.keys()}


class SchemaTooNew(CoplayError, RuntimeError):
    """The database was written by a newer coplay; the message says to upgrade."""

    code = "schema_too_new"


class Store:
    """The experiment database. Every write commits before returning; see the module docstring."""

    def __init__(self, path: str, clock: Callable[[], datetime] = utc_now, synchronous: str = "NORMAL") -> None:
        if synchronous not in ("NORMAL", "FULL"):
            raise ValueError(f"synchronous must be 'NORMAL' or 'FULL', got {synchronous!r}")
        self.path = path
        self.directory = os.path.dirname(os.path.abspath(path))
        self.lock = threading.RLock()
        self._clock = clock
        make_folder(self.directory)
        _create_private(path)
        # isolation_level=None: no implicit transactions; `_transaction` opens them explicitly.
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        try:
            self._db.row_factory = sqlite3.Row
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(f"PRAGMA synchronous={synchronous}")
            self._db.execute("PRAGMA busy_timeout=5000")  # another process (export) may hold a lock briefly
            self._db.execute("PRAGMA foreign_keys=ON")
            self._migrate()
        except BaseException:
            self._db.close()
            raise

    def _migrate(self) -> None:
        with self._transaction():
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise SchemaTooNew(f"{self.path}: database schema version {version} is newer than this "
                                   f"coplay understands ({SCHEMA_VERSION}); upgrade coplay")
            if version == 0:
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        self._db.execute(statement)
                self._db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

    # -- plumbing -------------------------------------------------------------------------

    def close(self) -> None:
        """Close the connection (safe to call twice)."""
        with self.lock:
            self._db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def now(self) -> str:
        """The injected clock's time as an ISO-8601 UTC string, e.g. `2024-05-01T12:00:00.000000+00:00`."""
        moment = self._clock()
        if moment.tzinfo is None:
            raise ValueError("the store's clock must return timezone-aware datetimes")
        return moment.astimezone(UTC).isoformat(timespec="microseconds")

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """Hold the lock and run the block in one transaction, committed before it exits."""
        with self.lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _select(self, sql: str, params: Iterable[Any] = ()) -> list[dict[str, Any]]:
        with self.lock:
            return [_decode(row) for row in self._db.execute(sql, tuple(params)).fetchall()]

    def _update_one(self, sql: str, params: tuple[Any, ...], what: str) -> None:
        with self._transaction() as db:
            if db.execute(sql, params).rowcount != 1:
                raise KeyError(f"no {what}")

    # -- participants ---------------------------------------------------------------------

    def create_participant(self, platform_id: str | None, url_params: dict[str, Any], seed: int) -> str:
        """Add an active participant at scene 0; returns its new random id.

        Raises ValueError when `platform_id` already belongs to a participant.
        """
        participant_id = new_id()
        with self._transaction() as db:
            if platform_id is not None:
                row = db.execute("SELECT id FROM participants WHERE platform_id = ?", (platform_id,)).fetchone()
                if row is not None:
                    raise ValueError(f"platform id {platform_id!r} already belongs to participant {row['id']}")
            db.execute("INSERT INTO participants (id, platform_id, url_params, created_at, status, seed) "
                       "VALUES (?, ?, ?, ?, 'active', ?)",
                       (participant_id, platform_id, _dumps(url_params, "url_params"), self.now(), seed))
        return participant_id

    def get_participant(self, participant_id: str) -> Participant | None:
        """The participant with this id, or None."""
        rows = self._select("SELECT * FROM participants WHERE id = ?", (participant_id,))
        return Participant(**rows[0]) if rows else None

    def find_by_platform_id(self, platform_id: str) -> Participant | None:
        """The participant who arrived with this platform id (e.g. PROLIFIC_PID), or None."""
        rows = self._select("SELECT * FROM participants WHERE platform_id = ?", (platform_id,))
        return Participant(**rows[0]) if rows else None

    def participants(self, status: str | None = None) -> list[Participant]:
        """All participants (or those with `status`), oldest first."""
        where = "" if status is None else "WHERE status = ?"
        rows = self._select(f"SELECT * FROM participants {where} ORDER BY rowid", () if status is None else (status,))
        return [Participant(**row) for row in rows]

    def set_plan(self, participant_id: str, plan: list[str]) -> None:
        """Record the participant's sequence of scene ids."""
        if not isinstance(plan, list) or not all(isinstance(scene, str) for scene in plan):
            raise ValueError(f"plan must be a list of scene ids (str), got {plan!r:.80}")
        self._update_one("UPDATE participants SET plan = ? WHERE id = ?",
                         (_dumps(plan, "plan"), participant_id), f"participant {participant_id!r}")

    def assign_condition(self, participant_id: str, conditions_name: str, arm: str) -> None:
        """Put the participant in `arm` of the conditions named `conditions_name` (other names kept)."""
        with self._transaction() as db:
            row = db.execute("SELECT condition FROM participants WHERE id = ?", (participant_id,)).fetchone()
            if row is None:
                raise KeyError(f"no participant {participant_id!r}")
            condition = json.loads(row["condition"]) if row["condition"] else {}
            condition[conditions_name] = arm
            db.execute("UPDATE participants SET condition = ? WHERE id = ?",
                       (_dumps(condition, "condition"), participant_id))

    def arm_counts(self, conditions_name: str, arms: Iterable[str] = ()) -> dict[str, int]:
        """{arm: number of active or completed participants in it}; `arms` listed are included even at 0."""
        counts = {arm: 0 for arm in arms}
        rows = self._select(
            "SELECT json_extract(condition, '$.' || json_quote(?)) AS arm, COUNT(*) AS n FROM participants "
            "WHERE status IN ('active', 'completed') AND condition IS NOT NULL GROUP BY arm", (conditions_name,))
        for row in rows:
            if row["arm"] is not None:
                counts[row["arm"]] = row["n"]
        return counts

    def set_status(self, participant_id: str, status: str) -> None:
        """Set the participant's status; any status but 'active' also stamps `outcome_at`."""
        if status not in PARTICIPANT_STATUSES:
            raise ValueError(f"status must be one of {PARTICIPANT_STATUSES}, got {status!r}")
        outcome_at = None if status == "active" else self.now()
        self._update_one("UPDATE participants SET status = ?, outcome_at = ? WHERE id = ?",
                         (status, outcome_at, participant_id), f"participant {participant_id!r}")

    # -- scenes and answers ---------------------------------------------------------------

    def enter_scene(self, participant_id: str, scene_index: int, scene_id: str, kind: str) -> None:
        """Open a visit of scene `scene_index` and make it the participant's current scene.

        Entering the scene the participant is already in (a reconnect) does nothing.
        Raises ValueError while another scene's visit is still open.
        """
        with self._transaction() as db:
            self._enter(db, participant_id, scene_index, scene_id, kind)

    def leave_scene(self, participant_id: str, scene_index: int, data: Any = None) -> None:
        """Close the open visit of scene `scene_index`, keeping `data` (e.g. what `advance` sent)."""
        with self._transaction() as db:
            self._leave(db, participant_id, scene_index, data)

    def advance_scene(self, participant_id: str, scene_index: int, data: Any,
                      next_index: int, next_scene_id: str, next_kind: str) -> None:
        """`leave_scene` then `enter_scene` in one transaction: a crash keeps both or neither."""
        with self._transaction() as db:
            self._leave(db, participant_id, scene_index, data)
            self._enter(db, participant_id, next_index, next_scene_id, next_kind)

    def _enter(self, db: sqlite3.Connection, participant_id: str, scene_index: int, scene_id: str, kind: str) -> None:
        if db.execute("SELECT 1 FROM participants WHERE id = ?", (participant_id,)).fetchone() is None:
            raise KeyError(f"no participant {participant_id!r}")
        open_visit = db.execute("SELECT scene_index FROM scene_visits WHERE participant_id = ? AND left_at IS NULL",
                                (participant_id,)).fetchone()
        if open_visit is not None:
            if open_visit["scene_index"] == scene_index:
                return
            raise ValueError(f"participant {participant_id} is still in scene {open_visit['scene_index']}; "
                             f"leave it before entering scene {scene_index}")
        db.execute("INSERT INTO scene_visits (participant_id, scene_index, scene_id, kind, entered_at) "
                   "VALUES (?, ?, ?, ?, ?)", (participant_id, scene_index, scene_id, kind, self.now()))
        db.execute("UPDATE participants SET scene_index = ? WHERE id = ?", (scene_index, participant_id))

    def _leave(self, db: sqlite3.Connection, participant_id: str, scene_index: int, data: Any) -> None:
        updated = db.execute("UPDATE scene_visits SET left_at = ?, data = ? "
                             "WHERE participant_id = ? AND scene_index = ? AND left_at IS NULL",
                             (self.now(), None if data is None else _dumps(data, "scene data"),
                              participant_id, scene_index))
        if updated.rowcount != 1:
            raise ValueError(f"participant {participant_id!r} has no open visit of scene {scene_index}")

    def scene_visits(self, participant_id: str | None = None) -> list[dict[str, Any]]:
        """Scene visits (of one participant, or all), in the order they began."""
        where = "" if participant_id is None else "WHERE participant_id = ?"
        return self._select(f"SELECT * FROM scene_visits {where} ORDER BY id",
                            () if participant_id is None else (participant_id,))

    def save_answers(self, participant_id: str, scene_id: str, answers: dict[str, Any]) -> None:
        """Store {question_id: value} for a survey scene; answering a question again replaces the value."""
        now = self.now()
        rows = [(participant_id, scene_id, str(question), _dumps(value, f"answer to {question!r}"), now)
                for question, value in answers.items()]
        with self._transaction() as db:
            db.executemany("INSERT OR REPLACE INTO survey_answers "
                           "(participant_id, scene_id, question_id, value, answered_at) VALUES (?, ?, ?, ?, ?)", rows)

    def answers(self, participant_id: str | None = None, scene_id: str | None = None) -> list[dict[str, Any]]:
        """Survey answers, optionally of one participant and/or one scene; `value` decoded."""
        where, params = _filters(participant_id=participant_id, scene_id=scene_id)
        return self._select(f"SELECT * FROM survey_answers {where} ORDER BY rowid", params)

    # -- matches --------------------------------------------------------------------------

    def create_match(self, scene_id: str, seats: dict[str, Any], seed: int,
                     participants: Iterable[tuple[str, str, list[str]]] = (),
                     match_id: str | None = None, recording: str | None = None) -> str:
        """Add an active match and its (participant_id, seat, players) rows; returns its id.

        `recording` defaults to `recordings/<match_id>.jsonl`, relative to the store's directory.
        """
        match_id = match_id or new_id()
        recording = recording or f"recordings/{match_id}.jsonl"
        with self._transaction() as db:
            db.execute("INSERT INTO matches (id, scene_id, created_at, status, seats, recording, seed) "
                       "VALUES (?, ?, ?, 'active', ?, ?, ?)",
                       (match_id, scene_id, self.now(), _dumps(seats, "seats"), recording, seed))
            for participant_id, seat, players in participants:
                self._add_match_participant(db, match_id, participant_id, seat, players)
        return match_id

    def add_match_participant(self, match_id: str, participant_id: str, seat: str, players: list[str]) -> None:
        """Record that `participant_id` holds `seat` (controlling `players`) in the match."""
        with self._transaction() as db:
            self._add_match_participant(db, match_id, participant_id, seat, players)

    @staticmethod
    def _add_match_participant(db: sqlite3.Connection, match_id: str, participant_id: str,
                               seat: str, players: list[str]) -> None:
        db.execute("INSERT INTO match_participants (match_id, participant_id, seat, players) VALUES (?, ?, ?, ?)",
                   (match_id, participant_id, seat, _dumps(list(players), "players")))

    def end_match(self, match_id: str, status: str) -> None:
        """Mark an active match ended with `status` ('completed', 'partner_dropped', 'abandoned', 'error', or
        'interrupted': the server stopped while it was running)."""
        if status not in MATCH_STATUSES or status == "active":
            raise ValueError(f"status must be one of {MATCH_STATUSES[1:]}, got {status!r}")
        with self._transaction() as db:
            row = db.execute("SELECT status FROM matches WHERE id = ?", (match_id,)).fetchone()
            if row is None:
                raise KeyError(f"no match {match_id!r}")
            if row["status"] != "active":
                raise ValueError(f"match {match_id} already ended ({row['status']})")
            db.execute("UPDATE matches SET status = ?, ended_at = ? WHERE id = ?", (status, self.now(), match_id))

    def get_match(self, match_id: str) -> Match | None:
        """The match with this id, or None."""
        rows = self._select("SELECT * FROM matches WHERE id = ?", (match_id,))
        return Match(**rows[0]) if rows else None

    def matches(self, status: str | None = None) -> list[Match]:
        """All matches (or those with `status`), oldest first."""
        where, params = _filters(status=status)
        return [Match(**row) for row in self._select(f"SELECT * FROM matches {where} ORDER BY rowid", params)]

    def match_participants(self, match_id: str | None = None,
                           participant_id: str | None = None) -> list[dict[str, Any]]:
        """Seat assignments, optionally of one match and/or one participant; `players` decoded."""
        where, params = _filters(match_id=match_id, participant_id=participant_id)
        return self._select(f"SELECT * FROM match_participants {where} ORDER BY rowid", params)

    def study_summary(self, recent: int = 30) -> dict[str, Any]:
        """Aggregates for the researcher's dashboard, computed in SQL: participant counts by status and current
        scene (`(status, scene id or None when not active, n)` rows), arrivals and completions per minute
        (`(minute "YYYY-MM-DDTHH:MM", n)`, UTC), matches by status, and the `recent` newest participants."""
        by_scene = self._select(
            "SELECT status, CASE WHEN status = 'active' THEN json_extract(plan, '$[' || scene_index || ']') END "
            "AS scene, COUNT(*) AS n FROM participants GROUP BY status, scene")
        arrivals = self._select("SELECT substr(created_at, 1, 16) AS minute, COUNT(*) AS n FROM participants "
                                "GROUP BY minute ORDER BY minute")
        completions = self._select("SELECT substr(outcome_at, 1, 16) AS minute, COUNT(*) AS n FROM participants "
                                   "WHERE status = 'completed' GROUP BY minute ORDER BY minute")
        matches = self._select("SELECT status, COUNT(*) AS n FROM matches GROUP BY status")
        newest = self._select("SELECT * FROM participants ORDER BY rowid DESC LIMIT ?", (recent,))
        return {"by_scene": [(r["status"], r["scene"], r["n"]) for r in by_scene],
                "arrivals": [(r["minute"], r["n"]) for r in arrivals],
                "completions": [(r["minute"], r["n"]) for r in completions],
                "matches": {r["status"]: r["n"] for r in matches},
                "recent": [Participant(**row) for row in newest]}

    # -- events ---------------------------------------------------------------------------

    def log_event(self, kind: str, data: dict[str, Any] | None = None,
                  participant_id: str | None = None, match_id: str | None = None) -> int:
        """Append an event (connects, drops, refused messages...); returns its id."""
        with self._transaction() as db:
            cursor = db.execute("INSERT INTO events (at, participant_id, match_id, kind, data) VALUES (?, ?, ?, ?, ?)",
                                (self.now(), participant_id, match_id, kind, _dumps(data or {}, "event data")))
            return int(cursor.lastrowid or 0)

    def events(self, kind: str | None = None, participant_id: str | None = None,
               match_id: str | None = None) -> list[dict[str, Any]]:
        """Events in the order they were logged, optionally filtered; `data` decoded."""
        where, params = _filters(kind=kind, participant_id=participant_id, match_id=match_id)
        return self._select(f"SELECT * FROM events {where} ORDER BY id", params)

    def recent_events(self, kinds: Iterable[str], limit: int) -> list[dict[str, Any]]:
        """The last `limit` events of the given kinds, newest first; `data` decoded."""
        kinds = list(kinds)
        marks = ", ".join("?" * len(kinds))
        return self._select(f"SELECT * FROM events WHERE kind IN ({marks}) ORDER BY id DESC LIMIT ?", [*kinds, limit])


def _create_private(path: str) -> None:
    """Create the database file empty with the data file mode, unless it exists (SQLite then fills it)."""
    try:
        os.close(open_file(path, os.O_WRONLY | os.O_EXCL))
    except FileExistsError:
        pass


def _filters(**equal: Any) -> tuple[str, list[Any]]:
    """A WHERE clause (column = ? AND ...) for the arguments that are not None."""
    used = {column: value for column, value in equal.items() if value is not None}
    if not used:
        return "", []
    return "WHERE " + " AND ".join(f"{column} = ?" for column in used), list(used.values())
