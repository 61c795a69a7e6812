"""`coplay export`: an experiment's data as flat tables (CSV, NPZ or Parquet).

Tables, one file each per experiment:

- `steps`: one row per player per step of every episode of every recording, rebuilt by
  re-simulating the episode from its seed and recorded inputs with the recorded game
  (`app.analysis.replay.resolve_game`, which refuses a changed game source). Each episode stops
  where replay stops it (`app.analysis.replay.episode_lengths`: at its `episode_end` frame when
  there is one), so it has exactly frames x players rows.
  `obs.*` columns hold the observation the player had before acting at that frame,
  flattened when it is a dict/list of scalars of stable shape across the episode;
  otherwise the `observation` column holds it as JSON text. `predicted` says whether a
  peer ever simulated that input as a prediction: True, False, or empty when unknown
  (`app.analysis.predicted`). `seat_kind` says who played the step (human, ai, stand_in, agent); for
  an AI (or a stand-in) `policy` is its policy spec, `policy_runs` where it ran ("server", "remote") and
  `policy_seed` the seed its policy got in that episode (`game.paced_policy.policy_seed` of the
  seat's recorded seed).
- `agent_meta`: the metadata remote agents attached to their steps (match, episode, frame, seat, meta as JSON).
- `participants`, `answers`, `matches`, `match_participants`: the store's rows.
- `events`: the store's events and every recording's events (with episode and frame).

A recording that cannot be re-simulated (changed game source, unreadable file, an error
in the game) is skipped with the reason; the rest is exported.

Memory: the `steps` table never sits in memory whole. Episodes are re-simulated one at a
time and their rows appended to a temporary spool file in the output folder
(`app.analysis.export_spool`), which the writers then read streaming: CSV row by row, Parquet in
row groups, NPZ one column at a time. So an export needs about one episode's rows (plus
one column for NPZ), however long the study. The other tables are small and stay in memory.
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from app.analysis.export_columns import ExportError, Table, json_text, plain_value, write_table
from app.analysis.export_spool import StepSpool, write_steps
from game.loader import LoadError
from game.paced_policy import policy_seed
from app.analysis.predicted import PredictedLookup
from app.data.recording import Recording, RecordingError, read_recording
from app.analysis.replay import ReplayError, episode_lengths, episode_sim, resolve_game
from app.data.modes import make_folder
from app.data.store import DATABASE_NAME, Store

FORMATS = ("csv", "npz", "parquet")
TABLES = ("steps", "participants", "answers", "events", "matches", "match_participants", "agent_meta")
STEP_COLUMNS = ("experiment", "match", "episode", "seed", "frame", "player", "seat", "participant", "seat_kind",
                "action", "reward", "terminated", "truncated", "info", "predicted", "policy", "policy_runs", "policy_seed")
PARTICIPANT_COLUMNS = ("experiment", "id", "platform_id", "url_params", "created_at", "status", "outcome_at",
                       "seed", "condition", "scene_index", "plan")
ANSWER_COLUMNS = ("experiment", "participant_id", "scene_id", "question_id", "value", "answered_at")
EVENT_COLUMNS = ("experiment", "source", "id", "at", "participant_id", "match_id", "episode", "frame", "kind", "data")
MATCH_COLUMNS = ("experiment", "id", "scene_id", "created_at", "ended_at", "status", "seats", "recording", "seed")
MATCH_PARTICIPANT_COLUMNS = ("experiment", "match_id", "participant_id", "seat", "players")
# the metadata remote agents attached to their steps (app/agent): one row per step, `meta` as JSON text
AGENT_META_COLUMNS = ("experiment", "match", "episode", "frame", "seat", "players", "meta")
PARQUET_HINT = "parquet export needs pyarrow: pip install pyarrow  (or: pip install 'coplay[parquet]')"


@dataclass
class ExperimentExport:
    experiment: str
    source: str
    out_dir: str
    rows: dict[str, int] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)
    recordings: int = 0
    episodes: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (recording path, reason)
    notes: list[str] = field(default_factory=list)


# -------------------------------------------------------------------- finding experiments

def is_experiment_dir(path: str) -> bool:
    return os.path.isfile(os.path.join(path, DATABASE_NAME)) or os.path.isdir(os.path.join(path, "recordings"))


def find_experiments(data_dir: str) -> list[tuple[str, str]]:
    """[(experiment name, folder)]: `data_dir` itself when it is an experiment folder, else its experiment subfolders."""
    if not os.path.isdir(data_dir):
        raise ExportError(f"no such folder: {data_dir}")
    if is_experiment_dir(data_dir):
        return [(os.path.basename(os.path.abspath(data_dir)), data_dir)]
    found = [(name, os.path.join(data_dir, name)) for name in sorted(os.listdir(data_dir))
             if os.path.isdir(os.path.join(data_dir, name)) and is_experiment_dir(os.path.join(data_dir, name))]
    if not found:
        raise ExportError(f"{data_dir} holds no experiment data (no {DATABASE_NAME} or recordings/ in it "
                          f"or in its subfolders)")
    return found


def check_format(fmt: str) -> None:
    if fmt not in FORMATS:
        raise ExportError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if fmt == "parquet":
        try:
            import pyarrow.parquet  # noqa: F401
        except ImportError:
            raise ExportError(PARQUET_HINT) from None


def export(data_dir: str, fmt: str = "csv", out_dir: str | None = None) -> list[ExperimentExport]:
    """Export every experiment under `data_dir` to `out_dir` (default `<data_dir>/export`).

    One experiment folder is exported into `out_dir` itself; a data root's experiments
    each into `out_dir/<experiment>/`.
    """
    check_format(fmt)
    experiments = find_experiments(data_dir)
    out_dir = out_dir or os.path.join(data_dir, "export")
    single = len(experiments) == 1 and os.path.abspath(experiments[0][1]) == os.path.abspath(data_dir)
    results = []
    for name, folder in experiments:
        target = out_dir if single else os.path.join(out_dir, name)
        results.append(export_experiment(name, folder, target, fmt))
    return results


def export_experiment(name: str, folder: str, out_dir: str, fmt: str) -> ExperimentExport:

    result = ExperimentExport(experiment=name, source=folder, out_dir=out_dir)
    tables = {table: Table(list(columns)) for table, columns in (
        ("participants", PARTICIPANT_COLUMNS), ("answers", ANSWER_COLUMNS), ("events", EVENT_COLUMNS),
        ("matches", MATCH_COLUMNS), ("match_participants", MATCH_PARTICIPANT_COLUMNS),
        ("agent_meta", AGENT_META_COLUMNS))}
    referenced: list[str] = []
    if os.path.isfile(os.path.join(folder, DATABASE_NAME)):
        referenced = _store_tables(name, folder, tables)
    make_folder(out_dir)
    with StepSpool(out_dir, STEP_COLUMNS, last=("observation",)) as steps:
        _steps_table(name, folder, referenced, tables, result, steps)
        result.rows["steps"] = steps.count
        result.files.append(write_steps(steps, os.path.join(out_dir, "steps"), fmt))
    for table_name in (t for t in TABLES if t != "steps"):
        table = tables[table_name]
        result.rows[table_name] = len(table.rows)
        result.files.append(write_table(table, os.path.join(out_dir, table_name), fmt))
    return result


# -------------------------------------------------------------------- store tables

def _store_tables(name: str, folder: str, tables: dict[str, Table]) -> list[str]:
    """Fill the store's tables; returns the recording paths the matches name."""
    with Store(os.path.join(folder, DATABASE_NAME)) as store:
        for p in store.participants():
            tables["participants"].rows.append({
                "experiment": name, "id": p.id, "platform_id": p.platform_id, "url_params": json_text(p.url_params),
                "created_at": p.created_at, "status": p.status, "outcome_at": p.outcome_at, "seed": p.seed,
                "condition": None if p.condition is None else json_text(p.condition), "scene_index": p.scene_index,
                "plan": json_text(p.plan)})
        for a in store.answers():
            tables["answers"].rows.append({
                "experiment": name, "participant_id": a["participant_id"], "scene_id": a["scene_id"],
                "question_id": a["question_id"], "value": _scalar_orjson_text(a["value"]), "answered_at": a["answered_at"]})
        for e in store.events():
            tables["events"].rows.append({
                "experiment": name, "source": "store", "id": e["id"], "at": e["at"],
                "participant_id": e["participant_id"], "match_id": e["match_id"], "episode": None, "frame": None,
                "kind": e["kind"], "data": json_text(e["data"])})
        matches = store.matches()
        for m in matches:
            tables["matches"].rows.append({
                "experiment": name, "id": m.id, "scene_id": m.scene_id, "created_at": m.created_at,
                "ended_at": m.ended_at, "status": m.status, "seats": json_text(m.seats), "recording": m.recording,
                "seed": m.seed})
        for mp in store.match_participants():
            tables["match_participants"].rows.append({
                "experiment": name, "match_id": mp["match_id"], "participant_id": mp["participant_id"],
                "seat": mp["seat"], "players": json_text(mp["players"])})
    return [os.path.join(folder, m.recording) for m in matches]


