"""Datasets: real embedded data, deterministic generated data, local roots with clear errors."""

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image

from roar.data import build_dataset
from roar.data.shapes import CLASSES, _marker, render
from roar.data.stats import channel_stats, compute_channel_stats
from roar.errors import RoarError


def cfg(**kw):
    return OmegaConf.create(kw)


def test_digits_is_a_fixed_stratified_split():
    train, test = build_dataset(cfg(name="digits"), "train"), build_dataset(cfg(name="digits"), "test")
    assert (len(train), len(test)) == (1347, 450)
    assert not set(train.ids) & set(test.ids) and len(set(train.ids)) == len(train.ids)
    counts = np.bincount(test.labels.numpy(), minlength=10)
    assert counts.min() >= 43 and counts.max() <= 46  # stratified: ~45 per class
    again = build_dataset(cfg(name="digits"), "test")
    assert again.ids == test.ids and torch.equal(again.images, test.images)
    sample = train[5]
    assert (
        sample["image"].shape == (1, 8, 8)
        and 0 <= sample["image"].min()
        and sample["image"].max() <= 1
        and sample["index"] == 5
    )


def test_digits_resize():
    assert build_dataset(cfg(name="digits", image_size=32), "test")[0]["image"].shape == (1, 32, 32)


SHAPES = dict(name="shapes", image_size=32, num_classes=6, n_train=40, n_test=20, seed=0, shortcut_prob=0.0)


def test_shapes_is_a_function_of_seed_split_and_index():
    small = build_dataset(cfg(**SHAPES), "train")
    large = build_dataset(cfg(**{**SHAPES, "n_train": 60}), "train")
    assert torch.equal(small.images, large.images[:40]) and small.ids == large.ids[:40]
    other_seed = build_dataset(cfg(**{**SHAPES, "seed": 1}), "train")
    assert not torch.equal(small.images, other_seed.images)
    test = build_dataset(cfg(**SHAPES), "test")
    assert not torch.equal(test.images[:20], small.images[:20]) and not set(test.ids) & set(small.ids)
    assert set(small.labels.tolist()) == set(range(6))


def test_shapes_object_mask_marks_the_drawn_shape():
    image, label, obj, shortcut = render(0, "train", 3, 32, 6, 0.0)
    assert CLASSES[label] and obj.sum() > 20 and not shortcut.any()
    inside = image[obj]
    assert np.allclose(inside, inside[0])  # one flat colour inside the object
    assert not np.allclose(image[~obj], inside[0])


def test_shapes_shortcut_marker_is_class_specific():
    data = build_dataset(cfg(**{**SHAPES, "shortcut_prob": 1.0}), "train")
    masks = data.extras["shortcut_mask"]
    assert masks.any(dim=(1, 2)).all() and not (masks & data.extras["object_mask"]).all()
    markers = [_marker(label, 3) for label in range(6)]
    assert len({m.tobytes() for m in markers}) == 6 and all(m.any() for m in markers)
    for i in range(len(data)):
        assert masks[i].sum() == markers[int(data.labels[i])].sum()
        assert torch.equal(
            data.images[i][:, masks[i]], torch.tensor([[1.0], [0.0], [1.0]]).expand(3, int(masks[i].sum()))
        )
    none = build_dataset(cfg(**{**SHAPES, "shortcut_prob": 0.0}), "train").extras["shortcut_mask"]
    assert not none.any()


def test_shapes_rejects_bad_probability():
    with pytest.raises(RoarError, match=r"data.shortcut_prob=2 is outside \[0, 1\]"):
        build_dataset(cfg(**{**SHAPES, "shortcut_prob": 2}), "train")


def test_channel_stats_are_correct_and_cached(tmp_path):
    data = build_dataset(cfg(**SHAPES), "train")
    stats = channel_stats(data, cfg(name="shapes"), tmp_path)
    assert np.allclose(stats["mean"], data.images.mean(dim=(0, 2, 3)).numpy(), atol=1e-6)
    assert np.allclose(stats["std"], data.images.std(dim=(0, 2, 3)).numpy(), atol=1e-5)
    cached = list(tmp_path.glob("stats-shapes-*.json"))
    assert len(cached) == 1
    cached[0].write_text('{"mean": [1, 2, 3], "std": [1, 1, 1]}')
    assert channel_stats(data, cfg(name="shapes"), tmp_path)["mean"] == [1, 2, 3]  # read, not recomputed


