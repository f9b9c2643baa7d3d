"""Retraining on roar-mask's sets: a loader that splits ranks exactly, the same numbers streamed or in
memory, the leakage control, token drop, stale sets redone, retrain variants."""

import json

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from roar.attribution.run import attribute
from roar.config import compose_config
from roar.data import build_dataset
from roar.data.masked_shards import MaskedShards
from roar.errors import RoarError
from roar.masking.run import write_masks
from roar.store.manifest import verify_manifest
from roar.store.resolve import run_key
from roar.store.shards import load_npy
from roar.training.run import train
from stages.masksets import BASE, QUIET, cfg, leaf, samples

pytestmark = pytest.mark.slow


def test_loader_splits_ranks_exactly_once_per_epoch(root):
    folder = leaf(root)
    manifest = verify_manifest(folder)
    all_ids = set(build_dataset(OmegaConf.create({"name": "digits"}), "train").ids)
    for workers in (0, 3):
        seen, lengths = [], []
        for rank in (0, 1):
            ds = MaskedShards(folder, "train", manifest, seed=0)
            ds.configure(rank, 2, workers)
            ds.set_epoch(1)
            ids = []
            if workers:
                loader = torch.utils.data.DataLoader(ds, batch_size=None, num_workers=workers)
                ids = [s["id"] for s in loader]
            else:
                ids = [s["id"] for s in ds]
            assert len(ids) == len(ds)
            seen.append(ids)
            lengths.append(len(ids))
        assert lengths[0] == lengths[1]  # equal epochs: DDP never waits on a finished rank
        assert not set(seen[0]) & set(seen[1]) and set(seen[0]) | set(seen[1]) == all_ids
        assert sum(lengths) - len(all_ids) <= max(1, workers)  # the odd sample out, repeated
    order = lambda epoch: [s["id"] for s in _epoch(folder, manifest, epoch)]
    assert order(0) != order(1) and order(1) == order(1)  # reshuffled per epoch, reproducibly


def _epoch(folder, manifest, epoch):
    ds = MaskedShards(folder, "train", manifest, seed=0)
    ds.set_epoch(epoch)
    return list(ds)


def test_training_on_shards_matches_training_in_memory(root, tmp_path):
    """The same masked images, streamed from tars or held in memory, train to the same accuracy."""
    from roar.data.base import TensorImageDataset
    from roar.data.registry import DATASETS

    folder = leaf(root, fraction=0.7)
    tensors = {}
    for split in ("train", "test"):
        got = sorted(samples(folder, split).items())
        images = torch.stack([torch.from_numpy(load_npy(s["image.npy"])) for _, s in got])
        labels = torch.tensor([int(s["cls"]) for _, s in got])
        tensors[split] = TensorImageDataset(
            "masked_in_memory", split, images, labels, [k for k, _ in got], [str(c) for c in range(10)]
        )
    DATASETS.add("masked_in_memory", lambda c, split: tensors[split])
    try:
        common = [f"paths.output_root={root}", *QUIET, "trainer.max_epochs=8"]
        streamed = train(compose_config("train", [*common, "estimator=grad", "fraction=0.7"]))
        held = train(compose_config("train", [*common, "data=digits", "data.name=masked_in_memory", "name=in_memory"]))
    finally:
        DATASETS.remove("masked_in_memory")
    print(f"shards {streamed['test_acc']:.4f} vs in memory {held['test_acc']:.4f}")
    assert streamed["num_train"] == held["num_train"] == 1347
    assert abs(streamed["test_acc"] - held["test_acc"]) <= 0.03


