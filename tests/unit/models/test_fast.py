"""Fast retraining: device-resident data give the DataLoader's batches, fastnet and the fast_cifar recipe."""

import math
from types import SimpleNamespace

import pytest
import torch
from torch.utils.data import DataLoader

from roar.augment import BatchAugment
from roar.augment.batch import derandomized_flip
from roar.classifier.module import Classifier, triangle
from roar.data import ImageDataModule
from roar.data.base import TensorImageDataset
from roar.data.resident import ResidentLoader, decode, sampler_order, wants_resident
from roar.errors import RoarError
from roar.training.run import train

FAST = ["model=fastnet", "recipe=fast_cifar", "model.params.width=16"]


def fast_module(make_cfg) -> Classifier:
    """fastnet (width 16) with the fast_cifar recipe, for 1x16x16 inputs."""
    cfg = make_cfg("data.image_size=16", *FAST)
    return Classifier(
        model=dict(cfg.model),
        optim=dict(cfg.optim),
        augment={"name": "none"},
        num_classes=10,
        image_shape=[1, 16, 16],
        mean=[0.5],
        std=[0.25],
        max_epochs=1,
    )


def assert_same_batches(a, b):
    a, b = list(a), list(b)
    assert len(a) == len(b) and a
    for x, y in zip(a, b):
        assert x.keys() == y.keys()
        for key in x:
            if isinstance(x[key], torch.Tensor):
                assert x[key].dtype == y[key].dtype and torch.equal(x[key], y[key]), key
            else:
                assert list(x[key]) == list(y[key]), key


def module_with_trainer(dm, world, rank):
    dm.trainer = SimpleNamespace(world_size=world, global_rank=rank, strategy=SimpleNamespace(root_device="cpu"))
    return dm


@pytest.mark.parametrize("world,rank", [(1, 0), (2, 0), (2, 1)])
def test_resident_batches_equal_the_dataloaders_for_seed_epoch_and_rank(make_cfg, world, rank):
    cfg = make_cfg("data=shapes", "data.n_train=150", "data.n_test=70", "data.batch_size=32")
    on_disk, in_memory = cfg.data.copy(), cfg.data.copy()
    on_disk.in_memory, in_memory.in_memory = False, True
    streamed = ImageDataModule(on_disk, seed=3, cache_dir=cfg.paths.cache_dir)
    resident = ImageDataModule(in_memory, seed=3, cache_dir=cfg.paths.cache_dir)
    for dm in (streamed, resident):
        dm.setup()
        module_with_trainer(dm, world, rank)
    assert resident.resident and not streamed.resident
    assert "object_mask" in resident.resident["train"]  # the dataset's extras travel too
    for epoch in (0, 1):
        a, b = streamed.train_dataloader(), resident.train_dataloader()
        a.sampler.set_epoch(epoch)
        b.sampler.set_epoch(epoch)
        assert_same_batches(a, b)
    assert_same_batches(streamed.test_dataloader(), resident.test_dataloader())


def test_resident_shard_batches_replay_the_shard_readers_order(tiny_pipeline):
    from roar.data.masked_shards import MaskedShards
    from roar.store.manifest import read_manifest

    root = tiny_pipeline[0]
    folder = next(p.parent for p in root.glob("**/shards/**/manifest.json") if "grad" in str(p))
    manifest = read_manifest(folder)
    for world, rank in [(1, 0), (2, 1)]:
        for split in ("train", "test"):
            ds = MaskedShards(folder, split, manifest, seed=5, shuffle_buffer=37)
            ds.configure(rank, world, 0)
            columns = decode(ds, split)
            for epoch in (0, 2):
                ds.set_epoch(epoch)
                loader = ResidentLoader(columns, ds.order, 16)
                loader.set_epoch(epoch)
                assert_same_batches(DataLoader(ds, batch_size=16), loader)
                assert len(loader) == math.ceil(ds.quota(ds.worker_files(0, 1)) / 16)


def test_eight_bit_images_stay_uint8_and_come_back_bit_identical():
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (40, 3, 8, 8), generator=g).float() / 255
    ds = TensorImageDataset("eight", "train", images, torch.arange(40) % 4, [f"s{i}" for i in range(40)], "abcd")
    columns = decode(ds, "train")
    assert columns["image"].dtype == torch.uint8
    order = sampler_order(ds, 1, 0, True, seed=1)
    assert_same_batches(
        DataLoader(ds, batch_size=16, sampler=torch.utils.data.DistributedSampler(ds, 1, 0, True, seed=1)),
        ResidentLoader(columns, order, 16),
    )
    assert (
        decode(TensorImageDataset("f", "train", images + 1e-3, torch.zeros(40), list("x" * 40), "a"), "t")[
            "image"
        ].dtype
        == torch.float32
    )  # not 8-bit: kept as float32


