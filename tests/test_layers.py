"""DESIGN.md's import table, enforced: every import of every .py file, read with `ast`.

- game/ imports the stdlib and game only; netcode/ the stdlib, game and netcode. Both run in
  Pyodide, so no third-party imports, except that game/adapters/ may import its library lazily
  (inside a function).
- scenes/ imports the stdlib, game, netcode and scenes, plus markdown-it-py (a scene's Markdown text is
  rendered by it; no I/O library ever belongs in an experiment definition).
- app/ arrows point down (web -> live -> data; analysis, participant, loadtest, pyodide and
  commands beside; app/relay, the relay processes, above web and live): nothing in app/live imports web,
  analysis, loadtest, participant, commands or relay; app/relay imports none of analysis, loadtest,
  participant or commands;
  nothing in app/data imports any of those or live; only app/commands and app/cli.py import
  app.commands.

Imports inside functions count like any other (that is where a lazy import hides).
"""
from __future__ import annotations

import ast
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SKIPPED_DIRS = {"node_modules", "__pycache__"}
STDLIB = frozenset(sys.stdlib_module_names)


@dataclass(frozen=True)
class Import:
    """One imported name (`X.y` for `from X import y`: y may be a module), and where it stands."""

    module: str
    line: int
    in_function: bool


def module_name(path: Path, root: Path) -> str:
    """The dotted module a file under `root` defines (a package's __init__ is the package)."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path, root: Path) -> list[Import]:
    """Every import in the file, relative ones made absolute."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    name = module_name(path, root)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: list[Import] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        if isinstance(node, ast.Import):
            found.extend(Import(alias.name, node.lineno, in_function) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)] if package else []
                base = ".".join([*anchor, *([base] if base else [])])
            found.extend(Import(f"{base}.{alias.name}" if alias.name != "*" else base, node.lineno, in_function)
                         for alias in node.names)
        inside = in_function or isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
        for child in ast.iter_child_nodes(node):
            visit(child, inside)

    visit(tree, False)
    return found


def _within(module: str, packages: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in packages)


def _is_stdlib(module: str) -> bool:
    return module.split(".")[0] in STDLIB


APP_SIDE = ("app.web", "app.analysis", "app.loadtest", "app.participant", "app.commands", "app.agent",
            "app.relay")
GAME_RULE = "game/ imports only the stdlib and game (game/adapters/ may import their library inside a function)"
NETCODE_RULE = "netcode/ imports only the stdlib, game and netcode"
SCENES_RULE = "scenes/ imports only the stdlib, game, netcode, scenes and markdown_it"
SCENES_LIBRARIES = ("markdown_it",)
LIVE_RULE = ("app/live must not import app.web, app.analysis, app.loadtest, app.participant, app.commands, "
             "app.agent or app.relay")
DATA_RULE = ("app/data must not import app.web, app.live, app.analysis, app.loadtest, app.participant, app.commands, "
             "app.agent or app.relay")
RELAY_RULE = "app/relay must not import app.analysis, app.loadtest, app.participant or app.commands"
COMMANDS_RULE = "only app/commands and app/cli.py import app.commands"


def broken_rule(file: str, imp: Import) -> str | None:
    """The rule this import breaks in `file` (a path relative to the root, with /), or None."""
    module = imp.module
    if file.startswith("game/"):
        if _is_stdlib(module) or _within(module, ("game",)):
            return None
        lazy_library = file.startswith("game/adapters/") and imp.in_function
        return None if lazy_library and not _within(module, ("app", "netcode", "scenes")) else GAME_RULE
    if file.startswith("netcode/"):
        return None if _is_stdlib(module) or _within(module, ("game", "netcode")) else NETCODE_RULE
    if file.startswith("scenes/"):
        return None if _is_stdlib(module) or _within(module, ("game", "netcode", "scenes", *SCENES_LIBRARIES)) else SCENES_RULE
    if file.startswith("app/live/") and _within(module, APP_SIDE):
        return LIVE_RULE
    if file.startswith("app/data/") and _within(module, ("app.live", *APP_SIDE)):
        return DATA_RULE
    if file.startswith("app/relay/") and _within(module, ("app.analysis", "app.loadtest", "app.participant",
                                                          "app.commands")):
        return RELAY_RULE
    if (_within(module, ("app.commands",)) and file.startswith("app/")
            and not file.startswith("app/commands/") and file != "app/cli.py"):
        return COMMANDS_RULE
    return None


