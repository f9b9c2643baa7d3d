"""Retraining sweeps: the pipeline's grid, Hydra multiruns, and what happens when they are cut short."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import TINY, base_name, roar_cli
from roar.config import compose_config
from roar.errors import RoarError
from roar.stages.pipeline import run_pipeline
from roar.store.grid import retrain_settings
from roar.store.resolve import run_key
from roar.training.run import train

pytestmark = pytest.mark.slow
ROAR_TRAIN = str(Path(sys.executable).parent / "roar-train")


@pytest.fixture(scope="module")
def sweep(tiny_pipeline):
    return tiny_pipeline


def run_dirs(root):
    return sorted(p.parent for p in (root / "roar_digits" / "runs").rglob("metrics.json"))


def test_pipeline_retrains_every_setting_and_seed(sweep):
    root, _, runs = sweep
    assert len(runs) == 6  # (random t=0, grad t=0.5, random t=0.5) x 2 seeds
    names = {str(d.relative_to(root / "roar_digits" / "runs")) for d in run_dirs(root)}
    base = base_name(*TINY)
    assert names == {
        f"{base}/{e}/remove/channel_mean/{t}/seed={s}"
        for e, t in [("random", "0"), ("grad", "0.5"), ("random", "0.5")]
        for s in (0, 1)
    }
    for d in run_dirs(root):
        m = json.loads((d / "metrics.json").read_text())
        assert {"test_acc", "estimator", "mode", "fill", "fraction", "seed", "model", "augment", "dataset"} <= set(m)
        assert m["dataset"] == "digits" and m["stage"] == "retrain" and str(d).endswith(f"seed={m['seed']}")


def test_pipeline_ends_with_no_retrain_evaluation_and_the_report(sweep):
    root, _, _ = sweep
    exp = root / "roar_digits"
    for ranking in ("grad", "random"):
        result = json.loads((exp / "eval" / base_name(*TINY) / "channel_mean" / f"{ranking}.json").read_text())
        assert result["deletion"]["remove"]["fractions"] == [0.0, 0.5] and result["fidelity"]["n"] == 450
    lines = (exp / "report" / "results.csv").read_text().splitlines()
    assert len(lines) == 1 + 6 and lines[0].startswith("base,estimator,reduce,mode,fill,fraction,seed,test_acc")
    page = (exp / "report" / "index.html").read_text()
    figures = {p.name for p in (exp / "report").glob("*.png")}
    assert figures == {
        "roar-channel_mean.png",
        "retrain-vs-no-retrain.png",
        "mif-lif-channel_mean.png",
        "lif-scores-channel_mean.png",  # FPA Fig. 4 / C.3 from the same evaluation
        "images.png",
    }
    assert "Verdict" in page and page.count("<img") == len(figures)


def test_interrupted_sweep_reruns_only_the_missing_runs(sweep, capsys):
    root, overrides, _ = sweep
    dirs = run_dirs(root)
    for d in dirs[:2]:  # never finished: no metrics, no checkpoint
        (d / "metrics.json").unlink()
        (d / "checkpoints" / "last.ckpt").unlink()
    (dirs[2] / "metrics.json").write_text('{"test_acc": ')  # cut off mid-write: not trusted
    capsys.readouterr()
    run_pipeline(overrides, progress=False)
    out = capsys.readouterr().out
    assert out.count("is complete") == 1 + 3  # the base model and the 3 untouched runs
    assert out.count("resuming from") == 1  # the run whose metrics.json was cut off: re-tested from its checkpoint
    after = {
        (m["estimator"], m["fraction"], m["seed"]): m["test_acc"]
        for m in (json.loads((d / "metrics.json").read_text()) for d in dirs)
    }
    assert after == {
        (m["estimator"], m["fraction"], m["seed"]): m["test_acc"] for m in sweep[2]
    }  # redone to the same numbers


def copy_experiment(root, to):
    """The base model, maps and shards of the pipeline's experiment, without its runs."""
    import shutil

    for part in ("base", "attributions", "shards"):
        shutil.copytree(root / "roar_digits" / part, to / "roar_digits" / part)
    return to


def metrics_of(root):
    return {
        (m["estimator"], m["fraction"], m["seed"]): m["test_acc"]
        for m in (json.loads(p.read_text()) for p in (root / "roar_digits" / "runs").rglob("metrics.json"))
    }


