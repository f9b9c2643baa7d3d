"""``model=ensemble``: trained models' logits averaged (overinterpretation paper, section 3.1: "Each
ensemble outputs the average prediction over its member networks (specifically, the arithmetic mean of
their logits)"; section 4.5 and Fig. 5: ensembles have larger SIS than their members).

``model.params.members`` lists the members' checkpoints (or base-model folders, whose
``checkpoints/last.ckpt`` is taken), trained on the same dataset: their networks and weights are copied
into the ensemble, frozen, so roar-train only assembles and tests it (nothing to fit) and every later
stage treats it as any base model. The members' SHA-256 digests are kept (``member_sha256``): a member
retrained after the ensemble was assembled makes roar-train assemble it again.
"""

from pathlib import Path

import torch
from torch import nn

from roar.errors import RoarError
from roar.models.registry import build_model, register_model
from roar.store.keys import BaseKey


def member_checkpoint(path) -> Path:
    path = Path(path)
    return BaseKey.from_folder(path).checkpoint if path.is_dir() else path


class Ensemble(nn.Module):
    def __init__(self, nets, stats, sha256):
        super().__init__()
        self.members = nn.ModuleList(nets)
        self.member_stats, self.member_sha256 = stats, sha256
        self.requires_grad_(False)

    def forward(self, x):
        return torch.stack([net(x) for net in self.members]).mean(0)


@register_model("ensemble")
def ensemble(num_classes: int, in_channels: int, image_size: int, members=()):
    from roar.models.checkpoint import check_compatible, read_checkpoint
    from roar.store.shards import sha256_file

    if not members:
        raise RoarError(
            "model=ensemble needs its members: model.params.members=[<base folder or checkpoint>, ...] "
            "(models of this dataset trained with roar-train, e.g. under different seeds)."
        )
    nets, stats, digests = [], [], []
    for given in members:
        path = member_checkpoint(given)
        ckpt = read_checkpoint(path)
        check_compatible(ckpt, path, num_classes=num_classes, image_shape=[in_channels, image_size, image_size])
        hp = ckpt["hyper_parameters"]
        if hp["model"]["name"] == "ensemble":
            raise RoarError(f"Ensemble member {path} is an ensemble itself: list its members instead.")
        net = build_model(
            hp["model"]["name"], num_classes, in_channels, image_size, **(hp["model"].get("params") or {})
        )
        net.load_state_dict({k[len("net.") :]: v for k, v in ckpt["state_dict"].items() if k.startswith("net.")})
        nets.append(net)
        stats.append((str(path), hp["mean"], hp["std"]))
        digests.append(sha256_file(path))
    return Ensemble(nets, stats, digests)
