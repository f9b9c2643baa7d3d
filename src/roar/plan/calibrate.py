"""A training step's time on this machine: ``plan.calibrate=true`` times ``plan.calibrate_steps`` steps of the
experiment's model, recipe and batch on random images, on the configured device, after a warm-up."""

import time

import lightning as L
import torch

from roar.classifier.module import Classifier
from roar.tracking import cluster_plugins
from roar.utils.plain import to_plain


def calibrate(cfg, shape, num_classes: int, steps: int) -> dict:
    """Seconds per training step of the experiment's model, recipe, augmentation and batch size on random
    images, on the configured device (trainer.accelerator, precision), after 10 warm-up steps."""
    batch = int(cfg.data.batch_size)
    g = torch.Generator().manual_seed(0)
    images = torch.rand(batch * 4, *shape, generator=g)
    labels = torch.randint(0, num_classes, (batch * 4,), generator=g)
    data = [
        {"image": images[i::4][:batch], "label": labels[i::4][:batch], "index": torch.arange(batch)} for i in range(4)
    ]
    module = Classifier(
        model=to_plain(cfg.model),
        optim=to_plain(cfg.optim),
        augment=to_plain(cfg.augment),
        num_classes=num_classes,
        image_shape=list(shape),
        mean=[0.5] * shape[0],
        std=[0.25] * shape[0],
        max_epochs=1,
    )
    module.prepare(images)
    clock = StepClock(warmup=10)
    trainer = {k: v for k, v in to_plain(cfg.trainer).items() if k in ("accelerator", "devices", "precision")}
    L.Trainer(
        **{**trainer, "devices": 1},
        max_steps=10 + int(steps),
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[clock],
        limit_val_batches=0,
        num_sanity_val_steps=0,
        plugins=cluster_plugins(),
    ).fit(module, train_dataloaders=Repeat(data, 10 + int(steps)))
    device = clock.device
    name = (
        torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else f"{device.type} ({torch.get_num_threads()} threads)"
    )
    return {"step_seconds": clock.seconds / int(steps), "device": name, "steps": int(steps), "batch_size": batch}


class Repeat:
    """``n`` batches cycling over a few fixed ones (a loader without a sampler: calibration only)."""

    def __init__(self, batches, n):
        self.batches, self.n = batches, n

    def __len__(self):
        return self.n

    def __iter__(self):
        return (self.batches[i % len(self.batches)] for i in range(self.n))


class StepClock(L.Callback):
    def __init__(self, warmup: int):
        self.warmup, self.start, self.seconds, self.device = warmup, None, None, None

    def _sync(self, module):
        if module.device.type == "cuda":
            torch.cuda.synchronize(module.device)

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        if trainer.global_step == self.warmup and self.start is None:
            self._sync(module)
            self.start, self.device = time.perf_counter(), module.device

    def on_train_end(self, trainer, module):
        self._sync(module)
        self.seconds = time.perf_counter() - self.start


def parameters(cfg, shape, num_classes: int) -> int:
    from roar.models import build_model

    net = build_model(
        cfg.model.name,
        num_classes=num_classes,
        in_channels=shape[0],
        image_size=shape[1],
        **(cfg.model.get("params") or {}),
    )
    return sum(p.numel() for p in net.parameters())
