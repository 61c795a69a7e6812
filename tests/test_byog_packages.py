"""Issue 13, extra packages from the server itself: `Match(packages=[...])` resolved at server start against
the package folder, served by coplay, installed in the worker before play, and `coplay packages fetch`.

The browser proof downloads a real pure-Python wheel from PyPI (itsdangerous, ~16 KiB, which the server's
CPython has too, so its re-simulation agrees) with `coplay packages fetch` into a temporary folder; the page
then gets it from the coplay server only: every request Chromium makes is checked to go to 127.0.0.1."""
from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import urlparse

import pytest
import requests

from app.analysis.replay import replay
from app.cli import main
from app.pyodide.node import pyodide_dir
from app.pyodide.packages import PackageError, PackageSource, resolve_packages, served_file
from tests.browser_fixtures import Participant, open_participant
from scenes import ExperimentError, Match
from tests.server_fixtures import ROOT, Server, pid

GAME = '''
from itsdangerous.encoding import base64_encode

from game.games.pong import Pong


class SignedPong(Pong):
    """Pong for one player whose state carries a value computed by the itsdangerous package."""

    players = ("left",)

    def get_state(self):
        return {**super().get_state(), "stamp": base64_encode(str(self.frame // 10)).decode()}
'''

EXPERIMENT = '''
from scenes import End, Experiment, Match

EXPERIMENT = Experiment(id="packages", scenes=[
    Match(id="solo", game="signed_pong.py:SignedPong", config={"max_score": 1000, "max_frames": 240},
          humans=("left",), fps=60, __PACKAGES__),
    End(id="end", html="<p>Thanks</p>", completion_code="PACKAGES"),
])
'''


def write_study(folder: Path, packages: str = 'packages=["itsdangerous"]') -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "signed_pong.py").write_text(GAME)
    (folder / "experiment.py").write_text(EXPERIMENT.replace("__PACKAGES__", packages))
    return folder / "experiment.py"


def make_wheel(folder: Path, name: str, platform: str = "any") -> Path:
    """A real (tiny) wheel: one module and its dist-info."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}-1.0-py3-none-{platform}.whl"
    with zipfile.ZipFile(path, "w") as wheel:
        wheel.writestr(f"{name}.py", "VALUE = 42\n")
        info = f"{name}-1.0.dist-info"
        wheel.writestr(f"{info}/METADATA", f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
        wheel.writestr(f"{info}/WHEEL", "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        wheel.writestr(f"{info}/RECORD", "")
    return path


# ----------------------------------------------------------------------------- resolution at start


def test_a_wheel_in_the_folder_is_served_under_its_digest(tmp_path: Path) -> None:
    path = make_wheel(tmp_path, "tiny_pkg")
    from_index, wheels = resolve_packages(["Tiny.Pkg"], PackageSource(folder=tmp_path))
    assert from_index == [] and [w.path for w in wheels] == [path]
    entry = wheels[0].entry()
    assert entry["url"] == f"/static/packages/{entry['sha256'][:16]}/{path.name}"
    assert served_file([entry], tmp_path, entry["sha256"][:16], path.name) == path
    assert served_file([entry], tmp_path, "0" * 16, path.name) is None   # not what the bundle names
    path.write_bytes(path.read_bytes() + b"changed")
    assert served_file([entry], tmp_path, entry["sha256"][:16], path.name) is None   # content changed since


def test_packages_that_cannot_be_served_are_refused_with_the_fix(tmp_path: Path) -> None:
    with pytest.raises(PackageError, match=r"no wheel of it in .*coplay packages fetch EXPERIMENT.py"):
        resolve_packages(["nothing-here"], PackageSource(folder=tmp_path))
    make_wheel(tmp_path, "native", platform="linux_x86_64")
    with pytest.raises(PackageError, match=r"built for linux_x86_64, which a browser cannot run"):
        resolve_packages(["native"], PackageSource(folder=tmp_path))
    with pytest.raises(PackageError, match=r"numpy-[\d.]+-cp312-cp312-pyodide_2024_0_wasm32\.whl.*PyPI does not host"):
        resolve_packages(["numpy"], PackageSource(folder=tmp_path, pyodide_folder=pyodide_dir()))
    # Pyodide's own index serves it when the page loads Pyodide from elsewhere
    assert resolve_packages(["numpy"], PackageSource(tmp_path, pyodide_dir(), remote_index=True)) == (["numpy"], [])


def test_the_server_does_not_start_when_a_package_cannot_be_served(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "app.cli", "serve", str(write_study(tmp_path)), "--port", "0",
                           "--data", str(tmp_path / "data"), "--async-mode", "threading"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    assert "package 'itsdangerous' cannot be served to browsers" in done.stderr
    assert f"no wheel of it in {tmp_path / 'packages'}" in done.stderr and "coplay packages fetch" in done.stderr


# ----------------------------------------------------------------------------- fetch, serve, install, play


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The study folder with packages/ filled by `coplay packages fetch` (from PyPI)."""
    experiment = write_study(tmp_path_factory.mktemp("study"))
    assert main(["packages", "fetch", str(experiment)]) == 0, "pip could not download itsdangerous from PyPI"
    return experiment


