"""Plug-ins from outside the package: a tiny package, built and installed into a temporary site folder during
the test, declares a ``roar.plugins`` entry point; its estimator is an option of every command and
roar-pipeline retrains on its rankings. A plug-in that fails to import is one line naming it."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import QUIET, TINY

BIN = Path(sys.executable).parent

PLUGIN = '''
import torch

import roar


@roar.register_estimator("plugin_grad")
def plugin_grad(model, x, target, params):
    """The target logit's gradient, written from outside roar."""
    x = x.detach().requires_grad_(True)
    with torch.enable_grad():
        (g,) = torch.autograd.grad(model(x).gather(1, target[:, None]).sum(), x)
    return g
'''


def install(tmp_path, name: str, module_text: str) -> Path:
    """Build and install a one-module package ``name`` whose ``roar.plugins`` entry point is that module;
    returns the site folder it is installed into (a temporary environment put on PYTHONPATH)."""
    pkg = tmp_path / name
    (pkg / name).mkdir(parents=True)
    (pkg / name / "__init__.py").write_text("")
    (pkg / name / "roar_plugin.py").write_text(module_text)
    (pkg / "pyproject.toml").write_text(
        f'[build-system]\nrequires = ["setuptools>=68"]\nbuild-backend = "setuptools.build_meta"\n\n'
        f'[project]\nname = "{name}"\nversion = "0.1"\n\n'
        f'[project.entry-points."roar.plugins"]\n{name} = "{name}.roar_plugin"\n'
    )
    site = tmp_path / f"site-{name}"
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(site),
            str(pkg),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert any(site.glob(f"{name}-0.1.dist-info/entry_points.txt"))
    return site


def roar_cmd(app, *args, site, cwd):
    env = {**os.environ, "PYTHONPATH": str(site), "WANDB_MODE": "offline"}
    return subprocess.run([str(BIN / app), *args], capture_output=True, text=True, timeout=600, env=env, cwd=cwd)


@pytest.mark.slow
def test_a_plugin_estimator_is_an_option_and_the_pipeline_retrains_on_it(tmp_path):
    site = install(tmp_path, "roar_edge", PLUGIN)
    listed = roar_cmd("roar-attribute", "--help", site=site, cwd=tmp_path)
    assert listed.returncode == 0 and "plugin_grad" in listed.stdout  # estimator=plugin_grad among the options
    out = roar_cmd(
        "roar-pipeline",
        f"paths.output_root={tmp_path / 'out'}",
        *TINY,
        *QUIET,
        "grid.estimators=[plugin_grad,sg-plugin_grad]",
        "grid.seeds=1",
        "attribute.params.samples=2",
        site=site,
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    runs = tmp_path / "out" / "roar_digits" / "runs"  # runs/<base>/<estimator>/<mode>/<fill>/<t>/seed=<s>/
    estimators = {m.relative_to(runs).parts[1] for m in runs.rglob("metrics.json")}
    assert estimators == {"plugin_grad", "sg-plugin_grad"}  # random (and its t = 0) only when in the grid
    # without the plug-in installed, its name is refused with the valid names listed
    missing = roar_cmd("roar-attribute", "estimator=plugin_grad", site=tmp_path / "nothing", cwd=tmp_path)
    assert missing.returncode != 0 and "plugin_grad" in missing.stderr


def test_a_plugin_that_fails_to_import_is_one_line_naming_it(tmp_path):
    site = install(tmp_path, "roar_broken", "import roar\nraise ImportError('needs the package foo')\n")
    out = roar_cmd("roar-train", "--help", site=site, cwd=tmp_path)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "roar plug-in 'roar_broken' (roar_broken.roar_plugin" in out.stderr and "needs the package foo" in out.stderr
