"""Fast retraining (issue: retraining is the bill). ``--gpu`` runs the same measurements on a GPU, sized
for it (benchmarks/gpu.sh); without it, on this CPU.

1. Per-run overhead: a retrain run on digits with one training step vs its full run (demo recipe), in
   one warm process as a sweep's runs are (the local launcher, and a SLURM task with runs_per_task), and
   the same one-step run as a fresh ``roar-train`` process (a task of its own). Goal: <= 1 s warm.
2. ``data.in_memory=true`` vs the DataLoader path: training throughput (images/s over whole epochs after
   the first) of ResNet-18 (small stem) and fastnet at 32x32, same batches. Goal >= 1.0x here.
3. fastnet + fast_cifar vs resnet8 + the demo recipe on shapes: test accuracy and wall time of one run
   each, side by side (CPU only).
4. The CIFAR-10 ROAR grid with fast_cifar: its trainings x the measured time of a 10-epoch 50,000-image
   run from the fastnet throughput, plus the warm overhead per run.
"""

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import lightning as L

from roar.config import compose_config
from roar.data import ImageDataModule
from roar.training.run import build_classifier, train
from roar.utils.plain import to_plain

QUIET = ["logger=csv", "trainer.enable_progress_bar=false"]


class Clock(L.Callback):
    """Images per second over the epochs after the first (warm-up, cudnn autotuning, first decode left out)."""

    def __init__(self):
        self.start, self.images = None, 0

    def on_train_epoch_start(self, trainer, module):
        if trainer.current_epoch == 1:
            self.start = time.perf_counter()

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        if trainer.current_epoch >= 1:
            self.images += len(batch["label"])

    def on_train_end(self, trainer, module):
        if trainer.strategy.root_device.type == "cuda":
            import torch

            torch.cuda.synchronize()
        self.seconds = time.perf_counter() - self.start


def throughput(root, device, overrides, in_memory: bool, epochs: int) -> float:
    cfg = compose_config("train", [f"paths.output_root={root}", *QUIET, f"trainer.accelerator={device}", *overrides])
    cfg.data.in_memory, cfg.trainer.max_epochs = in_memory, epochs
    dm = ImageDataModule(cfg.data, seed=0, cache_dir=cfg.paths.cache_dir)
    dm.setup()
    module = build_classifier(cfg, dm, seed=0)
    if module.initializes_from_data:
        module.prepare(dm.first_images(module.INIT_IMAGES))
    clock = Clock()
    L.Trainer(
        **to_plain(cfg.trainer),
        logger=False,
        enable_checkpointing=False,
        callbacks=[clock],
        limit_val_batches=0,
        num_sanity_val_steps=0,
        use_distributed_sampler=False,
    ).fit(module, datamodule=dm)
    return clock.images / clock.seconds


def bench_throughput(root, device, gpu: bool):
    print("\n== data.in_memory=true vs the DataLoader path: training images/s after the first epoch (same batches)")
    n = 20000 if gpu else 640
    data = ["data=shapes", f"data.n_train={n}", "data.n_test=100"]
    cases = [
        (
            "resnet18 small stem, batch 256" if gpu else "resnet18 small stem, batch 64",
            ["model=resnet18", "model.params.small_stem=true", f"data.batch_size={256 if gpu else 64}"],
            3 if gpu else 2,
        ),
        (
            "fastnet + fast_cifar, batch 1000" if gpu else "fastnet + fast_cifar, batch 128",
            ["model=fastnet", "recipe=fast_cifar", f"data.batch_size={1000 if gpu else 128}"],
            6 if gpu else 2,
        ),
    ]
    results = {}
    for name, overrides, epochs in cases:
        if not gpu:  # a few batches per epoch keep the CPU rounds short
            overrides = [*overrides, "trainer.limit_train_batches=5"]
        t = {}
        for mode in (False, True, False, True):  # interleaved, best of two each
            ips = throughput(root, device, [*data, *overrides, *(["trainer=gpu"] if gpu else [])], mode, epochs)
            t[mode] = max(t.get(mode, 0), ips)
        results[name] = t[True]
        print(
            f"  {name:34s} DataLoader {t[False]:9.1f} img/s, in memory {t[True]:9.1f} img/s: "
            f"{t[True] / t[False]:.2f}x  {'PASS' if t[True] >= t[False] else 'MISS'} (goal >= 1.0x)"
        )
    return results


