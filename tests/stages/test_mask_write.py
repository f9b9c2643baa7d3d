"""roar-mask's sets: exact counts, pinned direction, every fill, real tars, resumable writes, strict
verification, audits, and bad input refused before any writing."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from roar.config import compose_config
from roar.data import build_dataset
from roar.errors import RoarError
from roar.estimators import reduce_maps
from roar.masking import gaussian_blur
from roar.masking.fills import FILLS
from roar.masking.run import write_masks
from roar.store.experiment import verify_all
from roar.store.manifest import verify_manifest
from roar.store.maps import iter_maps
from roar.store.shards import load_npy
from roar.training.run import train
from stages.masksets import BASE, QUIET, cfg, current_umask, fill_overrides, leaf, samples

pytestmark = pytest.mark.slow


def test_every_set_verifies_and_lists_with_gnu_tar(root):
    assert verify_all(root / "default") == []
    folder = leaf(root)
    manifest = verify_manifest(folder)
    assert manifest["counts"] == {"train": 1347, "test": 450} and set(manifest["files"]) == {
        "train-000000.tar",
        "train-000001.tar",
        "train-000002.tar",
        "train-000003.tar",
        "test-000000.tar",
        "test-000001.tar",
    }
    assert oct(folder.joinpath("test-000000.tar").stat().st_mode & 0o777) == oct(
        0o666 & ~current_umask()
    )  # readable by the group, as umask says
    names = subprocess.run(
        ["tar", "-tf", str(folder / "test-000000.tar")], capture_output=True, text=True, check=True
    ).stdout.split()
    assert len(names) == 400 * 4 and {n.split(".", 1)[1] for n in names} == {"cls", "image.npy", "json", "mask.npy"}
    one = next(iter(samples(folder).values()))
    meta = json.loads(one["json"])
    assert (
        meta["estimator"] == "grad"
        and meta["mode"] == "remove"
        and meta["fraction"] == 0.3
        and meta["fill"] == "channel_mean"
    )


@pytest.mark.parametrize("mode", ["remove", "keep"])
@pytest.mark.parametrize("fraction", [0, 0.3, 0.7, 1.0])
def test_exact_masked_counts(root, mode, fraction):
    expected = round(fraction * 64)  # t is the fraction masked in both modes
    counts = {int(load_npy(s["mask.npy"]).sum()) for s in samples(leaf(root, mode=mode, fraction=fraction)).values()}
    assert counts == {expected}


def test_keep_t_and_remove_1_minus_t_are_complementary(root):
    keep, remove = samples(leaf(root, mode="keep", fraction=0.3)), samples(leaf(root, mode="remove", fraction=0.7))
    assert keep.keys() == remove.keys()
    assert all(np.array_equal(load_npy(keep[k]["mask.npy"]), ~load_npy(remove[k]["mask.npy"])) for k in keep)


def test_direction_is_pinned_top_ranked_features_are_removed(root):
    maps = {sid: m for sid, m, _ in iter_maps(root / "default" / "attributions" / BASE / "grad", "test")}
    for sid, s in list(samples(leaf(root, fraction=0.3)).items())[:50]:
        score = reduce_maps(torch.from_numpy(maps[sid])[None], "abs_sum")[0, 0].numpy().astype(np.float16)
        removed = load_npy(s["mask.npy"])[0]
        assert score[removed].min() >= score[~removed].max()
    keep = samples(leaf(root, mode="keep", fraction=0.7))  # KAR: the bottom 70% masked, the top 30% kept
    for sid, s in list(keep.items())[:50]:
        score = reduce_maps(torch.from_numpy(maps[sid])[None], "abs_sum")[0, 0].numpy().astype(np.float16)
        kept = ~load_npy(s["mask.npy"])[0]
        assert score[kept].min() >= score[~kept].max()


def test_channel_mean_fill_and_unmasked_pixels(root):
    test = build_dataset(OmegaConf.create({"name": "digits"}), "test")
    mean = json.loads((leaf(root) / "manifest.json").read_text())["mean"][0]
    for sid, s in list(samples(leaf(root)).items())[:20]:
        image, removed = load_npy(s["image.npy"]), load_npy(s["mask.npy"])
        original = test[test.ids.index(sid)]["image"].numpy()
        assert np.allclose(image[removed], mean) and np.array_equal(image[~removed], original[~removed])


@pytest.mark.parametrize("fill", ["zero", "constant", "blur", "random_image", "mask_only"])
def test_every_fill(root, fill):
    write_masks(
        cfg(root, *fill_overrides(fill), "mask.estimators=[grad]", "mask.fractions=[0.5]", "mask.splits=[test]")
    )
    test = build_dataset(OmegaConf.create({"name": "digits"}), "test")
    train_set = build_dataset(OmegaConf.create({"name": "digits"}), "train")
    for sid, s in list(samples(leaf(root, fill=fill_overrides(fill), fraction=0.5)).items())[:10]:
        image, removed = torch.from_numpy(load_npy(s["image.npy"])), torch.from_numpy(load_npy(s["mask.npy"]))
        original = test[test.ids.index(sid)]["image"]
        expected = {
            "zero": torch.zeros_like(original),
            "constant": torch.full_like(original, 0.25),
            "blur": gaussian_blur(original[None])[0],
            "mask_only": removed.float().expand_as(original),
        }.get(fill)
        if fill == "random_image":
            donors = [x["image"] for x in train_set]
            assert any(torch.equal(image[removed], d[removed]) for d in donors)
        elif fill == "mask_only":
            assert torch.equal(image, expected)
        else:
            assert torch.allclose(image[removed.expand_as(image)], expected[removed.expand_as(image)], atol=1e-6)
            assert torch.equal(image[~removed.expand_as(image)], original[~removed.expand_as(image)])


@pytest.fixture(scope="module")
def fills_experiment(root):
    """The module's base model and maps in an experiment of their own ("fills"), so that the sets each fill
    writes do not join the default experiment's (other tests count those)."""
    import shutil

    for part in ("base", "attributions"):
        shutil.copytree(root / "default" / part, root / "fills" / part, dirs_exist_ok=True)
    return root


