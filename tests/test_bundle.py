"""The game bundle the browser worker LOADs (app/pyodide/bundle.py): what goes in, the spec -> module
mapping, the refusals, and that its files alone import and play in a fresh Python."""
from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from app.pyodide.bundle import BundleError, build_bundle, encode_bundle, package_files
from app.commands.demo_experiment import EXPERIMENT as DEMO
from game.loader import GameLoader, load_class
from scenes import End, Experiment, Match
from tests.server_fixtures import ROOT, free_port

GAME_FILE = '''
from game.games.pong import Pong
from helpers import DEFAULTS
from levels.layout import WIDTH


class MyGame(Pong):
    """Pong with this folder's defaults: proves sibling modules and packages travel along."""

    def __init__(self, config=None):
        super().__init__({**DEFAULTS, "width": WIDTH, **(config or {})})
'''


def write_game_folder(folder: Path, game_file: str = "mygame.py") -> Path:
    """A researcher's game folder: the game, a helper module, a package, and things to leave out."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / game_file).write_text(GAME_FILE)
    (folder / "helpers.py").write_text('DEFAULTS = {"max_score": 1, "max_frames": 120}\n')
    (folder / "levels" / "__pycache__").mkdir(parents=True)
    (folder / "levels" / "__init__.py").write_text("")
    (folder / "levels" / "layout.py").write_text("WIDTH = 640\n")
    (folder / "levels" / "__pycache__" / "layout.cpython-311.pyc").write_bytes(b"\0")
    (folder / "levels" / "notes.txt").write_text("not Python")
    (folder / "data").mkdir()                          # no __init__.py: not a package, left out
    (folder / "data" / "stray.py").write_text("raise RuntimeError('must not be bundled')\n")
    (folder / ".hidden.py").write_text("raise RuntimeError('must not be bundled')\n")
    return folder


def experiment(*matches: Match) -> Experiment:
    return Experiment(id="bundle-test", scenes=[*matches, End(id="end", html="<p>bye</p>")])


def pong_match(id: str, game: Any, **options: Any) -> Match:
    return Match(id=id, game=game, humans=("left", "right"), **options)


def bundle_for(exp: Experiment, base_dir: Path | None = None) -> tuple[dict[str, Any], GameLoader]:
    resolve = GameLoader(str(base_dir) if base_dir else None)
    return build_bundle(exp, resolve.absolute), resolve


# ----------------------------------------------------------------------------- contents


def test_the_demo_bundle_has_game_and_netcode_and_maps_module_specs_to_themselves() -> None:
    bundle, _ = bundle_for(DEMO)
    assert set(bundle) == {"files", "paths", "games", "packages", "wheels", "unavailable"}
    expected = {p.relative_to(ROOT).as_posix() for package in ("game", "netcode")
                for p in (ROOT / package).rglob("*.py") if "__pycache__" not in p.parts}
    assert set(bundle["files"]) == expected
    assert bundle["files"]["netcode/client.py"] == (ROOT / "netcode" / "client.py").read_text()
    assert bundle["paths"] == ["."]
    assert bundle["games"] == {"game.games.pong:Pong": "game.games.pong:Pong",
                               "game.games.cooking:Cooking": "game.games.cooking:Cooking"}
    assert bundle["packages"] == [] and bundle["wheels"] == [] and bundle["unavailable"] == {}
    json.dumps(bundle)   # JSON as it is


def test_a_file_game_brings_its_folder_under_user_n(tmp_path: Path) -> None:
    folder = write_game_folder(tmp_path / "study")
    exp = experiment(pong_match("one", "mygame.py:MyGame"),
                     pong_match("two", "mygame.py:MyGame"),
                     pong_match("pong", "game.games.pong:Pong"))
    bundle, resolve = bundle_for(exp, folder)
    spec = resolve.absolute("mygame.py:MyGame")
    assert spec == f"{folder / 'mygame.py'}:MyGame"   # as match_start.game names it
    assert bundle["games"] == {spec: "mygame:MyGame", "game.games.pong:Pong": "game.games.pong:Pong"}
    assert bundle["paths"] == [".", "user/0"]
    user = {path for path in bundle["files"] if path.startswith("user/")}
    assert user == {"user/0/mygame.py", "user/0/helpers.py", "user/0/levels/__init__.py", "user/0/levels/layout.py"}
    assert bundle["files"]["user/0/mygame.py"] == GAME_FILE


def test_games_in_two_folders_get_two_roots(tmp_path: Path) -> None:
    first = write_game_folder(tmp_path / "first")
    second = write_game_folder(tmp_path / "second", game_file="othergame.py")
    exp = experiment(pong_match("a", f"{first}/mygame.py:MyGame"), pong_match("b", f"{second}/othergame.py:MyGame"))
    bundle, _ = bundle_for(exp)
    assert bundle["paths"] == [".", "user/0", "user/1"]
    assert bundle["games"] == {f"{first}/mygame.py:MyGame": "mygame:MyGame",
                               f"{second}/othergame.py:MyGame": "othergame:MyGame"}
    # identical helpers in both folders are harmless (whichever is found first is the same code)
    assert bundle["files"]["user/0/helpers.py"] == bundle["files"]["user/1/helpers.py"]


def test_a_class_loaded_from_a_file_maps_to_its_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = write_game_folder(tmp_path / "classy")
    monkeypatch.setattr(sys, "path", list(sys.path))   # load_class puts the folder on it
    try:
        cls = load_class(f"{folder}/mygame.py:MyGame")   # as the experiment file's own import would
        bundle, resolve = bundle_for(experiment(pong_match("m", cls)))
    finally:
        for name in ("coplay_user_mygame", "helpers", "levels", "levels.layout"):   # what it imported
            sys.modules.pop(name, None)
    assert resolve.absolute(cls) == "coplay_user_mygame:MyGame"
    assert bundle["games"] == {"coplay_user_mygame:MyGame": "mygame:MyGame"}
    assert "user/0/helpers.py" in bundle["files"]


def test_a_stand_alone_installed_module_is_sent_as_one_file(tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "solo_pong.py").write_text("from game.games.pong import Pong as Solo\n")
    (site / "unrelated.py").write_text("X = 1\n")
    monkeypatch.syspath_prepend(str(site))
    bundle, _ = bundle_for(experiment(pong_match("m", "solo_pong:Solo")))
    assert bundle["games"] == {"solo_pong:Solo": "solo_pong:Solo"}
    assert bundle["paths"] == [".", "user/0"]
    assert [p for p in bundle["files"] if p.startswith("user/")] == ["user/0/solo_pong.py"]


def test_the_encoding_is_stable_and_its_etag_follows_the_content() -> None:
    bundle, _ = bundle_for(DEMO)
    first, again = encode_bundle(bundle), encode_bundle(json.loads(json.dumps(bundle)))
    assert first == again
    assert json.loads(first.body) == bundle
    assert gzip.decompress(first.gzipped) == first.body and len(first.gzipped) < len(first.body) / 2
    changed = encode_bundle({**bundle, "packages": ["numpy"]})
    assert changed.etag != first.etag


# ----------------------------------------------------------------------------- refusals


@pytest.mark.parametrize("spec, message", [
    ("json.decoder:JSONDecoder", "part of a package"),
    ("email:message_from_string", "part of a package"),
    ("no_such_module_xyz:Game", "cannot find module"),
    ("_json:make_scanner", "not a pure-Python source file"),
    ("game.games.nope:Game", "no module game.games.nope"),
])
def test_what_cannot_reach_the_browser_is_refused_clearly(spec: str, message: str) -> None:
    with pytest.raises(BundleError, match=message) as info:
        bundle_for(experiment(pong_match("scene-x", spec)))
    assert "match scene 'scene-x'" in str(info.value)


def test_a_game_file_named_like_a_coplay_package_is_refused(tmp_path: Path) -> None:
    (tmp_path / "netcode.py").write_text("class G: pass\n")
    with pytest.raises(BundleError, match="hide coplay's own 'netcode' package"):
        bundle_for(experiment(pong_match("m", f"{tmp_path}/netcode.py:G")))


def test_two_folders_with_different_modules_of_one_name_are_refused(tmp_path: Path) -> None:
    first = write_game_folder(tmp_path / "first")
    second = write_game_folder(tmp_path / "second", game_file="othergame.py")
    (second / "helpers.py").write_text('DEFAULTS = {"max_score": 2}\n')
    exp = experiment(pong_match("a", f"{first}/mygame.py:MyGame"), pong_match("b", f"{second}/othergame.py:MyGame"))
    with pytest.raises(BundleError, match="module 'helpers' exists both in .* rename one"):
        bundle_for(exp)


def test_a_game_defined_in_the_experiment_file_is_refused() -> None:
    game = type("InlineGame", (), {"__module__": "coplay_experiment_study"})
    with pytest.raises(BundleError, match="defined in the experiment file.*FILE.py:InlineGame"):
        bundle_for(experiment(pong_match("m", game)))


def test_the_server_refuses_to_start_with_a_game_it_cannot_send(tmp_path: Path) -> None:
    """A module inside a package from elsewhere: the server loads it, the browser could not."""
    site = tmp_path / "site"
    (site / "extpkg").mkdir(parents=True)
    (site / "extpkg" / "__init__.py").write_text("")
    (site / "extpkg" / "games.py").write_text("from game.games.pong import Pong as ExtPong\n")
    experiment_file = tmp_path / "experiment.py"
    experiment_file.write_text(textwrap.dedent('''
        from scenes import End, Experiment, Match
        EXPERIMENT = Experiment(id="ext", scenes=[
            Match(id="pong", game="extpkg.games:ExtPong", humans=("left", "right")),
            End(id="end", html="<p>bye</p>"),
        ])
    '''))
    done = subprocess.run(
        [sys.executable, "-m", "app.cli", "serve", str(experiment_file), "--port", str(free_port()),
         "--data", str(tmp_path / "data"), "--async-mode", "threading"],
        cwd=ROOT, capture_output=True, text=True, timeout=60, env={**os.environ, "PYTHONPATH": f"{site}:{ROOT}"},
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert "match scene 'pong'" in done.stderr and "part of a package" in done.stderr
    assert "Traceback" not in done.stderr


# ----------------------------------------------------------------------------- in a fresh Python

# Runs with only the standard library and the bundle folder's entries on sys.path, the way
# the worker sets up Pyodide: write files, put the root and `paths` on sys.path, import.
LOADER = r'''
import importlib, json, os, sys
root = sys.argv[1]
bundle = json.load(open(sys.argv[2]))
sys.path[:0] = [os.path.normpath(os.path.join(root, p)) for p in bundle["paths"]]
for name in sorted(p[:-3].replace("/", ".").removesuffix(".__init__") for p in bundle["files"]
                   if p.startswith(("game/", "netcode/"))):
    importlib.import_module(name)
games = {}
for spec, target in bundle["games"].items():
    module_name, _, class_name = target.rpartition(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    env = cls({"max_frames": 5})
    env.reset(3)
    for _ in range(5):
        result = env.step({p: 0 for p in env.players})
    from netcode.client import MatchClient
    client = MatchClient({"match": "m", "episode": 0, "seed": 1, "seat": "s0", "players": [env.players[0]],
                          "peers": {"s1": [env.players[1]]}, "config": {}, "fps": 60}, cls, lambda: 0.0)
    client.tick({env.players[0]: 0})
    games[spec] = {"module": cls.__module__, "file": sys.modules[cls.__module__].__file__,
                   "truncated": result["truncated"], "packets": len(client.outbox())}
outside = sorted({name for name, m in sys.modules.items()
                  if (getattr(m, "__file__", None) or "").startswith(sys.argv[3])})
print(json.dumps({"games": games, "game_file": sys.modules["game"].__file__, "outside": outside,
                  "has_site": "site" in sys.modules}))
'''


def test_the_bundle_alone_imports_and_plays_in_a_fresh_python(tmp_path: Path) -> None:
    folder = write_game_folder(tmp_path / "study")
    exp = experiment(pong_match("mine", "mygame.py:MyGame"), pong_match("pong", "game.games.pong:Pong"))
    bundle, resolve = bundle_for(exp, folder)
    root = tmp_path / "pyodide-fs" / "home" / "pyodide" / "coplay"   # stands in for Pyodide's file system
    for relative, text in bundle["files"].items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    bundle_file = tmp_path / "bundle.json"
    bundle_file.write_text(json.dumps(bundle))
    # -I: no PYTHON* variables, no user site, no script folder; -S: no site-packages. Run from
    # elsewhere so neither this checkout nor the game's folder can be found.
    done = subprocess.run([sys.executable, "-I", "-S", "-c", LOADER, str(root), str(bundle_file), str(ROOT)],
                          cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert not report["has_site"]
    assert report["game_file"] == str(root / "game" / "__init__.py")
    assert report["outside"] == [], "imported from the checkout instead of the bundle"
    mine = report["games"][resolve.absolute("mygame.py:MyGame")]
    assert mine["module"] == "mygame" and mine["file"] == str(root / "user" / "0" / "mygame.py")
    assert mine["truncated"] and mine["packets"] >= 1
    pong = report["games"]["game.games.pong:Pong"]
    assert pong["module"] == "game.games.pong" and pong["file"] == str(root / "game" / "games" / "pong.py")


def test_package_files_is_what_pyodide_node_uses() -> None:
    from app.pyodide import node as pyodide_node

    assert pyodide_node.package_files is package_files
    assert package_files() == bundle_for(DEMO)[0]["files"]
