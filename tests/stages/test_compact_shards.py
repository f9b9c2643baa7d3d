"""The formats masked at load (issue: ImageNet-scale storage): ``mask.format=buckets`` (one set per ranking,
every mode, fill and grid fraction) and ``uint8`` (source pixels and the mask's bits). A retrain batch
from them equals, bit for bit, the batch of the float32 materialized set of the same setting."""

import json
import shutil
import subprocess

import numpy as np
import pytest
import torch

from conftest import QUIET, TINY_BASE, base_name
from roar.attribution.run import attribute
from roar.config import compose_config
from roar.data.shapes import save_image_folder
from roar.errors import RoarError
from roar.evaluate.leakage import mask_recoverability
from roar.masking.fills import FILLS
from roar.masking.run import write_masks
from roar.store.experiment import set_folder, verify_all
from roar.store.maps import iter_maps
from roar.store.resolve import run_key
from roar.training.run import run_data, train

pytestmark = pytest.mark.slow
EDGE = 0.1015625  # 6.5 of digits' 64 pixels: round(t F) rounds a half up (7); keep at EDGE masks 57 -> 7 left
GRID = f"mask.fractions=[0,{EDGE},0.5,0.7,1.0]"
BASE = base_name(*TINY_BASE)
PAINTING = sorted(n for n in FILLS.names() if not FILLS[n].drops_tokens and not FILLS[n].needs_donors)


def fill_args(fill):
    small = {"constant": ["fill.value=[0.25]"], "blur": ["fill.reference_size=null"]}  # blur in pixels on 8x8 digits
    return [f"fill={fill}", *small.get(fill, [])]


@pytest.fixture(scope="module")
def root(tmp_path_factory, tiny_base):
    out = tiny_base(tmp_path_factory.mktemp("outputs"))
    common = [f"paths.output_root={out}", *QUIET[:2]]
    attribute(compose_config("attribute", [*common, "attribute.estimators=[grad]", "attribute.shard_size=400"]))
    write_masks(compose_config("mask", [*common, "mask.estimators=[grad]", GRID, "mask.format=buckets"]))
    return out


def cfg(root, *overrides, config="train"):
    grid = ["mask.estimators=[grad]", GRID] if config == "mask" else []
    return compose_config(config, [f"paths.output_root={root}", *QUIET, f"base={BASE}", *grid, *overrides])


def batches(root, *overrides, split="train", epoch=1):
    """Every batch of a retrain run's ``split`` at ``epoch``, as the training step sees it (after the
    transfer hook), from whichever set the run reads; and the run's data module."""
    c = cfg(root, "estimator=grad", *overrides)
    data = run_data(c, run_key(c))
    data.set_epoch(epoch)
    loader = data.train_dataloader() if split == "train" else data.test_dataloader()
    if hasattr(loader, "set_epoch"):
        loader.set_epoch(epoch)
    return [data.on_after_batch_transfer(b, 0) for b in loader], data