def timed_train(cfg) -> tuple:
    start = time.perf_counter()
    metrics = train(cfg)
    return time.perf_counter() - start, metrics


def bench_overhead(root, device, gpu: bool):
    print("\n== Per-run overhead: a run with one training step vs its full run")
    base = [f"paths.output_root={root}", *QUIET, f"trainer.accelerator={device}"]
    if gpu:
        setting = ["data.image_size=32", "model=fastnet", "recipe=fast_cifar", "trainer=gpu"]
        label = "fastnet + fast_cifar base run on digits at 32x32 (GPU)"
    else:  # a real retrain run: the random ranking's shards of a one-epoch base model
        from roar.stages.pipeline import run_pipeline

        exp = ["experiment=roar_digits", "grid.estimators=[random]", "grid.fractions=[0.5]", "grid.seeds=1"]
        run_pipeline([*base, *exp, "trainer.max_epochs=1"], progress=False)
        setting = [*exp, "estimator=random", "fraction=0.5"]
        label = "retrain run on digits (random, t = 0.5, demo recipe)"
    one = [*base, *setting, "+trainer.max_steps=1", "trainer.limit_test_batches=1"]
    first, _ = timed_train(compose_config("train", [*one, "seed=11"]))
    warm = min(timed_train(compose_config("train", [*one, f"seed={s}"]))[0] for s in (12, 13, 14))
    full, metrics = timed_train(compose_config("train", [*base, *setting, "seed=15"]))
    start = time.perf_counter()
    cli = [sys.executable, "-c", "from roar.stages.train import main; main()", *one, "seed=16"]
    out = subprocess.run(cli, capture_output=True, text=True)
    cold = time.perf_counter() - start
    if out.returncode:
        print(out.stderr[-2000:])
    print(f"  {label}")
    print(
        f"  one-step run in a warm process {warm:.2f} s (the first in a process {first:.2f} s; as a fresh roar-train "
        f"process {cold:.2f} s); full run {full:.2f} s (test_acc {metrics['test_acc']:.3f}): warm overhead "
        f"{100 * warm / full:.1f}% of the full run  {'PASS' if warm <= 1.0 else 'MISS'} (goal <= 1 s)"
    )
    return warm, full


def bench_recipes(root):
    print("\n== fastnet + fast_cifar vs resnet8 + demo recipe on shapes (3,000 train, 1,000 test; one run each)")
    fast = ["model=fastnet", "recipe=fast_cifar"]
    for name, overrides in [
        ("resnet8 + demo (15 epochs)", ["model=resnet8"]),
        ("fastnet w16 + fast_cifar (10 epochs)", [*fast, "model.params.width=16"]),
        ("fastnet w16 + fast_cifar (7 epochs)", [*fast, "model.params.width=16", "trainer.max_epochs=7"]),
        ("fastnet w64 + fast_cifar (10 epochs)", fast),
    ]:
        seconds, m = timed_train(
            compose_config(
                "train", [f"paths.output_root={root}", *QUIET, "trainer.accelerator=cpu", "data=shapes", *overrides]
            )
        )
        print(f"  {name:38s} test_acc {m['test_acc']:.4f} in {seconds:6.1f} s")


def bench_grid(fastnet_ips, warm):
    trainings = 17 * 5 * 2 * 5 + 5  # 17 rankings x 5 fractions x ROAR and KAR x 5 seeds, and t = 0
    run = 50000 * 10 / fastnet_ips + warm
    print(
        f"\n== CIFAR-10 ROAR grid with fast_cifar: {trainings} trainings x ({50000 * 10:,} images at "
        f"{fastnet_ips:,.0f} img/s + {warm:.2f} s overhead) = {run:.1f} s each, {trainings * run / 3600:.2f} GPU-hours"
    )


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--gpu", action="store_true")
    args = parser.parse_args(sys.argv[1:] if __name__ == "__main__" and "--gpu" in sys.argv else [])
    device = "gpu" if args.gpu else "cpu"
    root = Path(tempfile.mkdtemp(prefix="roar-bench-fast-"))
    try:
        warm, _ = bench_overhead(root, device, args.gpu)
        ips = bench_throughput(root, device, args.gpu)
        if args.gpu:
            bench_grid(ips["fastnet + fast_cifar, batch 1000"], warm)
        else:
            bench_recipes(root)
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    from roar.tracking import quiet_lightning

    quiet_lightning()
    main()