def test_fetch_downloads_the_pure_python_wheel_once(study: Path, capsys: pytest.CaptureFixture[str]) -> None:
    [wheel] = (study.parent / "packages").glob("itsdangerous-*-py3-none-any.whl")
    assert zipfile.ZipFile(wheel).getinfo("itsdangerous/encoding.py").file_size > 0
    assert main(["packages", "fetch", str(study)]) == 0
    assert "itsdangerous: already in" in capsys.readouterr().out


@pytest.fixture(scope="module")
def server(study: Path) -> Iterator[Server]:
    running = Server(["serve", str(study)], study.parent / "data")
    yield running
    running.stop()


def local_requests_only(participant: Participant) -> list[str]:
    """Every URL the page and its worker request; anything not on 127.0.0.1 is aborted."""
    seen: list[str] = []

    def route(request_route: Any) -> None:
        seen.append(request_route.request.url)
        if urlparse(request_route.request.url).hostname == "127.0.0.1":
            request_route.continue_()
        else:
            request_route.abort()

    participant.context.route("**/*", route)
    return seen


def test_the_wheel_is_served_immutable_from_the_url_the_bundle_names(server: Server) -> None:
    [entry] = requests.get(server.url + "/bundle.json", timeout=30).json()["wheels"]
    assert entry["name"] == "itsdangerous"
    response = requests.get(server.url + entry["url"], timeout=30)
    assert response.status_code == 200 and response.headers["Content-Type"] == "application/zip"
    assert "immutable" in response.headers["Cache-Control"] and "max-age=31536000" in response.headers["Cache-Control"]
    assert requests.get(server.url + entry["url"].replace(entry["sha256"][:16], "0" * 16), timeout=30).status_code == 404


def test_a_game_uses_a_package_installed_in_the_worker_from_the_coplay_server(browser: Any, server: Server) -> None:
    page = open_participant(browser, "about:blank", "")
    seen = local_requests_only(page)
    try:
        page.page.goto(f"{server.url}/?PROLIFIC_PID={pid()}&autopilot=1")
        state = page.wait_for(lambda s: s.get("scene", {}).get("kind") == "end", 150, "the end page")
        assert state["worker"]["error"] is None and state["match"]["desyncs"] == 0
        wheels = [url for url in seen if "/static/packages/" in url]
        assert len(wheels) == 1 and wheels[0].endswith(".whl") and "itsdangerous-" in wheels[0]
        assert all(urlparse(url).hostname == "127.0.0.1" for url in seen if not url.startswith("about:"))
        [match] = {report["match"] for report in state["match"]["checksums"]}
        replayed = replay(str(server.data_dir / "packages" / "recordings" / f"{match}.jsonl"))
        assert replayed.verdict == "ok" and replayed.checked > 10 and not replayed.client_mismatches, replayed
        assert page.console_errors == []
    finally:
        page.close()


def test_a_game_importing_an_unlisted_package_names_it_and_the_fix_in_the_page(browser: Any, study: Path) -> None:
    """Without packages= the import fails in the page; the error says which package and what to do."""
    experiment = write_study(study.parent.parent / "unlisted", packages="episodes=1")
    server = Server(["serve", str(experiment)], experiment.parent / "data")
    page = open_participant(browser, server.url, f"PROLIFIC_PID={pid()}&autopilot=1")
    try:
        failed = page.wait_for(lambda s: s.get("worker", {}).get("error"), 120, "the worker error")
        error = failed["worker"]["error"]
        assert "No module named 'itsdangerous'" in error
        assert "The game imports itsdangerous, which is not installed in the browser" in error
        assert "packages=[...]" in error and "coplay packages fetch" in error
    finally:
        page.close()
        server.stop()


def test_a_package_name_with_a_version_is_refused_at_load() -> None:
    scene = Match(id="m", game="game.games.pong:Pong", humans=("left", "right"), packages=["numpy>=2"])
    with pytest.raises(ExperimentError, match=r"packages: 'numpy>=2' is not a package name"):
        scene.check()