def assert_same(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert list(x["id"]) == list(y["id"])
        assert torch.equal(x["label"], y["label"])
        assert x["image"].dtype == y["image"].dtype == torch.float32
        assert torch.equal(x["image"], y["image"]), float((x["image"] - y["image"]).abs().max())
        assert ("removed" in x) == ("removed" in y)
        if "removed" in x:
            assert torch.equal(x["removed"], y["removed"])


def materialize(root, fill, fmt="npy"):
    write_masks(
        cfg(
            root,
            *fill_args(fill),
            "mask.modes=[remove,keep]",
            f"mask.fractions=[{EDGE},0.7]",
            f"mask.format={fmt}",
            config="mask",
        )
    )


def drop_materialized(root, fill):
    """Remove the materialized sets of ``fill``, so that runs read the bucket set."""
    for folder in (root / "default" / "shards" / BASE / "grad").glob("*/*"):
        if folder.parent.name in ("remove", "keep") and folder.name.split("-")[0] == fill:
            shutil.rmtree(folder)


@pytest.mark.parametrize("fill", PAINTING)
def test_bucket_batches_equal_materialized_batches_bit_for_bit(root, fill):
    """Every mode and fraction on the test split; the shuffled train split (the same order from both sets) at one."""
    materialize(root, fill)
    for mode in ("remove", "keep"):
        for t in (EDGE, 0.7):
            args = (*fill_args(fill), f"mode={mode}", f"fraction={t}", "data.in_memory=false", "data.batch_size=128")
            folder = run_key(cfg(root, "estimator=grad", *args)).shards.folder
            for split in ("train", "test") if (mode, t) == ("keep", 0.7) else ("test",):
                npy, data = batches(root, *args, split=split)
                assert data.masker is None and data.train_set.format == "npy"
                folder.rename(folder.with_name("away"))
                try:
                    bkt, data = batches(root, *args, split=split)
                finally:
                    folder.with_name("away").rename(folder)
                assert data.train_set.format == "buckets" and data.masker is not None
                assert_same(bkt, npy)
    drop_materialized(root, fill)


def test_the_report_reads_one_masked_image_from_any_format(root):
    """ROAR Fig. 1's cells come from the set a retrain run reads: the bucket set gives, masked and filled at
    load, the image the materialized set stores (it vanished from the report with buckets before)."""
    from omegaconf import OmegaConf

    from roar.masking.at_load import first_test_image

    fill = OmegaConf.create({"name": "channel_mean"})
    materialize(root, "channel_mean")
    key = run_key(cfg(root, "estimator=grad", "mode=remove", "fraction=0.7")).shards
    stored = first_test_image(key.folder, fill, "remove", 0.7)
    at_load = first_test_image(key.buckets.folder, fill, "remove", 0.7)
    unmasked = first_test_image(key.buckets.folder, fill, "remove", 0.0)
    drop_materialized(root, "channel_mean")
    assert stored is not None and torch.equal(at_load, stored) and not torch.equal(unmasked, stored)
    assert first_test_image(key.buckets.folder, fill, "remove", 0.3) is None  # off the bucket set's grid


def test_rounding_boundary_counts_on_both_splits_resident_and_streamed(root):
    """At t = 6.5/64 both modes mask round(6.5) = 7 of digits' 64 pixels (remove: the top 7, keep: the bottom 7),
    every image of both splits, from device-resident and from streamed bucket batches."""
    for split in ("train", "test"):
        for in_memory in ("true", "false"):
            for mode in ("remove", "keep"):
                args = ("fill=mask_only", f"mode={mode}", f"fraction={EDGE}", f"data.in_memory={in_memory}")
                got, data = batches(root, *args, split=split)
                assert bool(data.resident) == (in_memory == "true")
                masks = torch.cat([b["image"] for b in got])
                assert len(masks) == (data.test_set if split == "test" else data.train_set).num_samples
                assert {int(n) for n in masks.flatten(1).sum(1)} == {7}, (split, in_memory, mode)


def test_resident_and_streamed_bucket_batches_are_the_same(root):
    a, _ = batches(
        root, *fill_args("blur"), "mode=remove", "fraction=0.5", "data.in_memory=true", "data.batch_size=100"
    )
    b, _ = batches(
        root, *fill_args("blur"), "mode=remove", "fraction=0.5", "data.in_memory=false", "data.batch_size=100"
    )
    assert_same(a, b)


def test_a_run_trained_from_buckets_equals_the_run_from_npy(root):
    """Lightning training end to end: the transfer hook masks on the device, and the numbers are the npy run's."""
    args = [
        "estimator=grad",
        "fill=zero",
        "mode=remove",
        "fraction=0.5",
        "trainer.max_epochs=1",
        "trainer.limit_train_batches=3",
    ]
    write_masks(cfg(root, "fill=zero", "mask.modes=[remove]", "mask.fractions=[0.5]", config="mask"))
    npy = train(cfg(root, *args))
    drop_materialized(root, "zero")
    bkt = train(cfg(root, *args))  # the set it trained on changed: redone, from the bucket set
    assert npy["shards_settings_hash"] != bkt["shards_settings_hash"]
    for k in ("test_acc", "test_loss", "train_acc"):
        assert npy[k] == bkt[k], k


def test_a_fraction_off_the_grid_is_refused_with_the_grid(root):
    with pytest.raises(RoarError, match=r"not on this bucket map's grid \(0, 0\.1015625, 0\.5, 0\.7, 1\)"):
        batches(root, "fill=zero", "mode=remove", "fraction=0.3")


def test_a_bucket_set_of_another_grid_names_the_grid_that_differs(root, tmp_path):
    """Rewriting a bucket set with another fraction grid is refused with the grid named (issue 31, item 14),
    not a bare "other settings"."""
    copy = tmp_path / "out"
    shutil.copytree(root / "default", copy / "default")
    other = cfg(copy, "mask.format=buckets", "mask.fractions=[0,0.3,1.0]", config="mask")
    with pytest.raises(
        RoarError, match=r"made with other settings \(.*boundaries: \[7, 19, 32, 45, 57\] -> \[.*fractions: "
    ):
        write_masks(other)


def test_random_image_donors_come_from_the_batch_seeded(root):
    a, _ = batches(root, "fill=random_image", "mode=remove", "fraction=0.5", "data.batch_size=64")
    b, _ = batches(root, "fill=random_image", "mode=remove", "fraction=0.5", "data.batch_size=64")
    assert_same(a, b)  # the same draws every time
    clean, _ = batches(root, "fill=zero", "mode=remove", "fraction=0.0", "data.batch_size=64")
    mask, _ = batches(root, "fill=mask_only", "mode=remove", "fraction=0.5", "data.batch_size=64")
    x, src, removed = a[0]["image"], clean[0]["image"], mask[0]["image"][:, :1].bool()
    assert torch.equal(x[~removed.expand_as(x)], src[~removed.expand_as(src)])  # kept pixels are the image's own
    for k in range(len(x)):  # each removed pixel comes from one other image of the same batch
        r = removed[k, 0]
        donors = [j for j in range(len(x)) if j != k and torch.equal(x[k][:, r], src[j][:, r])]
        assert donors, f"sample {k}: no image of its batch gave its removed pixels"


def members(tar) -> set:
    listing = subprocess.run(["tar", "-tf", str(tar)], check=True, capture_output=True, text=True).stdout.split()
    return {m.split(".", 1)[1] for m in listing}


def test_bucket_and_image_shards_are_tars_and_caught_when_altered(root, tmp_path):
    shards = root / "default" / "shards" / BASE
    manifest = json.loads((shards / "grad" / "buckets" / "manifest.json").read_text())
    assert manifest["format"] == "buckets" and manifest["bits"] == 3 and manifest["boundaries"] == [7, 19, 32, 45, 57]
    images = json.loads((shards / "images" / "manifest.json").read_text())
    assert manifest["images_settings_hash"] == images["settings_hash"] and images["counts"] == manifest["counts"]
    tar = sorted((shards / "grad" / "buckets").glob("train-*.tar"))[0]
    assert members(tar) == {"buckets"} and members(shards / "images" / tar.name) == {"image.npy", "cls"}
    copy = tmp_path / "out"
    shutil.copytree(root / "default", copy / "default")
    for part in ("images", "grad/buckets"):
        bad = copy / "default" / "shards" / BASE / part / tar.name
        data = bytearray(bad.read_bytes())
        data[1100] ^= 0xFF
        bad.write_bytes(bytes(data))
        assert any(str(bad) in p and "sha256" in p for p in verify_all(copy / "default"))
        with pytest.raises(RoarError, match="does not verify"):  # a retrain refuses before training
            batches(copy, "fill=zero", "mode=remove", "fraction=0.5")
        bad.write_bytes(bytes(data[: len(data) // 2]))
        assert any(str(bad) in p for p in verify_all(copy / "default"))
        _, data = batches(
            copy, "fill=zero", "mode=remove", "fraction=0.5", "retrain.on_error=skip", "data.in_memory=false"
        )
        assert data.train_set.skipped.value > 0  # the short shard is still caught by its count
        assert str(bad) in data.train_set.manifest_problem  # and skip never skips the verification
        shutil.copy(root / "default" / "shards" / BASE / part / tar.name, bad)


def test_uint8_refuses_data_that_are_not_8_bit(root):
    with pytest.raises(RoarError, match="not 8-bit.*mask.format=npy"):
        materialize(root, "zero", fmt="uint8")


def test_uint8_and_encoded_sources_equal_npy_on_8_bit_photos(tmp_path):
    """On 8-bit files (shapes as PNG through data=imagefolder) the uint8 set stores the original files and
    their mask bits, the bucket set the files and buckets: both give the npy set's batches."""
    data = save_image_folder(tmp_path / "photos", 24, 8, 24)
    common = [f"paths.output_root={tmp_path / 'out'}", *QUIET, "data=imagefolder", f"data.root={data}"]
    common += [
        "data.resize=20",
        "data.crop=16",
        "data.num_workers=0",
        "data.batch_size=8",
    ]  # files decoded, resized, cropped
    train(compose_config("train", [*common, "trainer.max_epochs=1"]))
    attribute(compose_config("attribute", [*common, "trainer.max_epochs=1", "attribute.estimators=[grad]"]))
    mask = [*common, "trainer.max_epochs=1", "mask.estimators=[grad]", "mask.modes=[remove]", "mask.fractions=[0,0.5]"]
    write_masks(compose_config("mask", [*mask, "mask.format=buckets"]))
    for fill in ("channel_mean", "linear"):
        run = compose_config(
            "train", [*common, "trainer.max_epochs=1", "estimator=grad", "mode=remove", "fraction=0.5", f"fill={fill}"]
        )
        key, got, audits = run_key(run), {}, {}
        for fmt in ("npy", "uint8", "buckets"):
            if fmt != "buckets":
                write_masks(compose_config("mask", [*mask, f"fill={fill}", f"mask.format={fmt}"]))
            d = run_data(run, key)
            assert d.train_set.format == fmt
            got[fmt] = [d.on_after_batch_transfer(b, 0) for b in d.train_dataloader()]
            if fmt != "buckets":
                audits[fmt] = mask_recoverability(set_folder(key.shards), steps=3, batch_size=8)
            if fmt != "buckets":  # the run reads the materialized set while there is one
                shutil.rmtree(key.shards.folder.parent)  # every fraction of this fill
        assert_same(got["uint8"], got["npy"])
        assert_same(got["buckets"], got["npy"])
        assert audits["uint8"] == audits["npy"]  # the leakage audit reads the filled images of a uint8 set
    assert members(next(key.shards.buckets.images.folder.glob("train-*.tar"))) == {"source.png", "cls"}  # the files


def test_the_planner_prices_a_bucket_set_as_written(root):
    from roar.plan.run import make_plan

    plan = make_plan(cfg(root, "attribute.estimators=[grad]", "mask.estimators=[grad]", GRID, config="pipeline"))
    shards = root / "default" / "shards" / BASE
    written = sum(p.stat().st_size for part in ("grad/buckets", "images") for p in (shards / part).glob("*.tar"))
    assert plan["bucket_sets"] == 1
    assert plan["disk_bytes"]["shards_buckets"] == pytest.approx(written, rel=0.02)
    one_npy = plan["disk_bytes"]["shards_npy"] / plan["shard_sets"]  # digits: the image set holds float32 images
    assert plan["shard_sets"] == 5 and plan["disk_bytes"]["shards_buckets"] < one_npy


def test_maps_stored_reduced_are_a_third_and_serve_their_reduction_only(tmp_path):
    """attribute.store=reduced: 1 x H x W maps (RGB photos), the abs_sum of the full maps up to float16
    rounding, BackSelect's steps kept as numbers; another reduction is refused before any work."""
    data = save_image_folder(tmp_path / "photos", 24, 8, 24)
    roots = {store: tmp_path / store for store in ("full", "reduced")}
    common = [*QUIET, "data=imagefolder", f"data.root={data}", "data.resize=20", "data.crop=16", "data.num_workers=0"]
    common += ["trainer.max_epochs=1"]
    estimators = ["attribute.estimators=[grad,gbs]", "attribute.params.sis_k=8"]
    train(compose_config("train", [f"paths.output_root={roots['full']}", *common]))
    shutil.copytree(roots["full"] / "default" / "base", roots["reduced"] / "default" / "base")
    maps = {}
    for store, out in roots.items():
        attribute(
            compose_config("attribute", [f"paths.output_root={out}", *common, *estimators, f"attribute.store={store}"])
        )
        folder = next((out / "default" / "attributions").glob("*/grad")).parent
        maps[store] = {est: {sid: m for sid, m, _ in iter_maps(folder / est, "train")} for est in ("grad", "gbs")}
        maps[store]["bytes"] = sum(p.stat().st_size for p in (folder / "grad").glob("*.tar"))
    sid = next(iter(maps["full"]["grad"]))
    full, reduced = maps["full"]["grad"][sid], maps["reduced"]["grad"][sid]
    assert full.shape == (3, 16, 16) and reduced.shape == (1, 16, 16)
    assert maps["reduced"]["bytes"] < maps["full"]["bytes"]  # a third of the payload; tar blocks weigh at 16x16
    expected = np.abs(full).sum(0, keepdims=True)
    assert np.allclose(reduced, expected, rtol=0, atol=2e-3 * expected.max())
    steps = maps["reduced"]["gbs"][sid]
    assert steps.shape == (1, 16, 16) and np.array_equal(steps, maps["full"]["gbs"][sid][:1])
    mask = [f"paths.output_root={roots['reduced']}", *common, "mask.estimators=[grad]", "mask.fractions=[0.5]"]
    write_masks(compose_config("mask", [*mask, "mask.format=buckets"]))  # reduce=abs_sum: served
    with pytest.raises(RoarError, match="stored reduced by abs_sum.*Use reduce=abs_sum, or rerun roar-attribute"):
        write_masks(compose_config("mask", [*mask, "reduce=sum"]))
    with pytest.raises(RoarError, match="reduce=none keeps them full"):
        attribute(
            compose_config(
                "attribute",
                [
                    f"paths.output_root={roots['reduced']}",
                    *common,
                    *estimators,
                    "attribute.store=reduced",
                    "reduce=none",
                ],
            )
        )


def test_the_pipeline_on_buckets_gives_the_npy_pipelines_numbers(tiny_pipeline, tmp_path):
    """roar-pipeline with mask.format=buckets: no materialized set is written, and every retrain run's
    numbers are those of the same pipeline on npy shards (the batches are the same, bit for bit)."""
    from conftest import TINY
    from roar.stages.pipeline import run_pipeline

    _, _, npy_runs = tiny_pipeline
    runs = run_pipeline(
        [f"paths.output_root={tmp_path}", *TINY, "attribute.params.samples=2", "mask.format=buckets"], progress=False
    )

    def by_setting(metrics):
        return {(m["estimator"], m["mode"], m["fraction"], m["seed"]): (m["test_acc"], m["test_loss"]) for m in metrics}

    assert len(runs) == 6 and by_setting(runs) == by_setting(npy_runs)
    shards = next((tmp_path / "roar_digits" / "shards").iterdir())
    assert sorted(p.name for p in shards.iterdir()) == ["grad", "images", "random"]
    assert [p.name for p in (shards / "grad").iterdir()] == ["buckets"]
    assert (tmp_path / "roar_digits" / "report" / "images.png").is_file()  # ROAR Fig. 1 from the bucket set


def test_a_sweep_over_a_fraction_the_bucket_set_lacks_is_stopped_before_launch(root):
    from roar.stages.preflight import missing_shards

    on_grid = cfg(root, "estimator=grad", "fill=zero", "mode=keep", "fraction=0.7")
    off_grid = cfg(root, "estimator=grad", "fill=zero", "mode=keep", "fraction=0.3")
    assert missing_shards([on_grid]) == []
    (found,) = missing_shards([on_grid, off_grid])
    assert "grad/buckets (fraction=0.3 is not on this bucket map's grid (0, 0.1015625, 0.5, 0.7, 1)" in found


def test_token_drop_at_load_passes_the_patch_mask_on_and_paints_nothing():
    """A bucket set ranked by 2x2 patches with fill=token_drop: the batch keeps its pixels and carries the
    removed mask that removed_features + removed_pixels give on the same ranks (the ViT drops those tokens)."""
    from omegaconf import OmegaConf

    from roar.masking.at_load import LoadMasker
    from roar.masking.buckets import bucket_bits, grid_boundaries, pack_buckets, rank_buckets
    from roar.masking.removal import removed_features, removed_pixels

    g = torch.Generator().manual_seed(0)
    images, features, fractions = torch.rand(4, 3, 8, 8, generator=g), 16, [0.0, 0.25, 0.5]
    ranks = torch.stack([torch.randperm(features, generator=g) for _ in range(4)])
    bounds = grid_boundaries(fractions, features)
    manifest = {
        "format": "buckets",
        "image_shape": [3, 8, 8],
        "patch": 2,
        "mean": [0.5, 0.5, 0.5],
        "maps_seed": 0,
        "fractions": fractions,
        "boundaries": bounds,
        "bits": bucket_bits(bounds),
        "num_features": features,
    }
    batch = {
        "image": images,
        "id": [f"s{i}" for i in range(4)],
        "buckets": pack_buckets(rank_buckets(ranks, bounds), bucket_bits(bounds)),
    }
    for mode in ("remove", "keep"):
        out = LoadMasker(manifest, OmegaConf.create({"name": "token_drop"}), mode, 0.25)(dict(batch))
        assert torch.equal(out["image"], images) and "buckets" not in out
        assert torch.equal(out["removed"], removed_pixels(removed_features(ranks, 0.25, mode), images.shape, 2))
        assert int(out["removed"].sum()) == 4 * 4 * 4  # round(0.25 x 16) = 4 patches of 4 pixels per image
