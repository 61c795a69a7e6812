"""Data hygiene without a server: file modes, CSV escaping, log text, entry rules and idle timeouts."""
from __future__ import annotations

import csv
import logging
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from app.analysis.export import export
from app.analysis.export_columns import Table, csv_cell, write_table
from app.data.modes import GROUP_ACCESS_ENV, make_folder, tighten
from app.data.recording import RecordingWriter, make_header, recording_path
from app.data.store import Store, database_path
from app.live.entry import ANONYMOUS_BURST, AnonymousLimit, normalise_platform_id
from app.live.flow import Flow
from app.live.hub import log as hub_log
from app.live.log_text import log_text
from app.web.admin import admin_token
from app.web.security import content_security_policy, pyodide_origin
from app.web.server import secret_key
from scenes import End, Experiment, ExperimentError, Page
from tests.export_fixtures import record


def mode(path: Path | str) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def loose_umask() -> Iterator[None]:
    """Umask 0: without explicit modes everything would come out world-readable (and writable)."""
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


@pytest.fixture(autouse=True)
def private_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(GROUP_ACCESS_ENV, raising=False)
    monkeypatch.delenv("COPLAY_ADMIN_TOKEN", raising=False)


def fill_experiment_folder(folder: Path) -> None:
    """What a server leaves in an experiment folder: database (+ WAL), secrets, a recording."""
    store = Store(database_path(str(folder.parent), folder.name))
    store.create_participant("p1", {}, seed=1)
    admin_token(str(folder))
    secret_key(str(folder))
    record(folder, "m1", episodes=1, frames=5, seed=1)
    store.close()


# ------------------------------------------------------------------ file modes

def test_data_files_are_private_whatever_the_umask(tmp_path: Path, loose_umask: None) -> None:
    folder = tmp_path / "data" / "exp"
    store = Store(database_path(str(tmp_path / "data"), "exp"))
    store.create_participant("p1", {}, seed=1)   # the WAL and shared-memory files exist from here
    admin_token(str(folder))
    secret_key(str(folder))
    record(folder, "m1", episodes=1, frames=5, seed=1)
    files = ["coplay.sqlite", "coplay.sqlite-wal", "coplay.sqlite-shm", "admin_token", "secret_key",
             "recordings/m1.jsonl"]
    assert {name: mode(folder / name) for name in files} == {name: 0o600 for name in files}
    assert {mode(tmp_path / "data"), mode(folder), mode(folder / "recordings")} == {0o700}
    store.close()


