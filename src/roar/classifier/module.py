"""The one LightningModule: normalization, the registered network, batch augmentation, SGD recipes."""

import math
import zlib

import lightning as L
import torch
import torch.nn.functional as F
from torchmetrics.classification import MulticlassAccuracy

from roar.augment import BatchAugment
from roar.errors import RoarError
from roar.models.registry import build_model

SCHEDULES = ("step", "cosine", "triangle", "none")
OPTIMIZERS = ("sgd", "adamw")
NO_DECAY = ("class_token", "pos_embedding")  # timm's VisionTransformer.no_weight_decay(), in roar's ViT's names
TTA = ("none", "flip")


def triangle(step: int, total: int, start: float, peak: float, end: float) -> float:
    """The lr factor at ``step`` of ``total``: linear from ``start`` to 1 at ``peak`` of the way, then
    linear to ``end`` (airbench94.py's ``triangle``: start 0.2, peak 0.23, end 0.07)."""
    top = max(1, int(peak * total))
    if step <= top:
        return start + (1 - start) * step / top
    return 1 + (end - 1) * min(1.0, (step - top) / max(1, total - top))


def warmup_cosine(epoch: int, warmup: int, total: int) -> float:
    """The lr factor of epoch ``epoch``: linear from 1/warmup to 1 over ``warmup`` epochs, then a half cosine
    to 0 at ``total`` (timm's CosineLRScheduler with warmup, per epoch, floors at 0)."""
    if epoch < warmup:
        return (epoch + 1) / warmup
    return 0.5 * (1 + math.cos(math.pi * (epoch - warmup) / max(1, total - warmup)))


def batch_keys(batch):
    """A stable integer per sample (its dataset index, or a digest of a shard sample's id), for draws that
    must follow the sample, not its place in the batch (the derandomized flip)."""
    if "index" in batch:
        return batch["index"]
    if "id" in batch:
        return torch.tensor([zlib.crc32(str(i).encode()) for i in batch["id"]], device=batch["label"].device)
    return None