@pytest.mark.parametrize("fill", [n for n in FILLS.names() if not FILLS[n].drops_tokens])
def test_every_registered_fill_is_written_as_the_registry_paints_it(fills_experiment, fill):
    """Every painting fill of the registry (a new one included, with no test of its own): the shards hold the
    test images painted by the fill bound to the training mean and the maps seed, with the sample's own
    donors; known pixels are kept (but by the leakage control, whose image is the mask)."""
    from roar.data.stats import channel_stats
    from roar.masking.donors import donor_images
    from roar.masking.fills import bind_fill

    root = fills_experiment
    settings = ("mask.estimators=[grad]", "mask.fractions=[0.5]", "mask.splits=[test]", "name=fills")
    c = cfg(root, *fill_overrides(fill), *settings)
    write_masks(c)
    test, train_set = (build_dataset(OmegaConf.create({"name": "digits"}), split) for split in ("test", "train"))
    bound = bind_fill(c.fill, 1, channel_stats(train_set, c.data, c.paths.cache_dir)["mean"], int(c.maps_seed))
    got = list(samples(leaf(root, fill=fill_overrides(fill), fraction=0.5, name="fills")).items())[:8]
    ids = [sid for sid, _ in got]
    images = torch.stack([test[test.ids.index(sid)]["image"] for sid in ids])
    removed = torch.stack([torch.from_numpy(load_npy(s["mask.npy"])) for _, s in got])
    donors = donor_images(train_set, ids, int(c.maps_seed)) if bound.needs_donors else None
    written = torch.stack([torch.from_numpy(load_npy(s["image.npy"])) for _, s in got])
    assert removed.any() and torch.allclose(written, bound.apply(images, removed, ids, donors), atol=1e-6)
    if not bound.leakage_control:
        kept = ~removed.expand_as(images)
        assert torch.equal(written[kept], images[kept])


def test_killed_mask_run_resumes_to_verified_identical_shards(root, monkeypatch):
    import roar.store.shards as shards

    clean = {k: v["image.npy"] for k, v in samples(leaf(root, estimator="random")).items()}
    calls = {"n": 0}
    original = shards.ShardWriter.write

    def dying(self, sample):
        calls["n"] += 1
        if calls["n"] == 1500:
            raise KeyboardInterrupt("killed")
        original(self, sample)

    monkeypatch.setattr(shards.ShardWriter, "write", dying)
    with pytest.raises(KeyboardInterrupt):
        write_masks(cfg(root, "name=killed", "mask.estimators=[random]"))
    monkeypatch.setattr(shards.ShardWriter, "write", original)
    assert not list((root / "killed" / "shards").rglob("*.tmp")) and not list(
        (root / "killed" / "shards").rglob("manifest.json")
    )
    write_masks(cfg(root, "name=killed", "mask.estimators=[random]"))
    assert verify_all(root / "killed") == []
    again = {k: v["image.npy"] for k, v in samples(leaf(root, estimator="random", name="killed")).items()}
    assert again == clean  # byte-identical


@pytest.fixture(scope="module")
def killed_setup(root):
    import shutil

    for part in ("base", "attributions"):
        shutil.copytree(root / "default" / part, root / "killed" / part, dirs_exist_ok=True)