def test_mask_only_leakage_control_trains(root):
    write_masks(cfg(root, "fill=mask_only", "mask.estimators=[grad]", "mask.fractions=[0.5]"))
    metrics = train(
        compose_config(
            "train",
            [
                f"paths.output_root={root}",
                *QUIET,
                "trainer.max_epochs=8",
                "estimator=grad",
                "fraction=0.5",
                "fill=mask_only",
            ],
        )
    )
    print(f"mask_only leakage: test_acc {metrics['test_acc']:.4f} (chance 0.1)")
    images = [load_npy(s["image.npy"]) for s in samples(leaf(root, fill=("fill=mask_only",), fraction=0.5)).values()]
    assert all(set(np.unique(i).tolist()) <= {0.0, 1.0} for i in images)  # the mask and nothing else
    assert (
        metrics["fill"] == "mask_only" and metrics["test_acc"] > 0.5
    )  # digits: gradient masks give the class away (0.93)


def test_retraining_on_token_drop_needs_a_vit_and_drops_the_tokens(root):
    with pytest.raises(RoarError, match="fill=token_drop drops the tokens of removed patches; the model has no tokens"):
        write_masks(cfg(root, "fill=token_drop", "mask.estimators=[grad]", "mask.fractions=[0.5]"))
    common = [f"paths.output_root={root}", *QUIET, "trainer.max_epochs=1", "fill=token_drop"]
    with pytest.raises(RoarError, match="the model has no tokens"):
        train(compose_config("train", [*common, "estimator=grad", "fraction=0.5"]))
    # ROAR retrains the base model's architecture: a ViT base, its maps, its token-drop shards, its retrain
    vit = [
        *common,
        "name=vit",
        "model=vit_tiny",
        "model.params.patch_size=2",
        "model.params.dim=16",
        "model.params.depth=1",
        "model.params.heads=2",
    ]
    train(compose_config("train", vit))
    attribute(compose_config("attribute", [*vit, "attribute.estimators=[grad]"]))
    with pytest.raises(RoarError, match="pass granularity=patch"):  # pixel rankings cannot say which tokens go
        write_masks(compose_config("mask", [*vit, "mask.estimators=[grad]", "mask.fractions=[0.5]"]))
    vit.append("granularity=patch")
    write_masks(compose_config("mask", [*vit, "mask.estimators=[grad]", "mask.fractions=[0.5]"]))
    run = compose_config("train", [*vit, "estimator=grad", "fraction=0.5"])
    assert run_key(run).shards.ranking == "grad.patch2"
    metrics = train(run)
    assert metrics["model"] == "vit_tiny" and metrics["fill"] == "token_drop" and metrics["num_train"] == 1347
    # the retrained ViT never sees a dropped patch: scrambling the pixels under the mask changes no logit
    from roar.classifier.load import load_classifier
    from roar.masking.patches import patch_keep
    from roar.store.masked import decode_masked_sample

    model = load_classifier(run_key(run).folder / "checkpoints" / "last.ckpt")
    batch = [decode_masked_sample(s, with_mask=True) for s in list(samples(run_key(run).shards.folder).values())[:16]]
    x, removed = torch.stack([b["image"] for b in batch]), torch.stack([b["removed"] for b in batch])
    keep = patch_keep(removed, 2)
    assert keep.flatten(1).sum(1).tolist() == [8] * 16  # exactly P - round(t P) of the 16 tokens kept
    scrambled = torch.where(removed.expand_as(x), torch.rand_like(x), x)
    with torch.no_grad():
        assert keep.float().mean() < 0.9 and torch.allclose(model(x, keep), model(scrambled, keep), atol=1e-5)
        assert not torch.allclose(model(x), model(scrambled), atol=1e-5)  # without dropping, the scramble shows