def layer_violations(root: Path) -> list[str]:
    """`file:line imports module: rule` for every import under `root` that breaks the table."""
    problems: list[str] = []
    for path in sorted(root.rglob("*.py")):
        relative = path.relative_to(root)
        if any(part in SKIPPED_DIRS or part.startswith(".") for part in relative.parts):
            continue
        file = relative.as_posix()
        reported = set()
        for imp in imports_of(path, root):
            rule = broken_rule(file, imp)
            if rule and (imp.line, rule) not in reported:  # one line per statement and rule
                reported.add((imp.line, rule))
                where = " (inside a function)" if imp.in_function else ""
                problems.append(f"{file}:{imp.line} imports {imp.module}{where}: {rule}")
    return problems


def test_the_tree_keeps_the_import_table() -> None:
    problems = layer_violations(ROOT)
    assert not problems, "imports against DESIGN.md's layout table:\n" + "\n".join(problems)


# ---------------------------------------------------------------- the checker itself, on a fake tree

FAKE_TREE = {
    "game/__init__.py": "",
    "game/good.py": "from __future__ import annotations\nimport math\nfrom game.rng import Rng\nfrom . import spaces\n",
    "game/bad.py": "import json\n\n\ndef f():\n    import numpy\n",
    "game/reaches_up.py": "from netcode import p2p\n",
    "game/adapters/__init__.py": "",
    "game/adapters/gym.py": "def make():\n    import gymnasium\n    return gymnasium\n",
    "game/adapters/eager.py": "import gymnasium\n",
    "netcode/__init__.py": "",
    "netcode/good.py": "import heapq\nfrom game.spaces import Space\nfrom .errors import NetcodeError\n",
    "netcode/bad.py": "from app.live import hub\n",
    "netcode/lazy.py": "def f():\n    import requests\n",
    "scenes/__init__.py": "",
    "scenes/good.py": "import re\nfrom netcode.config import SessionConfig\nfrom game.games import Pong\nfrom markdown_it import MarkdownIt\n",
    "scenes/bad.py": "import flask\n",
    "app/__init__.py": "",
    "app/live/__init__.py": "",
    "app/live/good.py": "from app.data import store\nfrom game import spaces\nimport flask\n",
    "app/live/bad.py": "from app.web.server import create_app\n\n\ndef g():\n    from ..analysis import replay\n",
    "app/live/side.py": "from app import participant\n",
    "app/data/__init__.py": "",
    "app/data/bad.py": "import app.live.hub\n",
    "app/data/good.py": "import sqlite3\n",
    "app/relay/__init__.py": "",
    "app/relay/good.py": "from app.live import hub\nfrom app.web import match_channel\nimport redis\n",
    "app/relay/bad.py": "from app.participant import headless\n",
    "app/web/server.py": "from app.live import hub\nfrom app.analysis import replay\nfrom app.data import store\n",
    "app/web/bad.py": "from app.commands import serve\n",
    "app/commands/__init__.py": "",
    "app/commands/serve.py": "from app.commands import demo_experiment\nfrom app.web import server\n",
    "app/cli.py": "from app.commands import serve\n",
    "tests/test_x.py": "import numpy\nfrom app.commands import serve\n",
}


@pytest.fixture
def fake_tree(tmp_path: Path) -> Path:
    for name, text in FAKE_TREE.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return tmp_path


def test_the_checker_names_every_broken_rule_with_file_and_line(fake_tree: Path) -> None:
    assert layer_violations(fake_tree) == [
        f"app/data/bad.py:1 imports app.live.hub: {DATA_RULE}",
        f"app/live/bad.py:1 imports app.web.server.create_app: {LIVE_RULE}",
        f"app/live/bad.py:5 imports app.analysis.replay (inside a function): {LIVE_RULE}",
        f"app/live/side.py:1 imports app.participant: {LIVE_RULE}",
        f"app/relay/bad.py:1 imports app.participant.headless: {RELAY_RULE}",
        f"app/web/bad.py:1 imports app.commands.serve: {COMMANDS_RULE}",
        f"game/adapters/eager.py:1 imports gymnasium: {GAME_RULE}",
        f"game/bad.py:5 imports numpy (inside a function): {GAME_RULE}",
        f"game/reaches_up.py:1 imports netcode.p2p: {GAME_RULE}",
        f"netcode/bad.py:1 imports app.live.hub: {NETCODE_RULE}",
        f"netcode/lazy.py:2 imports requests (inside a function): {NETCODE_RULE}",
        f"scenes/bad.py:1 imports flask: {SCENES_RULE}",
    ]


def test_relative_imports_resolve_against_the_package(fake_tree: Path) -> None:
    modules = [imp.module for imp in imports_of(fake_tree / "app/live/bad.py", fake_tree)]
    assert modules == ["app.web.server.create_app", "app.analysis.replay"]
    modules = [imp.module for imp in imports_of(fake_tree / "game/good.py", fake_tree)]
    assert modules == ["__future__.annotations", "math", "game.rng.Rng", "game.spaces"]