test_killed_mask_run_resumes_to_verified_identical_shards = pytest.mark.usefixtures("killed_setup")(
    test_killed_mask_run_resumes_to_verified_identical_shards
)


def test_truncated_shard_is_reported_by_name(root, tmp_path):
    import shutil

    folder = leaf(tmp_path, fraction=0.7)
    shutil.copytree(leaf(root, fraction=0.7), folder)
    tar = folder / "train-000001.tar"
    tar.write_bytes(tar.read_bytes()[: tar.stat().st_size // 2])
    problems = verify_all(tmp_path / "default")
    assert len(problems) == 1 and "train-000001.tar has sha256" in problems[0]
    out = subprocess.run(
        [str(Path(sys.executable).parent / "roar-mask"), "verify", f"paths.output_root={tmp_path}"],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 1 and "train-000001.tar" in out.stdout
    run = [
        f"paths.output_root={tmp_path}",
        *QUIET,
        f"base={BASE}",
        "estimator=grad",
        "fraction=0.7",
        "trainer.max_epochs=1",
    ]
    with pytest.raises(RoarError, match="train-000001.tar has sha256"):
        train(compose_config("train", run))
    import tarfile

    with tarfile.open(tar) as cut:  # a cut at a member boundary reads as a shorter, valid tar
        intact = sum(1 for m in cut if m.name.endswith(".mask.npy"))
    metrics = train(compose_config("train", [*run, "retrain.on_error=skip"]))
    assert 0 < intact < 400 and metrics["skipped_samples"] == 400 - intact and metrics["num_train"] == 1347
    assert "train-000001.tar has sha256" in metrics["manifest_mismatch"]  # skip never skips the verification
    # shown in the report, marked above 1% of the samples; a repair of the shards makes the run incomplete
    from roar.report.collect import summarize

    (row,) = summarize([{**metrics, "test_acc": metrics["test_acc"]}])
    assert row["skipped"] == 400 - intact and "of samples skipped" in row["status"]
    shutil.copy(leaf(root, fraction=0.7) / "train-000001.tar", tar)  # repaired
    repaired = train(compose_config("train", [*run, "retrain.on_error=skip"]))
    assert repaired["skipped_samples"] == 0 and repaired["num_train"] == 1347 and "manifest_mismatch" not in repaired
    # a flipped bit that still decodes: nothing to skip, but the mismatch is said and recorded
    data = bytearray(tar.read_bytes())
    at = data.index(b"\x93NUMPY", data.index(b".image.npy")) + 200  # inside the first image's pixels
    data[at] ^= 0x01
    tar.write_bytes(bytes(data))
    flipped = train(compose_config("train", [*run, "retrain.on_error=skip", "overwrite=true"]))
    assert flipped["skipped_samples"] == 0 and "train-000001.tar has sha256" in flipped["manifest_mismatch"]


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["mask.fractions=[0.5,1.5]"], r"fraction=1.5 is outside \[0, 1\]; it is the share of features masked"),
        (["mask.modes=[drop]"], "mask.modes has 'drop'"),
        (["mask.format=jpg"], "never a lossy one"),
        (["mask.estimators=[ig]"], "No complete maps for estimator ig"),
        (["data.image_size=16"], "was made from other train data"),
        (["fill=constant", "fill.value=[2]"], r"fill.value=\[2\]"),
    ],
)
def test_bad_input_fails_before_writing(root, overrides, message):
    before = sorted(p.name for p in (root / "default" / "shards").rglob("*"))
    with pytest.raises(RoarError, match=message):
        write_masks(cfg(root, *overrides))
    assert sorted(p.name for p in (root / "default" / "shards").rglob("*")) == before


def test_attribution_maps_not_matching_the_data_name_file_and_sample(root, tmp_path):
    from roar.masking.run import read_attribution_shard

    tar = root / "default" / "attributions" / BASE / "grad" / "test-000000.tar"
    ids = build_dataset(OmegaConf.create({"name": "digits"}), "test").ids[:400]
    with pytest.raises(RoarError, match=f"{tar}: sample 0 is {ids[0]}, the dataset has digits-0001 there"):
        read_attribution_shard(tar, ["digits-0001", *ids[1:]], (1, 8, 8))
    with pytest.raises(
        RoarError, match=f"the map of sample {ids[0]} has shape \\(1, 8, 8\\), the images \\(3, 8, 8\\)"
    ):
        read_attribution_shard(tar, ids, (3, 8, 8))