def test_group_access_gives_the_group_read_access_but_never_to_secrets(tmp_path: Path, loose_umask: None,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(GROUP_ACCESS_ENV, "1")
    folder = tmp_path / "exp"
    fill_experiment_folder(folder)
    assert mode(folder) == mode(folder / "recordings") == 0o750
    assert mode(folder / "coplay.sqlite") == mode(folder / "recordings" / "m1.jsonl") == 0o640
    assert mode(folder / "admin_token") == mode(folder / "secret_key") == 0o600


def test_the_export_output_is_private(tmp_path: Path, loose_umask: None) -> None:
    folder = tmp_path / "exp"
    fill_experiment_folder(folder)
    (tmp_path / "out").mkdir(mode=0o777)
    stale = tmp_path / "out" / "exp" / "steps.csv"
    stale.parent.mkdir(mode=0o755)
    stale.write_text("old")
    os.chmod(stale, 0o666)   # an earlier export's file is replaced by a private one
    for fmt in ("csv", "npz", "parquet"):
        [result] = export(str(folder), fmt, str(tmp_path / "out" / fmt))
        assert result.files and all(mode(path) == 0o600 for path in result.files)
        assert mode(tmp_path / "out" / fmt) == 0o700
    export(str(folder), "csv", str(tmp_path / "out" / "exp"))
    assert mode(stale) == 0o600 and stale.read_text() != "old"


def test_tighten_removes_bits_beyond_the_data_modes_and_says_what(tmp_path: Path, loose_umask: None) -> None:
    folder = tmp_path / "exp"
    fill_experiment_folder(folder)
    for path in (folder, folder / "recordings"):
        os.chmod(path, 0o755)
    for path in (folder / "coplay.sqlite", folder / "recordings" / "m1.jsonl", folder / "admin_token"):
        os.chmod(path, 0o644)
    os.chmod(folder / "secret_key", 0o400)   # tighter than needed: left alone
    changed = tighten(str(folder))
    assert len(changed) == 5 and any("coplay.sqlite 0644 -> 0600" in line for line in changed)
    assert mode(folder) == mode(folder / "recordings") == 0o700
    assert mode(folder / "coplay.sqlite") == mode(folder / "admin_token") == 0o600
    assert mode(folder / "secret_key") == 0o400
    assert tighten(str(folder)) == []


def test_make_folder_creates_missing_parents_only(tmp_path: Path, loose_umask: None) -> None:
    os.chmod(tmp_path, 0o755)
    make_folder(str(tmp_path / "a" / "b"))
    assert mode(tmp_path) == 0o755 and mode(tmp_path / "a") == mode(tmp_path / "a" / "b") == 0o700


def test_a_recording_is_still_never_overwritten(tmp_path: Path) -> None:
    header = make_header(match="m", experiment="e", scene="s", created_at="now", game="g", game_source="",
                         config={}, players=["a"], seats={}, netcode={}, fps=60)
    path = recording_path(str(tmp_path), "m")
    RecordingWriter(path, header).close()
    with pytest.raises(FileExistsError, match="never overwritten"):
        RecordingWriter(path, header)


# ------------------------------------------------------------------ CSV escaping

@pytest.mark.parametrize("value, written", [
    ("=HYPERLINK(\"http://evil\",\"x\")", "'=HYPERLINK(\"http://evil\",\"x\")"),
    ("+1+cmd|' /C calc'!A0", "'+1+cmd|' /C calc'!A0"),
    ("-2+3", "'-2+3"), ("@SUM(A1)", "'@SUM(A1)"), ("\t=1", "'\t=1"), ("\r=1", "'\r=1"),
    ("-1.5", "-1.5"), ("+3", "+3"), ("-2e-3", "-2e-3"), ("-.5", "-.5"),
    ("plain", "plain"), ("a=b", "a=b"), ("", ""), (-1.5, -1.5), (-3, -3), (True, True),
])
def test_csv_cells_that_a_spreadsheet_would_run_are_escaped(value: Any, written: Any) -> None:
    assert csv_cell(value) == written


def test_csv_output_escapes_formulas_but_npz_keeps_the_values(tmp_path: Path) -> None:
    table = Table(["answer", "reward", "=head"], [{"answer": "=1+1", "reward": -1.5, "=head": "@x"},
                                                  {"answer": "-7", "reward": -2.0, "=head": None}])
    with open(write_table(table, str(tmp_path / "t"), "csv"), newline="") as file:
        rows = list(csv.reader(file))
    assert rows == [["answer", "reward", "'=head"], ["'=1+1", "-1.5", "'@x"], ["-7", "-2.0", ""]]
    arrays = np.load(write_table(table, str(tmp_path / "t"), "npz"))
    assert list(arrays["answer"]) == ["=1+1", "-7"] and list(arrays["reward"]) == [-1.5, -2.0]


def test_the_exported_answers_csv_escapes_a_participants_formula(tmp_path: Path) -> None:
    folder = tmp_path / "exp"
    with Store(database_path(str(tmp_path), "exp")) as store:
        participant = store.create_participant("p1", {}, seed=1)
        store.save_answers(participant, "survey", {"comments": "=HYPERLINK(\"http://x\")", "score": -2})
    [result] = export(str(folder), "csv", str(tmp_path / "out"))
    with open(next(p for p in result.files if p.endswith("answers.csv")), newline="") as file:
        values = {row["question_id"]: row["value"] for row in csv.DictReader(file)}
    assert values == {"comments": "'=HYPERLINK(\"http://x\")", "score": "-2"}


# ------------------------------------------------------------------ log text

def test_log_text_keeps_client_text_on_one_line_and_short() -> None:
    forged = "oops\n2024-01-01 00:00:00 INFO coplay.server: admin logged in\r\x1b[2J\u2028"
    assert log_text(forged) == ("oops\\n2024-01-01 00:00:00 INFO coplay.server: admin logged in\\r\\x1b[2J\\u2028")
    long = log_text("é" * 1000)
    assert long.startswith("é" * 500) and long.endswith("... (500 more characters)")
    assert log_text({"seat": "s0\nforged"}) == "{'seat': 's0\\nforged'}"


def test_a_client_error_with_newlines_is_one_log_line(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from app.live.hub import Hub, Services
    from app.live.metrics import Metrics

    experiment = Experiment("e", [Page("p", "P", markdown="x"), End("end")], allow_anonymous=True)
    store = Store(str(tmp_path / "db.sqlite"))
    flow = Flow(experiment, store)
    hub = Hub(flow, str(tmp_path), Services(
        emit=lambda *a, **k: None, disconnect=lambda sid: None, spawn=lambda *a: None, sleep=lambda s: None,
        now=lambda: 0.0, resolve_game=lambda g: object, game_source=lambda c: "", make_policy=lambda *a: None,
        game_spec=lambda g: "", metrics=Metrics(process=False)))
    participant = flow.enter({}, "10.0.0.1").participant
    assert participant is not None
    hub.connect(participant, "sid1")
    with caplog.at_level(logging.WARNING, logger=hub_log.name):
        hub.handle("client_error", "sid1", {"message": "bad\nERROR forged line", "traceback": "a\nb"})
    [line] = [r.getMessage() for r in caplog.records if "reported an error" in r.getMessage()]
    assert "\n" not in line and "bad\\nERROR forged line" in line
    store.close()


# ------------------------------------------------------------------ security headers

def test_the_content_security_policy() -> None:
    policy = content_security_policy("study.example.org", "/static/vendor/pyodide/")
    assert "script-src 'self' 'wasm-unsafe-eval';" in policy and "'unsafe-inline'" not in policy.split("style-src")[0]
    assert "connect-src 'self' ws://study.example.org wss://study.example.org;" in policy
    assert "frame-ancestors 'none'" in policy and "object-src 'none'" in policy
    cdn = content_security_policy("h", "https://cdn.jsdelivr.net/pyodide/v0.27.7/full/")
    assert "script-src 'self' 'wasm-unsafe-eval' https://cdn.jsdelivr.net;" in cdn
    assert "connect-src 'self' ws://h wss://h https://cdn.jsdelivr.net;" in cdn
    assert pyodide_origin("//cdn.example/x/") == "cdn.example" and pyodide_origin("/p/") is None


# ------------------------------------------------------------------ entry

def test_platform_ids_are_trimmed_and_lower_cased_unless_case_sensitive() -> None:
    assert {normalise_platform_id(v, "PROLIFIC_PID", False) for v in (" abc", "ABC", "abc ", "\tAbC\n")} == {"abc"}
    assert normalise_platform_id(" A1B2 ", "workerId", True) == "A1B2"
    for bad in ("a b", "{{%PROLIFIC_PID%}}", "x" * 101, "<script>", "é"):
        with pytest.raises(ValueError, match="PROLIFIC_PID .* is not a valid id"):
            normalise_platform_id(bad, "PROLIFIC_PID", False)


def test_anonymous_entries_are_a_token_bucket_per_address() -> None:
    clock = [0.0]
    limit = AnonymousLimit(lambda: clock[0])
    assert [limit.wait("a") for _ in range(ANONYMOUS_BURST)] == [0.0] * ANONYMOUS_BURST
    assert limit.wait("a") == pytest.approx(10.0)
    assert limit.wait("b") == 0.0
    clock[0] = 10.0
    assert limit.wait("a") == 0.0 and limit.wait("a") > 0


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def make_flow(tmp_path: Path, clock: Clock, **settings: Any) -> Flow:
    experiment = Experiment("e", [Page("p", "P", markdown="x"), End("end")], **settings)
    return Flow(experiment, Store(str(tmp_path / "db.sqlite")), now=clock)


def test_entry_needs_the_platform_id_the_experiment_names(tmp_path: Path) -> None:
    flow = make_flow(tmp_path, Clock(), platform_id_param="workerId")
    refused = flow.enter({"PROLIFIC_PID": "abc"}, "1.2.3.4")
    assert refused.participant is None and refused.status == 403 and "lacks the workerId parameter" in (
        refused.refusal or "")
    bad = flow.enter({"workerId": "no spaces please"})
    assert bad.status == 400 and "workerId" in (bad.refusal or "")
    assert flow.store.participants() == []
    first = flow.enter({"workerId": " A1B2C3 "}).participant
    assert first is not None and flow.enter({"workerId": "a1b2c3"}).participant == first
    assert [p.platform_id for p in flow.store.participants()] == ["a1b2c3"]


def test_case_sensitive_ids_stay_apart(tmp_path: Path) -> None:
    flow = make_flow(tmp_path, Clock(), platform_id_case_sensitive=True)
    ids = {flow.enter({"PROLIFIC_PID": value}).participant for value in (" abc", "ABC", "abc ")}
    assert len(ids) == 2 and len(flow.store.participants()) == 2


def test_anonymous_entry_when_allowed_is_rate_limited(tmp_path: Path) -> None:
    clock = Clock()
    flow = make_flow(tmp_path, clock, allow_anonymous=True)
    results = [flow.enter({}, "10.0.0.1") for _ in range(50)]
    assert sum(r.participant is not None for r in results) == ANONYMOUS_BURST
    refused = results[-1]
    assert refused.status == 429 and refused.retry_after == 10 and "try again in 10 seconds" in (refused.refusal or "")
    assert flow.enter({}, "10.0.0.2").participant is not None
    assert flow.enter({"PROLIFIC_PID": "named"}, "10.0.0.1").participant is not None   # ids are not limited
    assert len(flow.store.participants()) == ANONYMOUS_BURST + 2


def test_an_idle_participant_times_out_and_cannot_come_back(tmp_path: Path) -> None:
    clock = Clock()
    flow = make_flow(tmp_path, clock, idle_timeout_s=60)
    away = flow.enter({"PROLIFIC_PID": "away"}).participant
    here = flow.enter({"PROLIFIC_PID": "here"}).participant
    present = {here}
    clock.t += 59
    assert flow.expire_idle(present.__contains__) == []
    clock.t += 2
    assert flow.expire_idle(present.__contains__) == [away]
    assert flow.expire_idle(present.__contains__) == []   # checked at most once a second
    clock.t += 120
    assert flow.expire_idle(present.__contains__) == []   # `here` stayed connected
    record = flow.store.get_participant(away or "")
    assert record is not None and record.status == "timed_out" and record.outcome_at is not None
    assert flow.current(away or "")[1].id == "end:timed_out"
    back = flow.enter({"PROLIFIC_PID": "AWAY"})
    assert back.participant is None and back.status == 403 and "Session timed out" in (back.refusal or "")
    present.clear()
    clock.t += 61
    assert flow.expire_idle(present.__contains__) == [here]


def test_participants_active_at_start_get_the_full_idle_time_and_the_outcome_is_configurable(tmp_path: Path) -> None:
    clock = Clock()
    first = make_flow(tmp_path, clock)
    old = first.enter({"PROLIFIC_PID": "old"}).participant
    clock.t += 10_000
    restarted = make_flow(tmp_path, clock, idle_timeout_s=30, idle_outcome="excluded")
    clock.t += 29
    assert restarted.expire_idle(lambda p: False) == []
    clock.t += 2
    assert restarted.expire_idle(lambda p: False) == [old]
    assert restarted.store.get_participant(old or "").status == "excluded"   # type: ignore[union-attr]
    never = make_flow(tmp_path, clock, idle_timeout_s=None)
    never.enter({"PROLIFIC_PID": "never"})
    clock.t += 10**6
    assert never.expire_idle(lambda p: False) == []


@pytest.mark.parametrize("settings, message", [
    ({"platform_id_param": "PROLIFIC PID"}, "platform_id_param must name a URL parameter"),
    ({"allow_anonymous": "yes"}, "allow_anonymous must be True or False"),
    ({"platform_id_case_sensitive": 1}, "platform_id_case_sensitive must be True or False"),
    ({"idle_timeout_s": 0}, "idle_timeout_s must be a positive number of seconds or None"),
    ({"idle_timeout_s": float("inf")}, "idle_timeout_s must be a positive number"),
    ({"idle_outcome": "completed"}, "idle_outcome must be one of declined, waiting_timeout"),
])
def test_entry_settings_are_validated(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(ExperimentError, match=message):
        Experiment("e", [End("end")], **settings).validate()
