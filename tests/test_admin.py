"""The admin token: generated once (0600) and reused, or taken from COPLAY_ADMIN_TOKEN."""
from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from app.web.admin import ENV_VAR, AdminTokenError, admin_token, generated_secret, is_admin, token_location
from app.web.server import secret_key


@pytest.fixture(autouse=True)
def no_env_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_VAR, raising=False)


def test_a_token_is_generated_once_private_and_reused(tmp_path: Path) -> None:
    token = admin_token(str(tmp_path))
    path = tmp_path / "admin_token"
    assert path.read_text() == token and len(token) >= 40
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert admin_token(str(tmp_path)) == token
    other = tmp_path / "other"
    other.mkdir()
    assert admin_token(str(other)) != token


def test_the_environment_overrides_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_VAR, "  a-long-enough-admin-token  ")
    assert admin_token(str(tmp_path)) == "a-long-enough-admin-token"
    assert not (tmp_path / "admin_token").exists()
    assert token_location(str(tmp_path)) == f"the {ENV_VAR} environment variable"


def test_a_short_environment_token_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_VAR, "short")
    with pytest.raises(AdminTokenError, match=f"{ENV_VAR} must be at least 16 characters long"):
        admin_token(str(tmp_path))


def test_compare(tmp_path: Path) -> None:
    token = admin_token(str(tmp_path))
    assert is_admin(token, token)
    assert not is_admin(token[:-1], token)
    assert not is_admin(token + "x", token)
    assert not is_admin("", token) and not is_admin(None, token)
    assert not is_admin("é" * 5, token)
    assert token_location(str(tmp_path)).startswith(str(tmp_path / "admin_token"))


def test_the_session_key_uses_the_same_helper_and_keeps_an_existing_file(tmp_path: Path) -> None:
    (tmp_path / "secret_key").write_text("kept\n")
    assert secret_key(str(tmp_path)) == "kept"
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    key = secret_key(str(fresh))
    assert len(key) == 64 and stat.S_IMODE(os.stat(fresh / "secret_key").st_mode) == 0o600
    assert generated_secret(str(fresh / "secret_key")) == key


def test_an_empty_environment_variable_counts_as_unset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_VAR, "  ")
    token = admin_token(str(tmp_path))
    assert (tmp_path / "admin_token").read_text() == token
    assert token_location(str(tmp_path)) == f"{tmp_path / 'admin_token'} (or set {ENV_VAR})"


def test_serve_refuses_a_short_environment_token_before_starting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    from app.cli import main

    monkeypatch.setenv(ENV_VAR, "too-short")
    assert main(["demo", "--data", str(tmp_path), "--async-mode", "threading", "--port", "1"]) == 2
    assert f"{ENV_VAR} must be at least 16 characters long (it has 9)" in capsys.readouterr().err


def test_an_empty_secret_file_is_refused_with_a_way_out(tmp_path: Path) -> None:
    (tmp_path / "admin_token").write_text("")
    with pytest.raises(AdminTokenError, match="is empty .*; delete it to generate a new one"):
        admin_token(str(tmp_path))
