"""`coplay packages fetch EXPERIMENT.py`: download the pure-Python wheels the experiment's matches list.

Every name in a Match's `packages=` (and what an adapter game needs, app/pyodide/bundle.py's
ADAPTER_PACKAGES) that has no wheel in the package folder yet is downloaded from PyPI with
`pip download --only-binary=:all: --platform any --python-version 3.12 --no-deps`: the newest
pure-Python wheel for Pyodide 0.27.7's Python. Dependencies are not followed: list each
package a game imports. Packages with compiled code (numpy, ...) have no such wheel; the
command says which file of the Pyodide distribution to place in the folder instead, and exits 1.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from app.pyodide.bundle import ADAPTER_PACKAGES
from app.pyodide.packages import PackageError, PackageSource, folder_wheels, normalize, resolve_packages
from app.web.assets import package_source
from app.commands.serve import load_experiment

PYTHON_VERSION = "3.12"   # Pyodide 0.27.7's


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("packages", help="manage the wheels of Match(packages=...)",
                                   description="Manage the package folder the server serves browsers from.")
    actions = parser.add_subparsers(dest="action", required=True)
    fetch = actions.add_parser(
        "fetch", help="download the pure-Python wheels an experiment lists",
        description="Download from PyPI the pure-Python wheel of every package the experiment's matches list "
                    "(packages=) that the package folder lacks; dependencies are not followed.")
    fetch.add_argument("experiment", metavar="EXPERIMENT.py", help="a Python file defining one Experiment")
    fetch.add_argument("--packages-dir", default=None, metavar="DIR",
                       help="the package folder (default: packages/ beside the experiment file)")
    fetch.set_defaults(func=run_fetch)


def listed_packages(experiment: object) -> list[str]:
    """Every package the experiment's matches need in the browser, in order, once each."""
    names: list[str] = []
    for scene in experiment.match_scenes():  # type: ignore[attr-defined]
        spec = scene.game_spec
        for name in [*ADAPTER_PACKAGES.get(spec.partition(":")[0], ()), *scene.packages]:
            if normalize(name) not in map(normalize, names):
                names.append(name)
    return names


def run_fetch(args: argparse.Namespace) -> int:
    experiment = load_experiment(args.experiment)
    source = package_source(args.packages_dir, args.experiment, "/")
    assert source.folder is not None
    names = listed_packages(experiment)
    if not names:
        print(f"coplay packages: {args.experiment} lists no packages; nothing to fetch")
        return 0
    source.folder.mkdir(parents=True, exist_ok=True)
    failed = 0
    for name in names:
        if normalize(name) in folder_wheels(source.folder):
            print(f"  {name}: already in {source.folder}")
            continue
        problem = _not_on_pypi(name, source)
        if problem is None:
            problem = _download(name, source.folder)
        if problem:
            failed += 1
            print(f"  {name}: {problem}", file=sys.stderr)
        else:
            print(f"  {name}: {next(iter(folder_wheels(source.folder)[normalize(name)])).name}")
    if failed:
        print(f"coplay packages: {failed} of {len(names)} package(s) could not be fetched (see above)", file=sys.stderr)
        return 1
    print(f"coplay packages: all {len(names)} package(s) are in {source.folder}")
    return 0


def _not_on_pypi(name: str, source: PackageSource) -> str | None:
    """Why a package of Pyodide's own index with compiled code cannot come from PyPI, or None."""
    try:
        resolve_packages([name], PackageSource(folder=source.folder, pyodide_folder=source.pyodide_folder))
    except PackageError as error:
        return str(error) if "compiled code" in str(error) else None
    return None


def _download(name: str, folder: Path) -> str | None:
    command = [sys.executable, "-m", "pip", "download", "--only-binary=:all:", "--platform", "any",
               "--python-version", PYTHON_VERSION, "--no-deps", "--disable-pip-version-check", "--quiet",
               "--dest", str(folder), name]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0 or normalize(name) not in folder_wheels(folder):
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        return ("no pure-Python wheel for Python 3.12 could be downloaded with pip: " + " / ".join(tail) +
                "; place a …-py3-none-any.whl of it in the folder yourself")
    return None