# -------------------------------------------------------------------- steps

def _recording_paths(folder: str, referenced: list[str]) -> list[str]:
    paths: dict[str, str] = {}
    recordings = os.path.join(folder, "recordings")
    if os.path.isdir(recordings):
        for entry in sorted(os.listdir(recordings)):
            if entry.endswith(".jsonl"):
                path = os.path.join(recordings, entry)
                paths.setdefault(os.path.realpath(path), path)
    for path in referenced:
        paths.setdefault(os.path.realpath(path), path)
    return list(paths.values())


def _steps_table(name: str, folder: str, referenced: list[str], tables: dict[str, Table],
                 result: ExperimentExport, spool: StepSpool) -> None:
    """Append every recording's step rows to `spool`, one episode at a time.

    Columns: STEP_COLUMNS, the flattened `obs.*` keys in first-seen order, then
    `observation` when some episode's observations could not be flattened. A recording that
    fails part-way is skipped whole: its episodes already spooled are rolled back. Its events go to
    the `events` table, remote agents' step metadata also to `agent_meta`.
    """
    for path in _recording_paths(folder, referenced):
        if not os.path.isfile(path):
            result.skipped.append((path, "recording file is missing"))
            continue
        mark = spool.mark()
        try:
            recording = read_recording(path)
            game_class = resolve_game(recording)
            for episode in sorted(recording.episodes):
                rows, keys = _simulate_episode(name, recording, game_class, episode)
                spool.add_episode(rows, ["observation"] if keys is None else keys)
                del rows  # hold one episode at a time
        except (RecordingError, ReplayError, LoadError) as error:
            spool.rollback(mark)
            result.skipped.append((path, str(error)))
            continue
        except Exception as error:  # noqa: BLE001 - the game itself failed: skip this recording, export the rest
            spool.rollback(mark)
            result.skipped.append((path, f"re-simulation failed: {type(error).__name__}: {error}"))
            continue
        result.recordings += 1
        result.episodes += len(recording.episodes)
        if recording.truncated:
            result.notes.append(f"{path}: the last line was cut short (the server died); exported what it has")
        for index, event in enumerate(recording.events):
            if event.get("kind") == "agent_meta":
                tables["agent_meta"].rows.append(_agent_meta_row(name, recording, event))
            tables["events"].rows.append({
                "experiment": name, "source": "recording", "id": index, "at": None, "participant_id": None,
                "match_id": recording.header.get("match"), "episode": event.get("episode"),
                "frame": event.get("frame"), "kind": event.get("kind"), "data": json_text(event.get("data", {}))})


