"""Storage formats at ImageNet scale (issue: rank buckets, uint8 images, the planner), measured on real shard
sets written by roar-mask from shapes rendered to PNG files and read through ``data=imagefolder`` (8-bit
sources, like CIFAR and ImageNet), at 32x32 and 224x224.

1. Bytes per sample on disk (tar members included) of one shard set in each format: float32 ``npy``
   (today's materialized set), ``uint8`` (source file + mask bits, filled at load), and ``buckets`` (3-bit
   rank buckets for every mode and fraction of ROAR's grid) beside the base model's image set (the source
   files, once). Then ROAR's whole grid per image (R = 19 rankings: 17 estimators and 2 controls, x
   remove/keep x 5 fractions = 190 materialized sets, or the image set and 19 bucket sets), against the
   original ROAR design priced as the source image plus a float32 H x W map per ranking. Goals: buckets
   <= 1/100 of npy and <= 1/10 of the original design.
2. A training epoch of ResNet-18 (small stem) at 32x32 fed from the bucket set (masked and filled in
   ``on_after_batch_transfer``), from the npy set, and from in-memory tensors. Goal: buckets >= 0.95 of npy.
"""

import sys
import tempfile
from pathlib import Path

import lightning as L
import torch
from timing import fit_one_epoch, verdict

from roar.attribution.run import attribute
from roar.classifier.module import Classifier
from roar.config import compose_config
from roar.data.masked_shards import MaskedShards
from roar.data.shapes import save_image_folder
from roar.masking.at_load import LoadMasker
from roar.masking.run import write_masks
from roar.store.manifest import read_manifest
from roar.store.resolve import shard_set_key
from roar.training.run import train

QUIET = ["logger=csv", "trainer.enable_progress_bar=false", "trainer.accelerator=cpu", "data.num_workers=0"]
RANKINGS, MODES, FRACTIONS = 19, 2, 5


def write_formats(tmp: Path, side: int, n_train: int, n_test: int):
    """The npy, uint8 and bucket sets of the ``random`` ranking (remove, t = 0.5; buckets: ROAR's grid)."""
    data = save_image_folder(tmp / f"photos{side}", n_train, n_test, side, num_classes=6)
    common = [
        f"paths.output_root={tmp / f'out{side}'}",
        *QUIET,
        "data=imagefolder",
        f"data.root={data}",
        f"data.resize={side}",
        f"data.crop={side}",
        "trainer.max_epochs=1",
        "trainer.limit_train_batches=1",
    ]
    train(compose_config("train", common), quiet=True)
    attribute(compose_config("attribute", [*common, "attribute.estimators=[random]"]))
    mask = [*common, "mask.estimators=[random]", "mask.modes=[remove]", "mask.audit_steps=0"]
    folders = {}
    for fmt, fill in (("npy", "channel_mean"), ("uint8", "zero")):  # two fills: two folders
        cfg = compose_config("mask", [*mask, "mask.fractions=[0.5]", f"mask.format={fmt}", f"fill={fill}"])
        write_masks(cfg)
        folders[fmt] = shard_set_key(cfg, "random", "remove", 0.5).folder
    cfg = compose_config("mask", [*mask, "mask.fractions=[0,0.1,0.3,0.5,0.7,0.9]", "mask.format=buckets"])
    write_masks(cfg)
    key = shard_set_key(cfg, "random", "remove", 0.5).buckets
    folders["buckets"], folders["images"] = key.folder, key.images.folder
    return folders, common


def per_sample(folder: Path, split: str = "train") -> float:
    m = read_manifest(folder)
    files = [f for n, f in m["files"].items() if n.startswith(f"{split}-")]
    return sum(f["bytes"] for f in files) / sum(f["count"] for f in files)