def test_grid_multirun_runs_exactly_the_pipelines_runs(sweep, tmp_path):
    """``roar-train -m sweep=grid`` makes the grid's jobs itself (t = 0 under random included), the
    same on every launcher; here on the local one, with the same numbers as the pipeline."""
    root, _, runs = sweep
    copy_experiment(root, tmp_path)
    out = subprocess.run(
        [ROAR_TRAIN, "-m", f"paths.output_root={tmp_path}", *TINY, "sweep=grid"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    want = {(m["estimator"], m["fraction"], m["seed"]): m["test_acc"] for m in runs}
    assert metrics_of(tmp_path) == want and len(want) == 6
    explicit = roar_cli("roar-train", "-m", f"paths.output_root={tmp_path}", *TINY, "sweep=grid", "seed=0,1")
    assert explicit.returncode == 2 and "sweep=grid makes the estimator, mode, fraction and seed" in explicit.stderr


def test_multirun_over_own_lists_equals_the_pipeline(sweep, tmp_path):
    root, _, runs = sweep
    copy_experiment(root, tmp_path)
    out = subprocess.run(
        [ROAR_TRAIN, "-m", f"paths.output_root={tmp_path}", *TINY, "estimator=grad,random", "fraction=0.5", "seed=0,1"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    want = {(m["estimator"], m["fraction"], m["seed"]): m["test_acc"] for m in runs if m["fraction"] == 0.5}
    assert metrics_of(tmp_path) == want and len(want) == 4
    assert (
        out.stdout.count("[roar-train] test_acc=") == 4 and "GPU available" not in out.stdout + out.stderr
    )  # one line per run


def test_two_sweeps_at_the_same_second_get_their_own_folders():
    from hydra import compose, initialize_config_dir

    from roar.config import CONFIG_DIR

    dirs = set()
    for _ in range(2):
        with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
            cfg = compose("train", return_hydra_config=True)
            dirs.add(cfg.hydra.sweep.dir)
    assert len(dirs) == 2


def base_only(root, to):
    """The pipeline's base model alone under another output root (no maps, no shards)."""
    import shutil

    shutil.copytree(root / "roar_digits" / "base", to / "roar_digits" / "base")
    return to


def test_grid_without_shards_says_which_stage_to_run(sweep, tmp_path):
    with pytest.raises(RoarError, match="No finished base model of data=digits"):  # first things first
        train(compose_config("train", [f"paths.output_root={tmp_path}", *TINY, "estimator=ig", "fraction=0.5"]))
    base_only(sweep[0], tmp_path)
    with pytest.raises(RoarError, match="Run roar-attribute and then roar-mask with these settings first"):
        train(compose_config("train", [f"paths.output_root={tmp_path}", *TINY, "estimator=ig", "fraction=0.5"]))
    with pytest.raises(RoarError, match="needs fraction="):
        train(compose_config("train", [f"paths.output_root={tmp_path}", *TINY, "estimator=ig"]))


def test_settings_and_wandb_groups():
    cfg = compose_config("train", TINY)
    assert retrain_settings(cfg.grid) == [("random", "remove", 0.0), ("grad", "remove", 0.5), ("random", "remove", 0.5)]
    base = base_name(*TINY)
    run = run_key(compose_config("train", [*TINY, f"base={base}", "estimator=grad", "fraction=0.5", "seed=3"]))
    assert run.group == f"roar_digits/retrain/{base}/grad/remove/channel_mean/0.5" and run.stage == "retrain"
    assert run_key(cfg).group == f"roar_digits/base/{base}" and base.startswith("digits-resnet8-none-")


def test_a_retrain_run_finds_its_base_model_or_says_which_to_pick(sweep, tmp_path):
    """Retrain runs (and the stages after roar-train) find the one finished base model of their data,
    model and augment; with several, the one trained with their own recipe; else base= names it."""
    root, _, _ = sweep
    run = [f"paths.output_root={root}", *TINY, "estimator=grad", "fraction=0.5", "seed=0"]
    assert run_key(compose_config("train", run)).base.name == base_name(*TINY)
    import shutil

    other = root / "roar_digits" / "base" / f"{base_name(*TINY)[:-8]}deadbeef"
    shutil.copytree(root / "roar_digits" / "base" / base_name(*TINY), other)
    identity = json.loads((other / "identity.json").read_text())
    identity["training"]["optim"]["lr"] = 0.3  # another base model, trained with another learning rate
    (other / "identity.json").write_text(json.dumps(identity))
    try:
        assert run_key(compose_config("train", run)).base.name == base_name(*TINY)  # its own recipe picks it
        assert run_key(compose_config("train", [*run, "optim.lr=0.3"])).base.name == other.name
        with pytest.raises(
            RoarError, match=r"2 finished base models of data=digits model=resnet8 augment=none .*Pass base="
        ):
            run_key(compose_config("train", [*run, "optim.lr=0.7"]))
        with pytest.raises(RoarError, match="2 finished base models"):
            from roar.store.resolve import base_key

            base_key(compose_config("mask", [f"paths.output_root={root}", "experiment=roar_digits"]))
    finally:
        shutil.rmtree(other)
    with pytest.raises(RoarError, match="No finished base model of data=digits model=resnet8 augment=none"):
        run_key(compose_config("train", [f"paths.output_root={tmp_path}", *TINY, "estimator=grad", "fraction=0.5"]))


def test_local_sweep_over_missing_shards_stops_before_any_run(sweep, tmp_path):
    base_only(sweep[0], tmp_path)
    out = roar_cli("roar-train", "-m", f"paths.output_root={tmp_path}", *TINY, "estimator=grad,ig", "fraction=0.5")
    assert (
        out.returncode == 2
        and "2 setting(s) of this sweep have no masked shards" in out.stderr
        and "Nothing was launched" in out.stderr
    )
    assert not (tmp_path / "roar_digits" / "runs").exists()


def test_estimator_glob_sweeps_every_registered_estimator(sweep, tmp_path):
    from roar.estimators import available

    base_only(sweep[0], tmp_path)
    out = roar_cli("roar-train", "-m", f"paths.output_root={tmp_path}", *TINY, "estimator=glob(*)", "fraction=0.5")
    assert out.returncode == 2 and f"{len(available())} setting(s) of this sweep have no masked shards" in out.stderr
    assert compose_config("train", ["estimator=vargrad-ig"]).estimator == "vargrad-ig"
    empty = roar_cli("roar-train", "-m", f"paths.output_root={tmp_path}/none", *TINY, "estimator=grad", "fraction=0.5")
    assert empty.returncode == 2 and "No finished base model" in empty.stderr and "Nothing was launched" in empty.stderr


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["grid.estimators=[grad,shap]"], "Unknown estimator 'shap'"),
        (["grid.fractions=[0.5,1.5]"], r"fraction=1.5 is outside \[0, 1\]"),
        (["grid.estimators=grad"], r"grid.estimators=grad must be a list: write grid.estimators=\[grad\]"),
        (["eval.rankings=[ig.bogus]"], "'ig.bogus'"),
        (["mask.format=jpg"], "never a lossy one"),
        (["grid.seeds=0"], "grid.seeds=0"),
    ],
)
def test_pipeline_checks_every_stage_before_any_compute(tmp_path, overrides, message):
    with pytest.raises(RoarError, match=message):
        run_pipeline([f"paths.output_root={tmp_path}", *TINY, *overrides])
    assert not (tmp_path / "roar_digits").exists()  # nothing trained, nothing written


@pytest.mark.parametrize(
    "args, message",
    [
        (["estimator=grad", "fraction=abc"], "fraction='abc' is not a number"),
        (["estimator=grad", "fraction=1.5"], r"fraction=1.5 is outside \[0, 1\]"),
        (["seed=1.5"], "seed=1.5: give a non-negative integer seed"),
        (["data.batch_size=0"], "data.batch_size=0 must be a whole number of at least 1"),
        (["trainer.max_epochs=abc"], "trainer.max_epochs='abc' must be a whole number"),
    ],
)
def test_wrong_types_are_one_paragraph(tmp_path, args, message):
    out = roar_cli("roar-train", f"paths.output_root={tmp_path}", "logger=csv", *args)
    assert out.returncode == 2 and "roar-train: error:" in out.stderr and "Traceback" not in out.stderr
    import re

    assert re.search(message, out.stderr), out.stderr[-1500:]


def test_a_sweep_of_nothing_is_refused_not_reported_as_success(tmp_path):
    out = roar_cli("roar-train", "-m", "seed=range(0)", "logger=csv", env={**os.environ, "ROAR_OUTPUTS": str(tmp_path)})
    assert out.returncode == 2 and "has no jobs: a swept value list is empty" in out.stderr
    assert "Nothing was launched" in out.stderr and not any(tmp_path.rglob("metrics.json"))
