"""The one LightningModule: normalization, the registered network, batch augmentation, SGD recipes."""

import lightning as L
import torch
import torch.nn.functional as F
from torchmetrics.classification import MulticlassAccuracy

from roar.augment import BatchAugment
from roar.errors import RoarError
from roar.models.registry import build_model

SCHEDULES = ("step", "cosine", "none")


class Classifier(L.LightningModule):
    """Cross-entropy classifier on images in [0, 1]; ``forward(x, keep=None)`` normalizes, then runs the net.

    All constructor arguments are plain containers, so checkpoints load with ``weights_only=True``.
    """

    def __init__(
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
        c, h, w = image_shape
        if h != w:
            raise RoarError(f"Images are {h}x{w}; roar's models expect square images (set data.crop).")
        self.net = build_model(
            model["name"], num_classes=num_classes, in_channels=c, image_size=h, **(model.get("params") or {})
        )
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, c, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, c, 1, 1), persistent=False)
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

    def on_train_epoch_start(self):
        datamodule = getattr(self.trainer, "datamodule", None)
        if hasattr(datamodule, "set_epoch"):
            datamodule.set_epoch(self.current_epoch)
        # augmentation draws are a function of (seed, epoch, rank): a resumed run repeats them exactly
        self.augment.reseed(
            int(self.hparams.seed) * 1_000_003 + self.current_epoch * 7_919 + self.global_rank, self.device
        )

    def on_test_epoch_start(self):
        self.augment.reseed(int(self.hparams.seed) * 1_000_003 - 1 - self.global_rank, self.device)

    def inputs(self, batch, train: bool):
        """The batch's images after augmentation, and the patches a token-dropping model keeps: those
        without removed pixels (fill=token_drop shards; the mask cropped and flipped with its image)
        and not dropped by the augmentation."""
        removed = batch.get("removed")
        if removed is not None and not self.accepts_keep:
            raise RoarError("fill=token_drop data need a model that drops tokens (model=vit_tiny or vit_small).")
        return self.augment(batch["image"], train=train, removed=removed)

    def training_step(self, batch, batch_idx):
        x, keep = self.inputs(batch, train=True)
        logits = self(x, keep)
        loss = F.cross_entropy(logits, batch["label"])
        self.train_acc(logits, batch["label"])
        n = batch["label"].shape[0]  # said, not inferred: the batch dict has several tensors
        self.log("train_loss", loss, prog_bar=True, batch_size=n)
        self.log("train_acc", self.train_acc, on_step=False, on_epoch=True, batch_size=n)
        return loss

    def test_step(self, batch, batch_idx):
        x, keep = self.inputs(batch, train=False)
        logits = self(x, keep)
        n = batch["label"].shape[0]
        self.log("test_loss", F.cross_entropy(logits, batch["label"]), sync_dist=True, batch_size=n)
        self.test_acc(logits, batch["label"])
        self.log("test_acc", self.test_acc, batch_size=n)
        if self.test_acc5 is not None:
            self.test_acc5(logits, batch["label"])
            self.log("test_acc5", self.test_acc5, batch_size=n)

    def configure_optimizers(self):
        o = self.hparams.optim
        opt = torch.optim.SGD(
            self.parameters(),
            lr=o["lr"],
            momentum=o.get("momentum", 0.9),
            nesterov=o.get("nesterov", False),
            weight_decay=o.get("weight_decay", 0.0),
        )
        schedule = o.get("schedule", "none")
        if schedule == "step":
            sched = torch.optim.lr_scheduler.MultiStepLR(
                opt, milestones=list(o["milestones"]), gamma=o.get("gamma", 0.1)
            )
        elif schedule == "cosine":
            sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=self.hparams.max_epochs)
        else:
            return opt
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "epoch"}}
