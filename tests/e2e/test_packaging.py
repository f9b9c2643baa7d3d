"""Honest packaging: every third-party package roar imports is declared, the version is written once, and
``pip install .`` into a fresh virtual environment gives working commands."""

import ast
import os
import re
import subprocess
import sys
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest
import tomllib

from conftest import REPO

PROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]


def name_of(requirement: str) -> str:
    """The normalized distribution name of a requirement string (``mkdocstrings[python]>=0.26`` -> mkdocstrings)."""
    return re.sub(r"[-_.]+", "-", re.match(r"[A-Za-z0-9_.-]+", requirement).group(0)).lower()


def imported_modules(folder: Path) -> set:
    """The top-level names every module under ``folder`` imports (at module level or inside functions)."""
    found = set()
    for path in folder.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
    return found


def test_every_imported_third_party_package_is_declared():
    """scipy and Pillow were imported and not declared: a fresh ``pip install`` then failed at the first import."""
    core = {name_of(r) for r in PROJECT["dependencies"]}
    extras = {name_of(r) for reqs in PROJECT["optional-dependencies"].values() for r in reqs}
    owners = packages_distributions()
    ours = {"roar", "hydra_plugins", "conftest"}
    third = imported_modules(REPO / "src") - set(sys.stdlib_module_names) - ours
    undeclared = {}
    for module in sorted(third):
        dists = {name_of(d) for d in owners.get(module, [])}
        if not dists & (core | extras):
            undeclared[module] = sorted(dists)
    assert undeclared == {}
    optional = {m for m in third if {name_of(d) for d in owners.get(m, [])} & (extras - core)}
    assert optional == {"pytorch_grad_cam"}  # the one optional import: the cam extra, imported on use only


def test_the_version_is_written_once():
    import roar

    assert roar.__version__ == PROJECT["version"]
    assert "version" not in (REPO / "CITATION.cff").read_text().split("references:")[0].replace("cff-version", "")


@pytest.mark.slow
def test_pip_install_into_a_fresh_environment_gives_working_commands(tmp_path):
    """``pip install .`` of a copy of the project into a new venv (its dependencies, pip and setuptools seen through
    this environment's site-packages, so nothing is downloaded), then the installed ``roar-train --help`` runs from
    the new venv's own copy."""
    import shutil
    import site

    project = tmp_path / "project"
    for tree in ("src", "conf"):
        shutil.copytree(REPO / tree, project / tree, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    for name in ("pyproject.toml", "setup.py", "README.md", "LICENSE"):
        shutil.copy(REPO / name, project / name)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    purelib = next(venv.glob("lib/python*/site-packages"))
    # the dependencies (and pip and setuptools themselves) from this environment, after the new venv's own folder
    (purelib / "_deps.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    out = subprocess.run(
        [
            str(venv / "bin" / "python"),
            "-m",
            "pip",
            "install",
            "-q",
            "--no-build-isolation",
            "--no-index",
            str(project),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    helped = subprocess.run(
        [str(venv / "bin" / "roar-train"), "--help"], capture_output=True, text=True, timeout=120, cwd=tmp_path, env=env
    )
    assert helped.returncode == 0 and helped.stdout.startswith("roar-train: "), helped.stderr[-2000:]
    where = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import roar; print(roar.__file__, roar.__version__)"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
    )
    assert where.stdout.startswith(str(purelib)) and where.stdout.split()[1] == PROJECT["version"]