def test_masking_one_split_later_keeps_the_other_in_every_manifest(root):
    """Manifests merge splits: ``mask.splits=[test]`` after a full run leaves the train split listed."""
    before = {
        p: json.loads(p.read_text())["counts"]
        for p in (root / "default" / "shards").rglob("channel_mean/*/manifest.json")
    }
    assert len(before) == 16 and all(c == {"test": 450, "train": 1347} for c in before.values())
    manifests = write_masks(cfg(root, "mask.splits=[test]", "mask.modes=[remove,keep]"))
    assert manifests and all(
        m["counts"] == {"test": 450, "train": 1347} and len(m["files"]) == 6 for m in manifests.values()
    )
    verify_all(root / "default")


def test_linear_fill_shards_keep_known_pixels_and_name_their_fallback(root):
    """fill=linear through roar-mask: known pixels untouched, filled ones near their neighbours' mean, and
    at t = 1 (nothing known) the channel mean, said in each sample's json."""
    fill = ["fill=linear"]
    write_masks(cfg(root, *fill, "mask.estimators=[grad]", "mask.fractions=[0.5,1.0]", "mask.splits=[test]"))
    test = build_dataset(OmegaConf.create({"name": "digits"}), "test")
    for sid, s in list(samples(leaf(root, fill=fill, fraction=0.5)).items())[:10]:
        image, removed = torch.from_numpy(load_npy(s["image.npy"])), torch.from_numpy(load_npy(s["mask.npy"]))
        original = test[test.ids.index(sid)]["image"]
        assert torch.equal(image[~removed], original[~removed]) and "filled_with" not in json.loads(s["json"])
        assert not torch.allclose(image[removed], original[removed])
    for s in list(samples(leaf(root, fill=fill, fraction=1.0)).values())[:5]:
        assert json.loads(s["json"])["filled_with"] == "channel_mean"


def test_roar_mask_audits_each_set_once_and_prints_its_recoverability(root, monkeypatch, capsys):
    import roar.evaluate.leakage as leakage

    sets = write_masks(cfg(root, "mask.estimators=[grad]", "mask.fractions=[0,0.7]"))
    records = leakage.audit_sets(sets, steps=40, seed=0)
    assert [(r["estimator"], r["fraction"]) for r in records] == [("grad", 0.7)]  # t = 0 masks nothing: no audit
    rec = records[0]["recoverability"]
    assert rec["balanced_accuracy"] > 0.75 and rec["n_test"] == 450  # the channel mean is easy to spot on digits
    assert (leaf(root, fraction=0.7) / "audit.json").is_file()
    assert "mask recoverability" in capsys.readouterr().out

    def recompute(*args, **kwargs):
        raise AssertionError("an unchanged set was audited again")

    monkeypatch.setattr(leakage, "mask_recoverability", recompute)
    assert leakage.audit_sets(sets, steps=40, seed=0) == records  # read back from audit.json


def test_the_blur_is_the_papers_at_224_pixels_and_scales_with_the_image():
    from roar.masking.fills import blur_size

    cfg = OmegaConf.create({"name": "blur", "kernel": 21, "sigma": 10.0, "reference_size": 224})
    assert blur_size(cfg, 224) == (21, 10.0)  # missingness paper C.4
    assert blur_size(cfg, 32) == (3, pytest.approx(10 * 32 / 224))
    assert blur_size(cfg, 112) == (11, pytest.approx(5.0))
    with pytest.raises(RoarError, match="at 8 pixels they scale to a kernel under 3 pixels"):
        blur_size(cfg, 8)
    assert blur_size(OmegaConf.merge(cfg, {"reference_size": None}), 8) == (21, 10.0)  # in pixels, as given


def test_a_constant_fill_of_the_wrong_length_says_how_many_values_the_images_take():
    from roar.masking.fills import check_fill

    with pytest.raises(RoarError, match=r"fill.value=\[0.1, 0.2\]: give 1 pixel value in \[0, 1\]"):
        check_fill(OmegaConf.create({"name": "constant", "value": [0.1, 0.2]}), 1)
    with pytest.raises(RoarError, match=r"give 1 or 3 pixel values in \[0, 1\]"):
        check_fill(OmegaConf.create({"name": "constant", "value": [0.1, 0.2]}), 3)


def test_a_set_with_shards_and_an_unreadable_manifest_is_not_called_missing(root, tmp_path):
    import shutil

    folder = leaf(tmp_path, fraction=0.7)
    shutil.copytree(leaf(root, fraction=0.7), folder)
    (folder / "manifest.json").write_text('{"files": ')  # cut off mid-write
    run = [f"paths.output_root={tmp_path}", *QUIET, f"base={BASE}", "estimator=grad", "fraction=0.7"]
    with pytest.raises(RoarError, match=r"holds \d+ shard\(s\) but its manifest.json is missing or unreadable"):
        train(compose_config("train", [*run, "trainer.max_epochs=1"]))
