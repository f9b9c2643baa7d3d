"""roar-attribute: real shards from a real base model; resumable, shardable, strict about settings."""

import subprocess

import numpy as np
import pytest
import torch

from conftest import TINY_BASE, base_name
from roar.attribution.run import attribute
from roar.config import compose_config
from roar.data import build_dataset
from roar.errors import RoarError
from roar.estimators import reduce_maps
from roar.store.manifest import verify_manifest
from roar.store.maps import iter_maps
from roar.training.run import train

pytestmark = pytest.mark.slow
ESTIMATORS = "attribute.estimators=[grad,sg_sq-grad,ig,random]"
SMALL = ["attribute.params.samples=3", "attribute.params.ig_steps=4", "attribute.shard_size=500"]
BASE = base_name(*TINY_BASE)


NAMES = ("default", "rerun", "whole", "split", "batch7", "half", "settings", "nan", "array")


@pytest.fixture(scope="module")
def outputs(tmp_path_factory, tiny_base):
    root = tmp_path_factory.mktemp("outputs")
    for name in NAMES:  # the shared base model under each experiment name of this module
        tiny_base(root, name)
    return root


def cfg_for(outputs, *overrides, name="default"):
    return compose_config(
        "attribute", [f"paths.output_root={outputs}", f"name={name}", "logger=csv", ESTIMATORS, *SMALL, *overrides]
    )


def all_maps(folder):
    return {sid: m for split in ("train", "test") for sid, m, _ in iter_maps(folder, split)}


def test_writes_verified_shards_of_every_sample(outputs):
    manifests = attribute(cfg_for(outputs))
    root = outputs / "default" / "attributions" / BASE
    for name in ("grad", "sg_sq-grad", "ig", "random"):
        manifest = verify_manifest(root / name)
        assert manifests[name]["counts"] == {"train": 1347, "test": 450} and manifest["count"] == 1797
        assert set(manifest["files"]) == {"train-000000.tar", "train-000001.tar", "train-000002.tar", "test-000000.tar"}
        assert len(manifest["base_checkpoint_sha256"]) == 64 and manifest["estimator_params"]["samples"] == 3
    listing = subprocess.run(
        ["tar", "-tf", str(root / "grad" / "test-000000.tar")], capture_output=True, text=True, check=True
    ).stdout.split()
    assert len(listing) == 900 and listing[0].endswith(".json") and listing[1].endswith(".map.npy")
    test_ids = build_dataset(compose_config("train").data, "test").ids
    maps = list(iter_maps(root / "grad", "test"))
    assert [sid for sid, _, _ in maps] == test_ids and maps[0][1].shape == (1, 8, 8)
    assert all(meta["target"] in range(10) for _, _, meta in maps)


def test_rerun_skips_complete_shards_and_redoes_broken_ones(outputs, capsys):
    cfg = cfg_for(outputs, name="rerun")
    attribute(cfg)
    folder = outputs / "rerun" / "attributions" / BASE / "grad"
    stamps = {p.name: p.stat().st_mtime_ns for p in folder.glob("*.tar")}
    capsys.readouterr()
    attribute(cfg)
    assert "0 shard(s), 0 images" in capsys.readouterr().out
    assert stamps == {p.name: p.stat().st_mtime_ns for p in folder.glob("*.tar")}
    before = all_maps(folder)
    (folder / "train-000001.tar").write_bytes(b"half a shard")  # a shard broken after it was written
    attribute(cfg)
    assert "1 shard(s), 500 images" in capsys.readouterr().out
    verify_manifest(folder)
    after = all_maps(folder)
    assert before.keys() == after.keys() and all(np.array_equal(before[k], after[k]) for k in before)


def test_maps_identical_whatever_num_shards_and_batch_size(outputs):
    """Shard boundaries depend on shard_size alone, so splitting the work over tasks changes no bit.
    Another batch size may change the CPU kernels' summation order: maps then agree to float16
    rounding (one unit in the last place of the stored, max-normalised map)."""
    with_gbs = ["attribute.estimators=[grad,sg_sq-grad,ig,random,gbs]", "attribute.params.sis_k=16"]
    attribute(cfg_for(outputs, *with_gbs, name="whole"))
    for shard_id in (0, 1):
        attribute(cfg_for(outputs, *with_gbs, "attribute.num_shards=2", f"attribute.shard_id={shard_id}", name="split"))
    attribute(cfg_for(outputs, "attribute.batch_size=7", name="batch7"))
    gbs_whole, gbs_split = (
        {
            sid: (m, meta["trace"])
            for split in ("train", "test")
            for sid, m, meta in iter_maps(outputs / n / "attributions" / BASE / "gbs", split)
        }
        for n in ("whole", "split")
    )  # backward selection's order and trace: the same whatever task computed the image
    assert gbs_whole.keys() == gbs_split.keys() and len(gbs_whole) == 1797
    assert all(
        np.array_equal(gbs_whole[k][0], gbs_split[k][0]) and gbs_whole[k][1] == gbs_split[k][1] for k in gbs_whole
    )
    for name in ("grad", "sg_sq-grad", "ig", "random"):
        whole = all_maps(outputs / "whole" / "attributions" / BASE / name)
        split = all_maps(outputs / "split" / "attributions" / BASE / name)
        batch7 = all_maps(outputs / "batch7" / "attributions" / BASE / name)
        assert whole.keys() == split.keys() == batch7.keys()
        assert all(np.array_equal(whole[k], split[k]) for k in whole)
        assert all(np.abs(whole[k] - batch7[k]).max() <= 2**-10 * np.abs(whole[k]).max() for k in whole)
        verify_manifest(outputs / "split" / "attributions" / BASE / name)


