"""The examples of examples/ run as a reader runs them (``python examples/<name>.py``), each in about a minute on
this CPU, and print what their docstrings promise."""

import re
import subprocess
import sys

import pytest

from conftest import REPO

pytestmark = pytest.mark.slow


def run_example(name: str, *args) -> str:
    out = subprocess.run(
        [sys.executable, str(REPO / "examples" / name), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO / "examples",
        env={"WANDB_MODE": "offline", "PATH": "/usr/bin:/bin"},
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout


def test_own_estimator_runs_roar_on_a_registered_function(tmp_path):
    out = run_example("own_estimator.py", tmp_path)
    rows = dict(
        re.findall(r"^(contrast_grad|grad) .*?  (better than random|worse than random|no different)", out, re.M)
    )
    assert set(rows) == {"contrast_grad", "grad"}
    assert (tmp_path / "roar_digits" / "report" / "index.html").is_file()


def test_captum_vs_gradients_ranks_methods_without_retraining():
    out = run_example("captum_vs_gradients.py")
    fidelity = {m: float(f) for m, f in re.findall(r"^(\S+)\s+(-?\d+\.\d+) ± ", out, re.M)}
    assert set(fidelity) == {"grad", "sg_sq-grad", "captum-IntegratedGradients", "captum-Occlusion", "random"}
    assert all(fidelity[m] > fidelity["random"] for m in fidelity if m != "random")  # every method beats chance order


def test_maps_from_file_evaluates_a_saved_array(tmp_path):
    import numpy as np

    out = run_example("maps_from_file.py")
    assert re.search(r"maps edge_maps.npy \(450, 1, 8, 8\) on your model: fidelity A -?\d", out)
    remove = [float(a) for a in re.findall(r"\d\.\d: (\d\.\d+)", out.splitlines()[1])]
    assert len(remove) == 6 and remove[0] > 0.8 and remove[-1] < remove[0]  # removing 90% costs accuracy
    np.save(tmp_path / "flat.npy", np.ones((450, 1, 8, 8), dtype=np.float32))  # a file of the user's own
    assert "maps flat.npy (450, 1, 8, 8)" in run_example("maps_from_file.py", tmp_path / "flat.npy")