def _agent_meta_row(name: str, recording: Recording, event: Mapping[str, Any]) -> dict[str, Any]:
    data = event.get("data") or {}
    return {"experiment": name, "match": recording.header.get("match"), "episode": event.get("episode"),
            "frame": event.get("frame"), "seat": data.get("seat"), "players": json_text(data.get("players", [])),
            "meta": json_text(data.get("meta", {}))}


class Holder(NamedTuple):
    """Who plays a seat's frames: the seat, its kind, the participant, and the AI's settings (AISeat.record)."""

    seat: str
    kind: str
    participant: str | None
    players: tuple[str, ...] = ()
    ai: dict[str, Any] | None = None


_NOBODY = Holder("", "", None)
# seat_changed `by` -> the seat_kind of the frames from there on: an absent participant's seat keeps their id
_SEAT_KINDS = {"ai": "ai", "stand_in": "stand_in", "participant": "human"}   # a header's seat kind may be "agent"


def _ai_settings(info: Mapping[str, Any]) -> dict[str, Any] | None:
    """A seat's AI settings from its header entry or seat_changed data (older recordings name only the policy)."""
    ai = info.get("ai")
    if isinstance(ai, Mapping):
        return dict(ai)
    return {"policy": info["policy"]} if isinstance(info.get("policy"), str) else None


def _seat_timeline(recording: Recording) -> tuple[dict[str, Holder], list[tuple[int, int, Holder]]]:
    """{player: holder} at the start, and [(episode, frame, holder)] from where a seat changed holder
    (the recording's seat segments), in order."""
    start: dict[str, Holder] = {}
    for seat, info in (recording.header.get("seats") or {}).items():
        players = tuple(info.get("players", []))
        for player in players:
            start[player] = Holder(seat, info.get("kind", ""), info.get("participant"), players, _ai_settings(info))
    changes: list[tuple[int, int, Holder]] = []
    for event in recording.events:
        data = event.get("data") or {}
        seat, by = data.get("seat"), data.get("by")
        if (event.get("kind") == "seat_changed" and by in _SEAT_KINDS and event.get("episode") is not None
                and isinstance(seat, str)):
            participant = None if by == "ai" else data.get("participant")
            ai = _ai_settings(data) if by != "participant" else None
            holder = Holder(seat, _SEAT_KINDS[by], participant, tuple(data.get("players") or ()), ai)
            changes.append((event["episode"], event.get("frame") or 0, holder))
    return start, sorted(changes, key=lambda change: (change[0], change[1]))


