"""Shared fixtures."""
from __future__ import annotations

from typing import Iterator

import pytest

from app.pyodide_node import PyodideNode, node_executable


@pytest.fixture(scope="session")
def pyodide() -> Iterator[PyodideNode]:
    """One Pyodide (under Node) for the whole test session, with `game` and `netcode` loaded.

    Skips when `node` is missing; fails with the setup hint when node_modules/pyodide is.
    """
    if node_executable() is None:
        pytest.skip("node is not on PATH, so Pyodide cannot run")
    with PyodideNode() as py:
        yield py