def bench_bytes(tmp: Path, side: int, n_train: int, n_test: int):
    folders, common = write_formats(tmp, side, n_train, n_test)
    b = {fmt: per_sample(folder) for fmt, folder in folders.items()}
    source = sum(p.stat().st_size for p in (tmp / f"photos{side}" / "train").rglob("*.png")) / n_train
    original = RANKINGS * (source + 4 * side * side)  # the source image and a float32 H x W map per ranking
    grid = {
        "npy": b["npy"] * RANKINGS * MODES * FRACTIONS,
        "uint8": b["uint8"] * RANKINGS * MODES * FRACTIONS,
        "buckets": b["images"] + b["buckets"] * RANKINGS,  # the image set once, a bucket set per ranking
    }
    print(f"\n== {side}x{side}x3 shapes as PNG files ({n_train} train images), bytes per sample on disk")
    print(f"  source PNG file {source:,.0f}; float32 image {4 * 3 * side * side:,}; uint8 pixels {3 * side * side:,}")
    for fmt in ("npy", "uint8", "images", "buckets"):
        line = f"  {fmt:8s} one set {b[fmt]:>10,.0f} B/sample"
        print(
            line
            + (f";  ROAR's grid per image {grid[fmt] / 1e3:>10,.1f} KB" if fmt in grid else " (shared by the rankings)")
        )
    print(f"  original ROAR design (source + float32 HxW map per ranking) {original / 1e3:,.1f} KB per image")
    r_npy, r_orig = grid["buckets"] / grid["npy"], grid["buckets"] / original
    print(f"  buckets / npy grid: 1/{1 / r_npy:.0f}  {verdict(r_npy, 0.01, higher_is_better=False)}")
    print(f"  buckets / original design: 1/{1 / r_orig:.1f}  {verdict(r_orig, 0.1, higher_is_better=False)}")
    print(f"  uint8 / npy one set: 1/{b['npy'] / b['uint8']:.1f}")
    return folders


class Shards(L.LightningDataModule):
    def __init__(self, dataset, masker=None):
        super().__init__()
        self.dataset, self.masker = dataset, masker

    def train_dataloader(self):
        return torch.utils.data.DataLoader(self.dataset, batch_size=64)

    def on_after_batch_transfer(self, batch, dataloader_idx):
        return self.masker(batch) if self.masker is not None else batch


def epoch_seconds(datamodule, manifest, accelerator: str = "cpu") -> float:
    torch.manual_seed(0)
    model = Classifier(
        model={"name": "resnet18", "params": {"small_stem": True}},
        optim={"lr": 0.01},
        augment={"name": "none"},
        num_classes=len(manifest["classes"]),
        image_shape=list(manifest["image_shape"]),
        mean=manifest["mean"],
        std=manifest["std"],
        max_epochs=1,
    )
    return fit_one_epoch(model, datamodule, skip=1, accelerator=accelerator)


def bench_loader(folders: dict, n: int, accelerator: str = "cpu"):
    npy_m, bkt_m = read_manifest(folders["npy"]), read_manifest(folders["buckets"])
    fill = compose_config("mask", []).fill

    def npy():
        return Shards(MaskedShards(folders["npy"], "train", npy_m, shuffle_buffer=0))

    def buckets():
        return Shards(
            MaskedShards(folders["buckets"], "train", bkt_m, shuffle_buffer=0), LoadMasker(bkt_m, fill, "remove", 0.5)
        )

    samples = list(MaskedShards(folders["npy"], "train", npy_m, shuffle_buffer=0).samples())
    memory = [{"image": s["image"], "label": s["label"]} for s in samples]
    times = {"memory": [], "npy": [], "buckets": []}
    for _ in range(3):
        times["memory"].append(epoch_seconds(Shards(memory), npy_m, accelerator))
        times["npy"].append(epoch_seconds(npy(), npy_m, accelerator))
        times["buckets"].append(epoch_seconds(buckets(), bkt_m, accelerator))
    t = {k: sorted(v)[1] for k, v in times.items()}
    steps = n / 64 - 1
    print(
        f"\n== A training epoch of ResNet-18 (small stem) at 32x32 on {accelerator}, {n} images, batch 64 (first "
        f"batch not timed)"
    )
    print(
        "  "
        + ", ".join(f"{k} {steps * 64 / s:.1f} img/s" for k, s in t.items())
        + f": buckets / npy {t['npy'] / t['buckets']:.3f}  {verdict(t['npy'] / t['buckets'], 0.95)}; "
        f"npy / memory {t['memory'] / t['npy']:.3f}"
    )


def main(gpu: bool = False):
    """``--gpu`` (benchmarks/gpu.sh): the loader part alone, on the GPU, with 4,096 images."""
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        if gpu:
            folders, _ = write_formats(tmp, 32, 4096, 64)
            bench_loader(folders, 4096, "gpu")
            return
        small = bench_bytes(tmp, 32, 1024, 64)
        bench_bytes(tmp, 224, 192, 32)
        bench_loader(small, 1024)


if __name__ == "__main__":
    main(gpu="--gpu" in sys.argv[1:])
