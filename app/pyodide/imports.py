"""What a module of the game bundle imports that the browser worker will not have.

The worker's Pyodide has the standard library and the bundle's files, nothing else (packages
such as numpy come only through a Match's `packages=`). `missing_imports` follows the
module-level imports of a module through the bundle's files and lists the top-level names
found nowhere, so `coplay play` can say so before a browser fails with "No module named ...".
Imports inside functions, `try` or `if` blocks are taken as optional and not followed.
"""
from __future__ import annotations

import ast
import sys
from typing import Any

PYODIDE_MODULES = frozenset({"js", "pyodide", "pyodide_js", "_pyodide", "micropip"})


def _module_file(files: dict[str, str], paths: list[str], name: str) -> str | None:
    """The bundle file that `import name` finds first along `paths`, or None."""
    relative = name.replace(".", "/")
    for root in paths:
        prefix = "" if root in (".", "") else root.rstrip("/") + "/"
        for candidate in (f"{prefix}{relative}.py", f"{prefix}{relative}/__init__.py"):
            if candidate in files:
                return candidate
    return None


def _imported_names(source: str, module: str, is_package: bool) -> list[str]:
    """The absolute module names `source`'s module-level import statements import."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    names: list[str] = []
    package = module if is_package else module.rpartition(".")[0]
    for node in tree.body:
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".") if package else []
                parts = parts[: len(parts) - (node.level - 1)] if node.level > 1 else parts
                base = ".".join([*parts, base] if base else parts)
            if base:
                names.append(base)
                names.extend(f"{base}.{alias.name}" for alias in node.names)
    return names


def missing_imports(bundle: dict[str, Any], module: str) -> dict[str, str]:
    """{top-level name: the bundle module importing it} for what `module`'s imports need and the worker lacks."""
    files, paths = bundle["files"], bundle["paths"]
    missing: dict[str, str] = {}
    seen: set[str] = set()
    todo = [module]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        path = _module_file(files, paths, name)
        if path is None:
            continue
        for imported in _imported_names(files[path], name, path.endswith("__init__.py")):
            top = imported.partition(".")[0]
            if _module_file(files, paths, imported) is not None or _module_file(files, paths, top) is not None:
                todo.append(imported)
            elif top not in sys.stdlib_module_names and top not in PYODIDE_MODULES:
                missing.setdefault(top, name)
    return missing