def test_a_run_on_rewritten_shards_is_redone_never_skipped_with_old_numbers(root, tiny_base, capsys):
    """A retrain run records the settings hash of the shard set it trained on; rewriting that set
    (here with another maps seed, so other tie-breaks) makes the run incomplete: it is retrained."""
    import shutil

    tiny_base(root, "stale")
    shutil.copytree(root / "default" / "attributions", root / "stale" / "attributions", dirs_exist_ok=True)
    masks = ["name=stale", "mask.estimators=[grad]", "mask.fractions=[0.5]", "mask.modes=[remove]"]
    write_masks(cfg(root, *masks))
    run = [
        f"paths.output_root={root}",
        *QUIET,
        "name=stale",
        "estimator=grad",
        "fraction=0.5",
        "trainer.max_epochs=1",
        "trainer.limit_train_batches=3",
    ]
    first = train(compose_config("train", run))
    assert train(compose_config("train", run)) == first  # unchanged shards: skipped
    rewritten = write_masks(cfg(root, *masks, "maps_seed=1", "overwrite=true"))
    new_hash = next(iter(rewritten.values()))["settings_hash"]
    assert new_hash != first["shards_settings_hash"]
    capsys.readouterr()
    again = train(compose_config("train", run))
    assert "was rewritten after" in capsys.readouterr().out and "is complete" not in capsys.readouterr().out
    assert again["shards_settings_hash"] == new_hash and again is not first


def test_a_shard_set_without_the_train_split_names_the_set_and_the_command(root, tiny_base):
    import shutil

    tiny_base(root, "onesplit")
    shutil.copytree(root / "default" / "attributions", root / "onesplit" / "attributions", dirs_exist_ok=True)
    write_masks(
        cfg(
            root,
            "name=onesplit",
            "mask.estimators=[grad]",
            "mask.fractions=[0.5]",
            "mask.modes=[remove]",
            "mask.splits=[test]",
        )
    )
    run = [
        f"paths.output_root={root}",
        *QUIET,
        "name=onesplit",
        "estimator=grad",
        "fraction=0.5",
        "trainer.max_epochs=1",
    ]
    with pytest.raises(
        RoarError,
        match=rf"onesplit/shards/{BASE}/grad/remove/channel_mean/0.5 has no train split .*mask.splits=\[train\]",
    ):
        train(compose_config("train", run))


def test_a_retrain_run_may_use_its_own_augmentation_and_architecture(root):
    """Overinterpretation Table 1 retrains without the base's augmentation, Table S2 another architecture:
    ``augment@retrain.augment=`` and ``model@retrain.model=`` give a retrain run its own, in its own folder
    and identity; the report keeps it apart from the base model's retrains."""

    from roar.report.collect import read_runs

    common = [f"paths.output_root={root}", *QUIET, f"base={BASE}", "estimator=grad", "fraction=0.3"]
    common += ["trainer.max_epochs=1", "trainer.limit_train_batches=3"]
    plain = compose_config("train", common)
    flipped = compose_config("train", [*common, "augment@retrain.augment=flip"])
    other = compose_config("train", [*common, "model@retrain.model=resnet20", "retrain.model.params.width=4"])
    keys = [run_key(c) for c in (plain, flipped, other)]
    assert keys[0].retrained_as is None and keys[0].folder.name == "seed=0"  # the default: the base's, as before
    assert keys[1].folder.parent.name.startswith("as-resnet8-flip-")
    assert keys[2].folder.parent.name.startswith("as-resnet20-none-") and keys[1].base == keys[0].base
    assert len({k.folder for k in keys}) == 3 and keys[1].identity["retrained_as"] == keys[1].folder.parent.name
    metrics = [train(c) for c in (plain, flipped, other)]
    saved = [json.loads((k.folder / "identity.json").read_text())["training"] for k in keys]
    assert [s["augment"]["name"] for s in saved] == ["none", "flip", "none"]
    assert [s["model"]["name"] for s in saved] == ["resnet8", "resnet8", "resnet20"]
    ckpt = torch.load(keys[2].folder / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert ckpt["hyper_parameters"]["model"]["name"] == "resnet20"
    assert metrics[0]["test_acc"] != metrics[1]["test_acc"] or metrics[0]["test_loss"] != metrics[1]["test_loss"]
    rows, _, _ = read_runs(root / "default", "digits")
    groups = {r["base"] for r in rows if r["estimator"] == "grad" and r["fraction"] == 0.3}
    assert groups == {
        BASE,
        f"{BASE} retrained as {keys[1].folder.parent.name}",
        f"{BASE} retrained as {keys[2].folder.parent.name}",
    }