def make_imagefolder(root, classes=("cat", "dog"), per_class=3, size=12, seed=0):
    rng = np.random.default_rng(seed)
    for split in ("train", "val"):
        for c in classes:
            (root / split / c).mkdir(parents=True)
            for i in range(per_class):
                pixels = rng.integers(0, 256, size=(size, size + 4, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(root / split / c / f"{c}{i}.png")


def test_imagefolder_reads_a_local_tree(tmp_path):
    make_imagefolder(tmp_path)
    c = cfg(name="imagefolder", root=str(tmp_path), train_dir="train", test_dir="val", resize=10, crop=8)
    train = build_dataset(c, "train")
    assert len(train) == 6 and train.classes == ["cat", "dog"] and train.ids[0] == "train/cat/cat0"
    sample = train[4]
    assert sample["image"].shape == (3, 8, 8) and sample["label"] == 1
    mean, std = compute_channel_stats(train, batch_size=4)
    assert len(mean) == 3 and all(0.3 < m < 0.7 for m in mean)
    stats = channel_stats(train, c, tmp_path / "cache")
    assert list((tmp_path / ".roar-cache").glob("stats-imagefolder-*.json"))  # next to the data
    assert np.allclose(stats["mean"], mean)


def test_imagefolder_numbers_classes_from_train_and_refuses_a_val_that_differs(tmp_path):
    """A val/ missing a class used to renumber every later class (test_acc 0 for a perfect model)."""
    make_imagefolder(tmp_path, classes=("ant", "bee", "cat"))
    c = cfg(name="imagefolder", root=str(tmp_path), train_dir="train", test_dir="val", resize=10, crop=8)
    test = build_dataset(c, "test")
    assert test.classes == ["ant", "bee", "cat"] and [test[i]["label"] for i in (0, 3, 6)] == [0, 1, 2]
    import shutil

    shutil.rmtree(tmp_path / "val" / "ant")
    (tmp_path / "val" / "Bee").mkdir()
    with pytest.raises(RoarError, match=r"only in train/: \['ant'\]; only in val/: \['Bee'\]"):
        build_dataset(c, "test")
    for d in ("bee", "cat"):
        shutil.rmtree(tmp_path / "train" / d)
    with pytest.raises(RoarError, match="holds 1 class folder"):
        build_dataset(c, "train")


@pytest.mark.parametrize(
    "name, expected",
    [
        ("cifar10", "cifar-10-batches-py"),
        ("cifar100", "cifar-100-python"),
        ("food101", "food-101/meta"),
        ("imagefolder", "train"),
    ],
)
def test_missing_root_says_what_was_expected_where(tmp_path, name, expected):
    with pytest.raises(RoarError, match="data.root is not set"):
        build_dataset(cfg(name=name, root=None), "train")
    with pytest.raises(RoarError, match=f"expected {tmp_path / expected} but it does not exist"):
        build_dataset(cfg(name=name, root=str(tmp_path)), "train")


def test_malformed_cifar_root_is_reported(tmp_path):
    (tmp_path / "cifar-10-batches-py").mkdir()
    (tmp_path / "cifar-10-batches-py" / "data_batch_1").write_bytes(b"not a pickle")
    with pytest.raises(RoarError, match=f"data.root={tmp_path}: the files there could not be read"):
        build_dataset(cfg(name="cifar10", root=str(tmp_path)), "train")


def test_an_unreadable_image_is_named_or_skipped_and_counted(tmp_path):
    make_imagefolder(tmp_path)
    broken = tmp_path / "train" / "cat" / "cat1.png"
    broken.write_bytes(broken.read_bytes()[:60])  # truncated
    c = cfg(name="imagefolder", root=str(tmp_path), train_dir="train", test_dir="val", resize=10, crop=8)
    train = build_dataset(c, "train")
    with pytest.raises(RoarError, match=r"train/cat/cat1.png cannot be read as an image .*data.on_error=skip"):
        compute_channel_stats(train, batch_size=4)  # the statistics pass, the first to read every image, names it
    skipping = build_dataset(cfg(name="imagefolder", root=str(tmp_path), resize=10, crop=8, on_error="skip"), "train")
    assert torch.equal(skipping[1]["image"], skipping[2]["image"]) and skipping.skipped.value == 1
    with pytest.raises(RoarError, match="data.on_error='maybe'"):
        build_dataset(cfg(name="imagefolder", root=str(tmp_path), on_error="maybe"), "train")


def test_photos_of_other_shapes_without_a_crop_are_named_before_a_batch_fails(tmp_path):
    """data.crop=null keeps each photo's aspect: two shapes cannot be batched; the second shape's file is named
    with the way out (issue 31, item 11), instead of torch.stack's traceback."""
    make_imagefolder(tmp_path)
    wide = tmp_path / "train" / "dog" / "dog1.png"
    Image.fromarray(np.zeros((12, 30, 3), dtype=np.uint8)).save(wide)
    train = build_dataset(cfg(name="imagefolder", root=str(tmp_path), resize=10, crop=None), "train")
    assert train[0]["image"].shape == (3, 10, 13)
    with pytest.raises(RoarError, match=r"dog/dog1.png is 10x25 pixels .*/cat/cat0.png is 10x13.*data.crop=10"):
        compute_channel_stats(train, batch_size=4)
    cropped = build_dataset(cfg(name="imagefolder", root=str(tmp_path), resize=10, crop=10), "train")
    assert cropped[4]["image"].shape == (3, 10, 10)


def test_channel_stats_fall_back_when_the_data_root_cannot_be_written(tmp_path, monkeypatch):
    """A read-only data root with a .roar-cache/ folder: the statistics are kept under outputs/.cache
    instead of failing after the pass (root ignores permission bits, so the write is made to fail)."""
    import roar.data.stats as stats_module

    make_imagefolder(tmp_path / "data")
    (tmp_path / "data" / ".roar-cache").mkdir()
    c = cfg(name="imagefolder", root=str(tmp_path / "data"), resize=10, crop=8)
    real = stats_module.atomic_write_json

    def read_only(path, obj):
        if str(tmp_path / "data") in str(path):
            raise OSError(30, "Read-only file system")
        return real(path, obj)

    monkeypatch.setattr(stats_module, "atomic_write_json", read_only)
    stats = channel_stats(build_dataset(c, "train"), c, tmp_path / "cache")
    assert len(stats["mean"]) == 3 and list((tmp_path / "cache").glob("stats-imagefolder-*.json"))


def test_images_much_smaller_than_the_crop_get_one_line_saying_how_to_train_at_their_size(tmp_path, make_cfg, capsys):
    from roar.training.run import train

    make_imagefolder(tmp_path / "photos")
    folder = {"name": "imagefolder", "root": str(tmp_path / "photos"), "train_dir": "train", "test_dir": "val"}
    fitting = cfg(**folder, resize=14, crop=12)
    assert build_dataset(fitting, "train").upsampling_note(fitting) is None
    blown_up = cfg(**folder, resize=256, crop=224)
    note = build_dataset(blown_up, "train").upsampling_note(blown_up)
    assert "about 12x12 pixels" in note and "upsample them 18.7x" in note and "data.resize=12 data.crop=12" in note
    overrides = [f"data.{k}={v}" for k, v in folder.items() if k != "name"]
    train(make_cfg("data=imagefolder", *overrides, "data.resize=24", "data.crop=24", "trainer.max_epochs=1"))
    assert capsys.readouterr().out.count("[roar-train] note: the images under") == 1


def test_a_base_model_trained_on_one_folder_is_not_taken_for_another_with_the_same_layout(tmp_path, make_cfg):
    """Two real folders with the same file names and other images: the second roar-train used to say
    "complete; skipping" with the first folder's accuracy, and roar-attribute to map the second folder's
    images with the first folder's model."""
    from roar.attribution.run import attribute
    from roar.config import compose_config
    from roar.training.run import train

    runs = {}
    for name, seed in (("A", 0), ("B", 1)):
        make_imagefolder(tmp_path / name, seed=seed)
        runs[name] = ["data=imagefolder", f"data.root={tmp_path / name}", "data.resize=12", "data.crop=8"]
        runs[name] += ["trainer.max_epochs=1", "data.batch_size=4"]
    first = train(make_cfg(*runs["A"]))
    assert first["data_root"] == str((tmp_path / "A").resolve()) and set(first["data_fingerprints"]) == {
        "train",
        "test",
    }
    assert train(make_cfg(*runs["A"])) == first  # the same folder: skipped as before
    with pytest.raises(RoarError, match=r"was trained on other images \(.*/A\) than data.root=.*/B holds now"):
        train(make_cfg(*runs["B"]))
    outputs = make_cfg().paths.output_root
    with pytest.raises(RoarError, match=r"was trained on other images \(.*/A\) than data.root=.*/B holds now"):
        attribute(compose_config("attribute", [f"paths.output_root={outputs}", "logger=csv", *runs["B"][:4]]))
    again = train(make_cfg(*runs["B"], "overwrite=true"))
    assert again["data_root"] == str((tmp_path / "B").resolve())


def test_an_undecodable_shard_sample_is_named_on_the_in_memory_path_too(tmp_path):
    """The device-resident copy decodes a split through ``samples()``; a sample that does not decode names its
    shard and id there as on the streamed path (issue 31, item 11)."""
    from roar.data.masked_shards import MaskedShards
    from roar.data.resident import decode
    from roar.store.shards import ShardWriter, encode_key, npy_bytes

    with ShardWriter(tmp_path / "train-000000.tar") as writer:
        writer.write({"__key__": encode_key("a"), "image.npy": npy_bytes(np.zeros((1, 2, 2), np.float32)), "cls": b"0"})
        writer.write({"__key__": encode_key("b"), "image.npy": b"not an array", "cls": b"1"})
    manifest = {
        "files": {"train-000000.tar": {"count": 2}},
        "counts": {"train": 2},
        "classes": ["x", "y"],
        "image_shape": [1, 2, 2],
        "dataset": "test",
        "mean": [0.5],
        "std": [0.25],
        "drops_tokens": False,
    }
    shards = MaskedShards(tmp_path, "train", manifest)
    with pytest.raises(RoarError, match=r"train-000000.tar: sample b cannot be decoded .*retrain.on_error=skip"):
        decode(shards, "train")
    with pytest.raises(RoarError, match=r"train-000000.tar: sample b cannot be decoded"):
        list(shards)  # the streamed path, as before


def test_cifar10c_reads_one_corruption_at_one_severity_or_a_sample_of_all(tmp_path):
    """The published layout (CIFAR-10-C/<corruption>.npy, five severities stacked, and labels.npy), here with 4
    images per severity; each image's first pixel holds its row, so the rows read are visible."""
    folder = tmp_path / "CIFAR-10-C"
    folder.mkdir()
    np.save(folder / "labels.npy", (np.arange(20) % 10).astype(np.uint8))
    for k, name in enumerate(["fog", "snow"]):
        images = np.zeros((20, 32, 32, 3), np.uint8)
        images[:, 0, 0, 0] = np.arange(20) + 100 * k
        np.save(folder / f"{name}.npy", images)
    snow = build_dataset(cfg(name="cifar10c", root=str(tmp_path), corruption="snow", severity=2), "test")
    assert len(snow) == 4 and snow.ids == [f"cifar10c-snow-{r:05d}" for r in range(4, 8)]
    first = snow[0]
    assert first["image"].shape == (3, 32, 32) and round(float(first["image"][0, 0, 0]) * 255) == 104
    assert first["label"] == 4 and snow.classes[0] == "airplane"
    sample = build_dataset(cfg(name="cifar10c", root=str(tmp_path), corruption="all", n_test=7, seed=0), "test")
    again = build_dataset(cfg(name="cifar10c", root=str(tmp_path), corruption="all", n_test=7, seed=0), "test")
    assert len(sample) == 7 == len(set(sample.ids)) and sample.ids == again.ids  # seeded, without repeats
    with pytest.raises(RoarError, match=r"data.corruption=rain: no .*rain.npy. Valid: fog, snow, or all"):
        build_dataset(cfg(name="cifar10c", root=str(tmp_path), corruption="rain"), "test")
    with pytest.raises(RoarError, match="data.severity=6: give 1 to 5"):
        build_dataset(cfg(name="cifar10c", root=str(tmp_path), corruption="fog", severity=6), "test")
    with pytest.raises(RoarError, match="expected .*cifar-10-batches-py"):  # the train split is CIFAR-10's own
        build_dataset(cfg(name="cifar10c", root=str(tmp_path)), "train")


def test_imagenette_corner_takes_one_fixed_corner_per_image_resized_to_the_crop(tmp_path):
    """The masking paper's Imagenette-Corner (appendix C, footnote 12): resize, then one of the four corners of
    ``data.corner`` pixels resized to ``data.crop``, instead of the center crop; the same image gets the same corner
    from its file and from its stored bytes (a shard's source file), and the corners vary across images."""
    from torchvision.transforms import functional

    from roar.data.local import SourceDecoder

    make_imagefolder(tmp_path, per_class=8, size=16)
    c = cfg(name="imagefolder", root=str(tmp_path), train_dir="train", test_dir="val", resize=16, corner=9, crop=12)
    train = build_dataset(c, "train")
    corners = set()
    decode = SourceDecoder({"resize": 16, "crop": 12, "corner": 9})
    for i in range(len(train)):
        image = train[i]["image"]
        assert image.shape == (3, 12, 12)
        with Image.open(train.file(i)) as source:
            resized = functional.resize(source.convert("RGB"), 16)
        w, h = resized.size
        crops = [resized.crop((x, y, x + 9, y + 9)) for y in (0, h - 9) for x in (0, w - 9)]
        crops = [functional.to_tensor(functional.resize(crop, [12, 12])) for crop in crops]
        found = [k for k, crop in enumerate(crops) if torch.equal(crop, image)]
        assert len(found) == 1
        corners.add(found[0])
        ext, data = train.encoded(i)
        assert torch.equal(decode(ext, data), image)
    assert len(corners) >= 3  # 16 images: the four corners drawn about equally often
    with pytest.raises(RoarError, match="data.corner=40"):
        build_dataset(cfg(name="imagefolder", root=str(tmp_path), resize=16, corner=40, crop=12), "train")[0]
