"""Shared fixtures."""
from __future__ import annotations

import os
from typing import Any, Iterator

import pytest

from app.pyodide.node import PyodideNode, node_executable
from app.loadtest.chromium import CHROMIUM, CHROMIUM_FLAGS


@pytest.fixture(scope="session")
def pyodide() -> Iterator[PyodideNode]:
    """One Pyodide (under Node) for the whole test session, with `game` and `netcode` loaded.

    Skips when `node` is missing; fails with the setup hint when node_modules/pyodide is.
    """
    if node_executable() is None:
        pytest.skip("node is not on PATH, so Pyodide cannot run")
    with PyodideNode() as py:
        yield py


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """One Chromium for the session; a missing Chromium fails (scripts/setup installs it), never skips."""
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: run scripts/setup, which installs Debian's chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        yield launched
        launched.close()