class Classifier(L.LightningModule):
    """Cross-entropy classifier on images in [0, 1]; ``forward(x, keep=None)`` normalizes, then runs the net.

    All constructor arguments are plain containers, so checkpoints load with ``weights_only=True``.
    """

    def __init__(  # noqa: PLR0913 (the LightningModule's hyperparameters, each a config key (save_hyperparameters))
        self,
        model: dict,
        optim: dict,
        augment: dict,
        num_classes: int,
        image_shape,
        mean,
        std,
        max_epochs: int,
        seed: int = 0,
    ):
        super().__init__()
        self.save_hyperparameters()
        if optim.get("schedule", "none") not in SCHEDULES:
            raise RoarError(f"optim.schedule={optim.get('schedule')!r}; valid: {', '.join(SCHEDULES)}.")
        if optim.get("optimizer", "sgd") not in OPTIMIZERS:
            raise RoarError(f"optim.optimizer={optim.get('optimizer')!r}; valid: {', '.join(OPTIMIZERS)}.")
        if optim.get("tta", "none") not in TTA:
            raise RoarError(f"optim.tta={optim.get('tta')!r}; valid: {', '.join(TTA)}.")
        if not 0 <= float(optim.get("label_smoothing", 0.0)) < 1:
            raise RoarError(f"optim.label_smoothing={optim.get('label_smoothing')!r} must lie in [0, 1).")
        c, h, w = image_shape
        if h != w:
            raise RoarError(f"Images are {h}x{w}; roar's models expect square images (set data.crop).")
        self.net = build_model(
            model["name"], num_classes=num_classes, in_channels=c, image_size=h, **(model.get("params") or {})
        )
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, c, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, c, 1, 1), persistent=False)
        for path, m, s in getattr(self.net, "member_stats", ()):  # an ensemble's members see these inputs too
            if not (
                torch.allclose(torch.tensor(m), torch.tensor(mean))
                and torch.allclose(torch.tensor(s), torch.tensor(std))
            ):
                raise RoarError(
                    f"Ensemble member {path} was trained on data with channel mean {m} and std {s}; this run's data "
                    f"have {list(mean)} and {list(std)}. Members must be models of this dataset."
                )
        self.augment = BatchAugment(augment, mean, token_patch=getattr(self.net, "patch_size", None), seed=seed)
        self.augment.check_image(image_shape)
        self.train_acc = MulticlassAccuracy(num_classes, top_k=1, average="micro")
        self.test_acc = MulticlassAccuracy(num_classes, top_k=1, average="micro")
        self.test_acc5 = MulticlassAccuracy(num_classes, top_k=5, average="micro") if num_classes > 5 else None

    @property
    def accepts_keep(self) -> bool:
        return hasattr(self.net, "patch_size")

    def forward(self, x, keep=None):
        x = (x - self.mean) / self.std
        if keep is None:
            return self.net(x)
        if not self.accepts_keep:
            raise RoarError(f"model={self.hparams.model['name']} cannot drop tokens (keep=...); only ViT models can.")
        return self.net(x, keep=keep)

    INIT_IMAGES = 5000  # airbench94.py: the whitening layer's patch covariance from 5,000 training images

    @property
    def initializes_from_data(self) -> bool:
        """Whether ``prepare`` needs training images (fastnet's whitening layer); callers load them only then."""
        return hasattr(self.net, "init_whitening")

    def prepare(self, images: torch.Tensor) -> None:
        """Data-dependent initialization before the first step (not on resume: the checkpoint holds it):
        a network with ``init_whitening`` (fastnet) sets its first layer from the first ``INIT_IMAGES``."""
        if self.initializes_from_data:
            images = images[: self.INIT_IMAGES]
            self.net.init_whitening((images.to(self.mean) - self.mean) / self.std)

    def on_train_epoch_start(self):
        datamodule = getattr(self.trainer, "datamodule", None)
        if hasattr(datamodule, "set_epoch"):
            datamodule.set_epoch(self.current_epoch)
        # augmentation draws are a function of (seed, epoch, rank): a resumed run repeats them exactly
        self.augment.reseed(
            int(self.hparams.seed) * 1_000_003 + self.current_epoch * 7_919 + self.global_rank,
            self.device,
            epoch=self.current_epoch,
        )

    def on_test_epoch_start(self):
        self.augment.reseed(int(self.hparams.seed) * 1_000_003 - 1 - self.global_rank, self.device)

    def inputs(self, batch, train: bool, mirror: bool = False):
        """The batch's images after augmentation, and the patches a token-dropping model keeps: those
        without removed pixels (fill=token_drop shards; the mask cropped and flipped with its image)
        and not dropped by the augmentation. ``mirror``: the left-right mirror image (test-time flip)."""
        image, removed = batch["image"], batch.get("removed")
        if removed is not None and not self.accepts_keep:
            raise RoarError("fill=token_drop data need a model that drops tokens (model=vit_tiny or vit_small).")
        if mirror:
            image, removed = image.flip(-1), None if removed is None else removed.flip(-1)
        keys = batch_keys(batch) if train and self.augment.needs_keys else None  # off the hot path otherwise
        return self.augment(image, train=train, removed=removed, keys=keys)

    def training_step(self, batch, batch_idx):
        x, keep = self.inputs(batch, train=True)
        logits = self(x, keep)
        loss = F.cross_entropy(
            logits, batch["label"], label_smoothing=float(self.hparams.optim.get("label_smoothing", 0.0))
        )
        self.train_acc(logits, batch["label"])
        n = batch["label"].shape[0]  # said, not inferred: the batch dict has several tensors
        self.log("train_loss", loss, prog_bar=True, batch_size=n)
        self.log("train_acc", self.train_acc, on_step=False, on_epoch=True, batch_size=n)
        return loss

    def test_logits(self, batch):
        """The logits the run's test accuracy is measured on: with ``optim.tta=flip``, the mean over the image and
        its mirror image (airbench94.py's ``tta_level=1``)."""
        logits = self(*self.inputs(batch, train=False))
        if self.hparams.optim.get("tta", "none") == "flip":
            logits = 0.5 * logits + 0.5 * self(*self.inputs(batch, train=False, mirror=True))
        return logits

    def test_step(self, batch, batch_idx):
        logits = self.test_logits(batch)
        n = batch["label"].shape[0]
        self.log("test_loss", F.cross_entropy(logits, batch["label"]), sync_dist=True, batch_size=n)
        self.test_acc(logits, batch["label"])
        self.log("test_acc", self.test_acc, batch_size=n)
        if self.test_acc5 is not None:
            self.test_acc5(logits, batch["label"])
            self.log("test_acc5", self.test_acc5, batch_size=n)

    def param_groups(self, lr: float, weight_decay: float, bias_scale: float) -> list:
        """The trainable parameters; with ``bias_scale`` != 1, BatchNorm biases get ``bias_scale`` x the lr and
        the same decay per step (airbench94.py: lr x 64, weight_decay / 64)."""
        trainable = [p for p in self.parameters() if p.requires_grad]
        if bias_scale == 1:
            return [{"params": trainable, "lr": lr, "weight_decay": weight_decay}]
        norms = {
            id(p)
            for m in self.modules()
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)
            for p in m.parameters()
        }
        biases = [p for p in trainable if id(p) in norms]
        return [
            {"params": biases, "lr": lr * bias_scale, "weight_decay": weight_decay / bias_scale},
            {"params": [p for p in trainable if id(p) not in norms], "lr": lr, "weight_decay": weight_decay},
        ]

    def optimizer(self, o: dict) -> torch.optim.Optimizer:
        """SGD (roar's recipes), or AdamW for the ViT recipe: timm's ``param_groups_weight_decay`` (no decay
        on biases and norm weights, every parameter of one dimension, nor on the ViT's ``no_weight_decay``
        position embedding and class token), the missingness paper's ViTs being
        trained "with the same training scheme as used in Wightman (2019)" (appendix A.2)."""
        if o.get("optimizer", "sgd") == "adamw":
            params = [(n, p) for n, p in self.named_parameters() if p.requires_grad]
            plain = [p.ndim <= 1 or n.rsplit(".", 1)[-1] in NO_DECAY for n, p in params]
            decay = [p for (_, p), skip in zip(params, plain) if not skip]
            no_decay = [p for (_, p), skip in zip(params, plain) if skip]
            groups = [{"params": no_decay, "weight_decay": 0.0}, {"params": decay, "weight_decay": o["weight_decay"]}]
            return torch.optim.AdamW(groups, lr=o["lr"], betas=tuple(o.get("betas", (0.9, 0.999))))
        groups = self.param_groups(o["lr"], o.get("weight_decay", 0.0), float(o.get("bias_lr_scale", 1.0)))
        return torch.optim.SGD(groups, lr=o["lr"], momentum=o.get("momentum", 0.9), nesterov=o.get("nesterov", False))

    def configure_optimizers(self):
        o = self.hparams.optim
        opt = self.optimizer(o)
        schedule = o.get("schedule", "none")
        if schedule == "triangle":  # per step, over the run's steps
            total, shape = int(self.trainer.estimated_stepping_batches), o.get("triangle") or {}
            start, peak, end = (float(shape.get(k, d)) for k, d in (("start", 0.2), ("peak", 0.23), ("end", 0.07)))
            sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda i: triangle(i, total, start, peak, end))
            return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
        if schedule == "step":
            sched = torch.optim.lr_scheduler.MultiStepLR(
                opt, milestones=list(o["milestones"]), gamma=o.get("gamma", 0.1)
            )
        elif schedule == "cosine" and int(o.get("warmup_epochs", 0)) > 0:  # timm: linear warmup, then cosine
            warm, total = int(o["warmup_epochs"]), int(self.hparams.max_epochs)
            sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda e: warmup_cosine(e, warm, total))
        elif schedule == "cosine":
            sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=self.hparams.max_epochs)
        else:
            return opt
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "epoch"}}