def _hand_over(holders: dict[str, Holder], holder: Holder) -> None:
    holders.update({p: holder for p, old in holders.items() if old.seat == holder.seat})


def _policy_columns(holder: Holder, player: str, episode: int) -> dict[str, Any]:
    """The policy, policy_runs and policy_seed of a step (empty when a person played it)."""
    ai = holder.ai or {}
    seed = ai.get("seed")
    index = holder.players.index(player) if player in holder.players else 0
    return {"policy": ai.get("policy"), "policy_runs": ai.get("runs"),
            "policy_seed": policy_seed(seed, episode, index) if type(seed) is int else None}


def _simulate_episode(name: str, recording: Recording, game_class: type,
                      episode: int) -> tuple[list[dict[str, Any]], list[str] | None]:
    """Re-simulate one episode: its step rows, and the flattened observation keys (None when not flattenable)."""
    data = recording.episodes[episode]
    players = recording.players
    start, changes = _seat_timeline(recording)
    holders = dict(start)
    for change_episode, _frame, holder in changes:
        if change_episode < episode:
            _hand_over(holders, holder)
    pending = [(frame, holder) for change_episode, frame, holder in changes if change_episode == episode]
    predicted = PredictedLookup(recording, episode, {player: holder.seat for player, holder in start.items()})

    sim = episode_sim(recording, game_class, episode, episode_lengths(recording)[episode])
    rows: list[dict[str, Any]] = []
    flat: list[dict[str, Any] | None] = []
    while not sim.done:
        frame, observations, actions = sim.frame, sim.observations, data["inputs"][sim.frame]
        while pending and pending[0][0] <= frame:
            _hand_over(holders, pending.pop(0)[1])
        result = sim.step()
        for player, action in zip(players, actions):
            holder = holders.get(player, _NOBODY)
            observation = _get(observations, player)
            rows.append({
                "experiment": name, "match": recording.header.get("match"), "episode": episode, "seed": data["seed"],
                "frame": frame, "player": player, "seat": holder.seat, "participant": holder.participant,
                "seat_kind": holder.kind, **_policy_columns(holder, player, episode),
                "action": _scalar_orjson_text(action), "reward": _scalar_orjson_text(_get(result.get("rewards"), player)),
                "terminated": _scalar_orjson_text(_get(result.get("terminated"), player)),
                "truncated": _scalar_orjson_text(_get(result.get("truncated"), player)),
                "info": json_text(result.get("info", {})), "predicted": predicted(frame, player),
                "_observation": observation})
            flat.append(_flatten(observation))
    keys = None
    if flat and all(f is not None for f in flat):
        first = list(flat[0] or {})
        if first and all(list(f or {}) == first for f in flat):
            keys = first
    for row, f in zip(rows, flat):
        observation = row.pop("_observation")
        if keys is not None and f is not None:
            row.update(f)
        else:
            row["observation"] = json_text(observation)
    return rows, keys


def _get(value: Any, player: str) -> Any:
    """A per-player value: `value[player]` when `value` is a mapping, else `value` itself."""
    if isinstance(value, Mapping):
        return value.get(player)
    return plain_value(value)


def _flatten(value: Any, prefix: str = "obs") -> dict[str, Any] | None:
    """{'obs.key.0': scalar, ...} for a dict/list of scalars (nested), or None when something is not a scalar."""
    out: dict[str, Any] = {}

    def walk(item: Any, key: str) -> bool:
        item = plain_value(item)
        if item is None or isinstance(item, (bool, int, float, str)):
            out[key] = item
            return True
        if isinstance(item, Mapping):
            return all(walk(v, f"{key}.{k}") for k, v in item.items())
        if isinstance(item, (list, tuple)):
            return all(walk(v, f"{key}.{i}") for i, v in enumerate(item))
        return False

    return out if walk(value, prefix) else None


def _scalar_orjson_text(value: Any) -> Any:
    value = plain_value(value)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return json_text(value)


def summary_lines(results: list[ExperimentExport]) -> list[str]:
    lines = []
    for r in results:
        lines.append(f"experiment {r.experiment} ({r.source}) -> {r.out_dir}")
        lines.append(f"  recordings: {r.recordings} exported ({r.episodes} episodes), {len(r.skipped)} skipped")
        for table in TABLES:
            lines.append(f"  {table}: {r.rows.get(table, 0)} rows")
        for path in r.files:
            lines.append(f"  wrote {path}")
        for path, reason in r.skipped:
            lines.append(f"  SKIPPED {path}: {reason}")
        for note in r.notes:
            lines.append(f"  note: {note}")
    return lines
