"""Mask-stage and loader benchmarks (issue: shards), on generated shapes at 32x32 (CIFAR-sized).

1. Masking and writing: images/s of roar-mask's inner loop (rank once, then for each of ROAR's six
   fractions fill, encode and write a tar) vs writing the very same bytes with Python's plain
   tarfile; goal at least 0.8.
2. Loader: a training epoch of ResNet-18 (small stem) at 32x32 fed from shards vs from in-memory
   tensors; goal at least 0.9.
3. Bytes on disk per (image, estimator, fraction) for each storage format.
"""

import io
import tarfile
import tempfile
import time
from pathlib import Path

import torch
from omegaconf import OmegaConf
from timing import fit_one_epoch, verdict
from tqdm import tqdm

from roar.classifier.module import Classifier
from roar.config import compose_config
from roar.data import build_dataset
from roar.data.base import TensorImageDataset
from roar.data.masked_shards import MaskedShards
from roar.data.stats import compute_channel_stats
from roar.masking.fills import bind_fill
from roar.masking.shard_masker import ShardMasker, SourceShard
from roar.store.sharded import OutputSet
from roar.store.shards import read_shard

N = 2000


def shapes(n):
    return build_dataset(
        OmegaConf.create({"name": "shapes", "image_size": 32, "num_classes": 6, "n_train": n, "n_test": 10, "seed": 0}),
        "train",
    )


FRACTIONS = (0.0, 0.1, 0.3, 0.5, 0.7, 0.9)


def write_set(folder, fmt, data, maps, mean, fractions=FRACTIONS):
    """Mask ``data`` at every fraction (remove mode) into folder/<fraction>/train-000000.tar; seconds taken."""
    cfg = compose_config("mask", ["data=shapes", f"mask.format={fmt}", "mask.batch_size=256"])  # not timed
    settings = {"mode": "remove", "estimator": "random", "reduce": "abs_sum", "fill_label": "channel_mean"}
    todo = [OutputSet(folder / str(t), {**settings, "fraction": t}, N) for t in fractions]
    start = time.perf_counter()
    with tqdm(disable=True) as bar:
        fill = bind_fill(cfg.fill, data[0]["image"].shape[0], mean, int(cfg.maps_seed))
        masker = ShardMasker(fill, data, str(cfg.reduce), int(cfg.mask.batch_size), cfg.mask.format, bar)
        masker.write(SourceShard(data, "train", 0, 0, data.ids, maps), todo)
    return time.perf_counter() - start


def plain_tar(sources, folder):
    """The same members, bytes already made, written with tarfile alone."""
    tars = []
    for src in sources:
        with tarfile.open(src) as tar:
            tars.append([(info.name, tar.extractfile(info).read()) for info in tar])
    folder.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    for k, members in enumerate(tars):
        with tarfile.open(folder / f"{k}.tar", "w") as out:
            for name, data in members:
                info = tarfile.TarInfo(name)
                info.size = len(data)
                out.addfile(info, io.BytesIO(data))
    return time.perf_counter() - start


def bench_masking(tmp):
    data = shapes(N)
    mean, _ = compute_channel_stats(data)
    maps = torch.rand(N, 3, 32, 32)
    print(
        f"\n== Masking and writing {N} shapes images (32x32x3) at ROAR's {len(FRACTIONS)} fractions (img/s counts "
        f"each image once per fraction)"
    )
    for fmt in ("npy", "png"):
        ours, plain = [], []
        for r in range(3):
            folder = tmp / f"{fmt}{r}"
            ours.append(write_set(folder, fmt, data, maps, mean))
            plain.append(plain_tar([folder / str(t) / "train-000000.tar" for t in FRACTIONS], tmp / f"plain-{fmt}{r}"))
        t_ours, t_plain = sorted(ours)[1], sorted(plain)[1]
        one = tmp / f"{fmt}0" / "0.5" / "train-000000.tar"
        size = one.stat().st_size / N
        image = next(read_shard(one))[f"image.{fmt}"]
        ratio, n = t_plain / t_ours, N * len(FRACTIONS)
        print(
            f"  {fmt}: roar-mask {n / t_ours:8.0f} img/s, plain tar of the same bytes {n / t_plain:8.0f} img/s: "
            f"ratio {ratio:.2f}  {verdict(ratio, 0.8)};  {size:,.0f} bytes/sample on disk ({len(image):,} of them "
            f"the image)"
        )


def bench_loader(tmp):
    n, shape = 384, (3, 32, 32)
    data = shapes(n)
    mean, std = compute_channel_stats(data)
    folder = tmp / "loader"
    write_set(folder, "npy", data, torch.rand(n, *shape), mean, fractions=(0.5,))
    folder = folder / "0.5"
    manifest = {
        "files": {"train-000000.tar": {"count": n}},
        "counts": {"train": n},
        "classes": data.classes,
        "image_shape": list(shape),
        "mean": mean,
        "std": std,
        "drops_tokens": False,
        "dataset": "shapes",
    }
    streamed = MaskedShards(folder, "train", manifest)
    images = torch.stack([s["image"] for s in streamed])
    labels = torch.tensor([s["label"] for s in MaskedShards(folder, "train", manifest)])
    memory = TensorImageDataset("memory", "train", images, labels, [str(i) for i in range(n)], data.classes)

    def epoch(dataset, shuffle):
        torch.manual_seed(0)
        model = Classifier(
            model={"name": "resnet18", "params": {"small_stem": True}},
            optim={"lr": 0.01},
            augment={"name": "none"},
            num_classes=6,
            image_shape=list(shape),
            mean=mean,
            std=std,
            max_epochs=1,
        )
        loader = torch.utils.data.DataLoader(dataset, batch_size=64, shuffle=shuffle)
        return fit_one_epoch(model, loader)

    times = {"memory": [], "shards": []}
    for _ in range(3):
        times["memory"].append(epoch(memory, True))
        times["shards"].append(epoch(MaskedShards(folder, "train", manifest), False))
    t_mem, t_shards = sorted(times["memory"])[1], sorted(times["shards"])[1]
    ratio = t_mem / t_shards
    print(f"\n== A training epoch of ResNet-18 (small stem) at 32x32, {n} images, batch 64")
    print(
        f"  in-memory tensors {n / t_mem:.1f} img/s, shards {n / t_shards:.1f} img/s: ratio {ratio:.3f}  "
        f"{verdict(ratio, 0.9)}"
    )


def main():
    with tempfile.TemporaryDirectory() as d:
        bench_masking(Path(d))
        bench_loader(Path(d))


if __name__ == "__main__":
    main()