def test_in_memory_auto_follows_the_budget_and_bad_values_are_refused(make_cfg):
    cfg = make_cfg()
    ds = ImageDataModule(cfg.data, seed=0, cache_dir=cfg.paths.cache_dir)
    ds.setup()
    sets = (ds.train_set, ds.test_set)
    assert wants_resident(cfg.data, sets)  # digits: well inside the default budget
    cfg.data.in_memory_mb = 0.1
    assert not wants_resident(cfg.data, sets)
    assert not wants_resident(cfg.data, sets, on_error="skip")
    cfg.data.in_memory = "yes"
    with pytest.raises(RoarError, match=r"data.in_memory='yes'; valid: auto, true, false"):
        wants_resident(cfg.data, sets)


def test_in_memory_and_dataloader_runs_train_to_the_same_numbers_and_share_a_folder(make_cfg):
    common = ["augment=standard", "trainer.max_epochs=2", "trainer.limit_train_batches=5", "data.batch_size=32"]
    a = train(make_cfg("name=a", "data.in_memory=true", *common))
    b = train(make_cfg("name=b", "data.in_memory=false", *common))
    assert a["test_loss"] == b["test_loss"] and a["test_acc"] == b["test_acc"]
    assert a["checkpoint"].replace("/a/", "/b/") == b["checkpoint"]  # where the data live is not an identity


def test_derandomized_flip_mirrors_each_sample_in_exactly_one_of_two_epochs():
    keys = torch.arange(1000)
    even, odd = derandomized_flip(keys, 0, 0), derandomized_flip(keys, 0, 1)
    assert torch.equal(even, ~odd) and torch.equal(even, derandomized_flip(keys, 0, 2))
    assert 400 < int(even.sum()) < 600 and not torch.equal(even, derandomized_flip(keys, 1, 0))
    aug = BatchAugment({"name": "standard", "flip": True, "flip_mode": "alternating"}, mean=[0.5], seed=0)
    x = torch.rand(8, 1, 4, 4)
    aug.reseed(0, "cpu", epoch=1)
    out, _ = aug(x, train=True, keys=keys[:8])
    assert all(torch.equal(out[i], x[i].flip(-1) if odd[i] else x[i]) for i in range(8))
    with pytest.raises(RoarError, match="needs each sample's index or id"):
        aug(x, train=True)


def test_triangle_schedule_and_bias_groups_follow_airbench(make_cfg):
    assert triangle(0, 100, 0.2, 0.23, 0.07) == pytest.approx(0.2)
    assert triangle(23, 100, 0.2, 0.23, 0.07) == pytest.approx(1.0)
    assert triangle(100, 100, 0.2, 0.23, 0.07) == pytest.approx(0.07)
    module = fast_module(make_cfg)
    biases, rest = module.param_groups(1.0, 0.01, 64.0)
    assert biases["lr"] == 64.0 and biases["weight_decay"] == pytest.approx(0.01 / 64)
    frozen = {id(module.net.whiten.weight)} | {
        id(m.weight) for m in module.modules() if isinstance(m, torch.nn.BatchNorm2d)
    }
    assert not frozen & {id(p) for g in (biases, rest) for p in g["params"]}  # frozen weights are not optimized
    assert len(biases["params"]) == 6  # the six BatchNorms' biases


def test_whitening_layer_decorrelates_the_training_patches():
    from roar.models import build_model

    net = build_model("fastnet", num_classes=3, in_channels=3, image_size=16, width=8)
    g = torch.Generator().manual_seed(0)
    base = torch.rand(200, 1, 16, 16, generator=g)
    images = torch.cat([base, 0.8 * base + 0.2 * torch.rand(200, 1, 16, 16, generator=g), base.flip(-1)], 1)
    net.init_whitening(images, eps=1e-8)
    out = net.whiten(images) - net.whiten.bias.view(1, -1, 1, 1)
    half = out[:, :12].permute(0, 2, 3, 1).reshape(-1, 12).double()
    cov = half.T @ half / len(half)
    assert torch.allclose(cov, torch.eye(12, dtype=torch.float64), atol=1e-3)  # raw covariance: identity
    assert torch.equal(net.whiten.weight[12:], -net.whiten.weight[:12])


def test_test_time_flip_averages_both_mirror_images(make_cfg):
    module = fast_module(make_cfg).eval()
    x = torch.rand(4, 1, 16, 16)
    with torch.no_grad():
        tta = module.test_logits({"image": x, "label": torch.zeros(4, dtype=torch.long)})
        mirrored = module.test_logits({"image": x.flip(-1), "label": torch.zeros(4, dtype=torch.long)})
        plain = module(x)
    assert torch.allclose(tta, mirrored, atol=1e-5) and not torch.allclose(tta, plain, atol=1e-3)


def test_fastnet_refuses_images_below_16_pixels(make_cfg):
    with pytest.raises(RoarError, match=r"model=fastnet needs images of at least 16x16.*data.image_size=32"):
        train(make_cfg("model=fastnet", "recipe=fast_cifar"))


def test_fastnet_with_the_fast_recipe_learns_shapes(make_cfg):
    metrics = train(make_cfg("data=shapes", "data.n_train=1000", *FAST, "trainer.max_epochs=6", "data.batch_size=100"))
    assert metrics["test_acc"] >= 0.95, metrics["test_acc"]  # measured: 0.992 (CPU, seed 0)
