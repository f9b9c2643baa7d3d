"""roar-attribute import=<path>: maps computed elsewhere become the ranking imported-<name>. roar's own grad maps,
exported and imported, give byte-identical masked shards; bad files are refused before anything is written."""

import numpy as np
import pytest

from conftest import TINY_BASE, base_name
from roar.attribution.imported import import_maps
from roar.attribution.run import attribute
from roar.config import compose_config
from roar.errors import RoarError
from roar.evaluate.run import evaluate
from roar.masking.run import write_masks
from roar.store.maps import iter_maps
from roar.store.resolve import maps_key, shard_set_key
from roar.store.shards import read_shard
from roar.training.run import train

QUIET = ["logger=csv", "trainer.enable_progress_bar=false", "trainer.accelerator=cpu", f"base={base_name(*TINY_BASE)}"]


@pytest.fixture(scope="module")
def root(tmp_path_factory, tiny_base):
    """The tiny base model's grad maps, computed, and exported as one array per split under ``export/``."""
    out = tiny_base(tmp_path_factory.mktemp("outputs"))
    attribute(cfg(out, "attribute.estimators=[grad]"))
    folder = maps_key(cfg(out), "grad").folder
    (out / "export").mkdir()
    for split in ("train", "test"):
        np.save(out / "export" / f"{split}.npy", np.stack([m for _, m, _ in iter_maps(folder, split)]))
    return out


def cfg(root, *overrides, config="attribute"):
    sized = ["attribute.shard_size=400"] if config == "attribute" else []
    return compose_config(config, [f"paths.output_root={root}", *QUIET, *sized, *overrides])


def shard_bytes(folder) -> dict:
    """{(tar, sample key, field): bytes} of every sample of every shard of a set."""
    return {
        (tar.name, s["__key__"], k): v
        for tar in sorted(folder.glob("*.tar"))
        for s in read_shard(tar)
        for k, v in s.items()
        if k != "__key__"
    }


def test_exported_and_imported_grad_maps_give_byte_identical_shards(root):
    made = import_maps(cfg(root, f"import={root / 'export'}", "import_name=grad_copy"))
    assert made["imported-grad_copy"] is not None  # every shard of both splits written: the manifest
    stored = maps_key(cfg(root), "imported-grad_copy").folder
    assert [s["json"] for s in read_shard(next(stored.glob("test-*.tar")))] == [
        s["json"] for s in read_shard(next(maps_key(cfg(root), "grad").folder.glob("test-*.tar")))
    ]  # id, label, target (the base model's prediction) and scale, as roar-attribute recorded them
    write_masks(cfg(root, "mask.estimators=[grad,imported-grad_copy]", "mask.fractions=[0.3]", config="mask"))
    mine, theirs = (
        shard_bytes(shard_set_key(cfg(root, config="mask"), e, "remove", 0.3).folder)
        for e in ("grad", "imported-grad_copy")
    )
    assert mine and mine.keys() == theirs.keys()
    # every sample's pixels byte for byte; its json differs only in the ranking's name it records
    renamed = {k: v.replace(b'"estimator": "imported-grad_copy"', b'"estimator": "grad"') for k, v in theirs.items()}
    assert renamed == mine


def test_roar_eval_and_a_retrain_take_the_imported_ranking_like_any(root):
    """No-retrain curves of imported grad equal grad's own (the same maps); a retrain run composes with
    ``estimator=imported-grad_copy`` (an option made from the name) and trains on its shard set."""
    import_maps(cfg(root, f"import={root / 'export'}", "import_name=grad_copy"))
    evals = ["eval.rankings=[grad,imported-grad_copy]", "eval.max_images=64", "eval.step=0.25"]
    curves = evaluate(cfg(root, *evals, config="eval"))
    assert curves["imported-grad_copy"]["mif"] == curves["grad"]["mif"]
    write_masks(cfg(root, "mask.estimators=[imported-grad_copy]", "mask.fractions=[0.5]", config="mask"))
    run = cfg(
        root,
        "estimator=imported-grad_copy",
        "fraction=0.5",
        "trainer.max_epochs=1",
        "trainer.limit_train_batches=2",
        config="train",
    )
    metrics = train(run)
    assert metrics["estimator"] == "imported-grad_copy" and 0 <= metrics["test_acc"] <= 1


def test_a_folder_of_per_sample_files_is_the_same_maps(root):
    """``<split>/<index>.npy`` (one channel, as many methods give) reads like the array of the same maps."""
    test = np.load(root / "export" / "test.npy")[:, :1]
    (root / "per_sample" / "test").mkdir(parents=True)
    for i, m in enumerate(test):
        np.save(root / "per_sample" / "test" / f"{i}.npy", m)
    np.save(root / "one_channel.npy", test)
    for path, name in ((root / "per_sample", "folder"), (root / "one_channel.npy", "array")):
        import_maps(cfg(root, f"import={path}", f"import_name={name}", "attribute.splits=[test]"))
    folder, array = (
        [m for _, m, _ in iter_maps(maps_key(cfg(root), f"imported-{n}").folder, "test")] for n in ("folder", "array")
    )
    assert np.array_equal(np.stack(folder), np.stack(array))
    assert np.allclose(np.stack(folder)[:, :1], test, rtol=2**-10, atol=0)  # float16 maps, repeated over channels


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda a: a[:-1], "maps; the split has"),
        (lambda a: a[:, :, :4], "has maps of shape"),
        (lambda a: np.where(np.arange(a.shape[0])[:, None, None, None] == 7, np.nan, a), "sample 7 holds NaN"),
    ],
    ids=["count", "shape", "nan"],
)
def test_bad_maps_are_refused_before_anything_is_written(root, edit, message):
    bad = root / f"bad_{len(message)}.npy"
    np.save(bad, edit(np.load(root / "export" / "train.npy").astype(np.float32)))
    with pytest.raises(RoarError, match=message):
        import_maps(cfg(root, f"import={bad}", "import_name=bad", "attribute.splits=[train]"))
    assert not maps_key(cfg(root), "imported-bad").folder.exists()


def test_the_same_name_from_another_file_is_refused(root):
    test = np.load(root / "export" / "test.npy")
    np.save(root / "first.npy", test)
    np.save(root / "second.npy", test[::-1].copy())
    import_maps(cfg(root, f"import={root / 'first.npy'}", "import_name=twice", "attribute.splits=[test]"))
    with pytest.raises(RoarError, match="imported from other file"):
        import_maps(cfg(root, f"import={root / 'second.npy'}", "import_name=twice", "attribute.splits=[test]"))
    import_maps(
        cfg(root, f"import={root / 'second.npy'}", "import_name=twice", "attribute.splits=[test]", "overwrite=true")
    )
    stored = np.stack([m for _, m, _ in iter_maps(maps_key(cfg(root), "imported-twice").folder, "test")])
    assert np.allclose(stored, test[::-1], rtol=2**-10, atol=0)


def test_an_imported_ranking_without_maps_is_named_with_the_command_that_makes_it(root):
    with pytest.raises(RoarError, match="import_name=nothing_here"):
        attribute(cfg(root, "attribute.estimators=[grad,imported-nothing_here]"))