def test_one_of_two_tasks_leaves_no_manifest(outputs):
    manifests = attribute(cfg_for(outputs, "attribute.num_shards=2", "attribute.shard_id=1", name="half"))
    assert all(m is None for m in manifests.values())
    with pytest.raises(RoarError, match="manifest.json is missing"):
        verify_manifest(outputs / "half" / "attributions" / BASE / "grad")


def test_changed_settings_are_never_mixed_silently(outputs):
    attribute(cfg_for(outputs, name="settings"))
    with pytest.raises(RoarError, match=r"was made with other settings \(.*samples: \d+ -> 4"):  # named
        attribute(cfg_for(outputs, "attribute.params.samples=4", name="settings"))
    manifests = attribute(cfg_for(outputs, "attribute.params.samples=4", "overwrite=true", name="settings"))
    assert manifests["sg_sq-grad"]["estimator_params"]["samples"] == 4
    # another estimator's own parameter is not part of these maps' identity: they stand, nothing is redone
    kept = attribute(cfg_for(outputs, "attribute.params.samples=4", "attribute.params.lime_samples=7", name="settings"))
    assert kept == manifests and "lime_samples" not in kept["grad"]["estimator_params"]


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["attribute.estimators=[grad,shap]"], "Unknown estimator 'shap'"),
        (["name=nobase"], "No finished base model of data=digits"),
        (["attribute.target=logit"], "attribute.target='logit'"),
        (
            ["attribute.shard_id=2", "attribute.num_shards=2"],
            r"attribute.shard_id=2 must be in \[0, attribute.num_shards=2\)",
        ),
        (
            ["data.image_size=16"],
            r"was trained with image_shape=\[1, 8, 8\], but this run asks for image_shape=\[1, 16, 16\]",
        ),
    ],
)
def test_bad_input_fails_before_anything_is_written(outputs, overrides, message):
    with pytest.raises(RoarError, match=message):
        attribute(compose_config("attribute", [f"paths.output_root={outputs}", *overrides]))


def test_non_finite_maps_name_their_samples(outputs, monkeypatch):
    from roar.estimators import EstimatorSuite

    original = EstimatorSuite.__call__

    def poisoned(self, model, x, target, ids=None, reference=None, extras=None, fill=None, pool=None):  # noqa: PLR0913 (the estimator call it stands in for)
        maps = original(self, model, x, target, ids, reference, extras)
        maps["grad"][0, 0, 0, 0] = float("nan")
        return maps

    monkeypatch.setattr(EstimatorSuite, "__call__", poisoned)
    with pytest.raises(RoarError, match=r"Estimator grad gave NaN or infinite maps for samples \['digits-0000'\]"):
        attribute(cfg_for(outputs, name="nan"))
    assert not list((outputs / "nan" / "attributions").rglob("*.tar"))


def test_gradients_find_the_object_on_shapes(tmp_path):
    """On shapes, where we know which pixels matter, gradient maps of a trained model put more of
    their mass on the object than a random ranking does."""
    common = [
        f"paths.output_root={tmp_path}",
        "logger=csv",
        "data=shapes",
        "data.n_train=1200",
        "data.n_test=200",
        "trainer.enable_progress_bar=false",
    ]
    metrics = train(compose_config("train", [*common, "trainer.max_epochs=12"]))
    assert metrics["test_acc"] > 0.7
    attribute(
        compose_config(
            "attribute",
            [
                *common,
                "attribute.estimators=[grad,sg-grad,random]",
                "attribute.splits=[test]",
                "attribute.params.samples=5",
            ],
        )
    )
    test = build_dataset(compose_config("train", common).data, "test")
    objects = test.extras["object_mask"].float()
    inside = {}
    for name in ("grad", "sg-grad", "random"):
        maps = torch.stack(
            [
                torch.from_numpy(m)
                for _, m, _ in iter_maps(tmp_path / "default" / "attributions" / metrics["base"] / name, "test")
            ]
        )
        mass = reduce_maps(maps, "abs_sum")[:, 0]
        inside[name] = float(((mass * objects).sum((1, 2)) / mass.sum((1, 2))).mean())
    print(inside)
    assert inside["grad"] > inside["random"] + 0.1 and inside["sg-grad"] > inside["random"] + 0.1


def test_attribution_job_array_through_hydra_multirun(outputs):
    """The shape of a SLURM job array, run by the local launcher: one task per shard_id."""
    import sys
    from pathlib import Path

    out = subprocess.run(
        [
            str(Path(sys.executable).parent / "roar-attribute"),
            "-m",
            f"paths.output_root={outputs}",
            "name=array",
            "logger=csv",
            "attribute.estimators=[grad,random]",
            *SMALL,
            "attribute.num_shards=2",
            "attribute.shard_id=0,1",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    for name in ("grad", "random"):
        assert verify_manifest(outputs / "array" / "attributions" / BASE / name)["count"] == 1797


def test_a_foreign_checkpoint_is_never_used(outputs):
    """A checkpoint of another model, or of the same model with other parameters, in the base model's
    folder stops roar-attribute with both named (not maps filed under the wrong model)."""
    import shutil

    base = outputs / "default" / "base"
    shutil.copytree(base / BASE, base / "digits-resnet20-none-0123abcd", dirs_exist_ok=True)
    with pytest.raises(RoarError, match="was trained with model=.*resnet8.* but this run asks for model=.*resnet20"):
        attribute(cfg_for(outputs, "model=resnet20"))
    with pytest.raises(
        RoarError, match="was trained with model=.*'width': 16.* but this run asks for model=.*'width': 8"
    ):
        attribute(cfg_for(outputs, "model.params.width=8"))
