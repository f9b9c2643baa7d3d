"""Every experiment of conf/experiment/ dry-runs (``roar-pipeline experiment=<name> dry_run=true``,
roar.stages.dry_run): its whole chain, with its own architectures, estimators, fill, mask format and evaluations, on a
tiny stand-in at its image size. A new experiment file is covered by existing; every dry run trains: all are slow."""

import pytest
from omegaconf import OmegaConf

from roar.config import CONFIG_DIR, compose_config
from roar.data import build_dataset
from roar.stages.dry_run import DRY_IMAGES, dry_run, stand_in_side
from roar.stages.pipeline import composed, run_pipeline
from roar.store.grid import experiment_jobs, retrain_jobs
from roar.store.io import read_json
from roar.store.names import settings_hash
from roar.store.resolve import base_key, report_dir
from roar.utils.plain import to_plain

EXPERIMENTS = sorted(p.stem for p in (CONFIG_DIR / "experiment").glob("*.yaml"))
DONE = {}  # a dry run's config (without its name and tags) -> the experiment whose dry run ran it


def dry_config(name: str, root) -> tuple:
    overrides = [f"experiment={name}", "dry_run=true", f"paths.output_root={root}"]
    cfg = compose_config("pipeline", overrides)
    cfg = compose_config("pipeline", dry_run(cfg, overrides))
    plain = {k: v for k, v in to_plain(cfg).items() if k not in ("name", "tags", "plan", "paths")}
    return cfg, settings_hash(plain)


@pytest.mark.slow  # each trains for real: seconds (CIFAR-sized) to a minute (ImageNet-sized) on 2 CPU cores
@pytest.mark.parametrize("name", EXPERIMENTS)
def test_every_experiment_dry_runs(name, tmp_path):
    """The dry run ends in a report, in its own folder (the real experiment's is never made), with the experiment's
    architecture as the base model, every estimator's maps, and one retrain run per mode (plus the t = 0 baseline)
    for an experiment that retrains, none for one that evaluates its base model only."""
    cfg, digest = dry_config(name, tmp_path)
    if digest in DONE:  # the same chain as an experiment already dry-run (roar_birdsnap: roar_imagenet_fig4 on shapes)
        assert DONE[digest] != name
        return
    real = compose_config("pipeline", [f"experiment={name}"])
    runs = run_pipeline([f"experiment={name}", "dry_run=true", f"paths.output_root={tmp_path}"], progress=False)
    DONE[digest] = name
    assert (report_dir(cfg) / "index.html").is_file()
    assert not (tmp_path / str(real.name)).exists() and str(cfg.name) == f"{real.name}_dry_run"
    if real.get("toy") is not None:
        return
    base = read_json(base_key(cfg).metrics)
    assert base["model"] == str(real.model.name)
    retrains = "train" in cfg.attribute.splits
    modes = list(real.grid.modes)
    expected = len(modes) + (1 if "random" in real.grid.estimators else 0) if retrains else 0
    assert len(runs) == expected == len({(r["mode"], r["fraction"] == 0) for r in runs})
    assert all(r["estimator"] in real.grid.estimators and 0 <= r["test_acc"] <= 1 for r in runs)
    assert len(retrain_jobs(real.grid)) >= expected


def test_the_stand_in_keeps_the_experiments_size_and_shrinks_it_only_for_exact_backselect(tmp_path):
    """ImageNet's 224 px stays 224 px; CIFAR-10 with exact BackSelect (p(p+1)/2 passes per image: 524,800 at 32 x 32)
    is rendered at 8 px (2,080); the dataset's own keys (data.root, train_dir) are dropped with the dataset."""
    fig4, _ = dry_config("roar_birdsnap", tmp_path)
    seen, _ = composed(["experiment=roar_birdsnap", "dry_run=true"])  # what roar-pipeline status reads too
    assert seen.name == fig4.name == "roar_birdsnap_dry_run" and len(experiment_jobs(seen)) == 3  # t=0, remove, keep
    assert (fig4.data.name, fig4.data.image_size, fig4.data.n_train) == ("shapes", 224, DRY_IMAGES)
    assert "train_dir" not in fig4.data and fig4.model.name == "resnet50" and fig4.mask.format == "buckets"
    assert fig4.grid.seeds == 1 and list(fig4.grid.fractions) == [0.1, 0.3] and fig4.attribute.params.samples == 2
    digits, _ = dry_config("roar_digits", tmp_path)  # embedded data stay themselves: the first images of each split
    assert [len(build_dataset(digits.data, s)) for s in ("train", "test")] == [DRY_IMAGES, DRY_IMAGES]
    table1 = compose_config("pipeline", ["experiment=overinterp_cifar10_table1"])
    assert stand_in_side(table1) == 8 and stand_in_side(compose_config("pipeline", ["experiment=roar_cifar10"])) == 32


@pytest.mark.slow
def test_a_pretrained_base_dry_runs_from_stand_in_weights_of_its_architecture(tmp_path):
    """``base_checkpoint=`` names a file the dry run cannot have: a freshly initialized state_dict of the same
    architecture is written beside the dry run's outputs, and the base model is loaded from it (not trained)."""
    missing = tmp_path / "weights_from_elsewhere.pt"
    overrides = ["experiment=missingness_shapes", f"base_checkpoint={missing}", f"paths.output_root={tmp_path}"]
    cfg = compose_config("pipeline", [*overrides, "dry_run=true"])
    dry = dry_run(cfg, [*overrides, "dry_run=true"])
    stand_in = OmegaConf.select(compose_config("pipeline", dry), "base_checkpoint")
    assert stand_in != str(missing) and stand_in.endswith(".pt") and "missingness_shapes_dry_run" in stand_in
    run_pipeline([*overrides, "dry_run=true"], progress=False)
    done = compose_config("pipeline", dry)
    metrics = read_json(base_key(done).metrics)
    assert metrics["model"] == "resnet8" and metrics["pretrained"]["file"] == stand_in and not missing.exists()
