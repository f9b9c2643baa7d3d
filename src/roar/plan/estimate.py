"""A device-time estimate where no step time of the device is at hand: an experiment's training steps and
attribution passes priced by their floating-point operations at the rate one calibrated H100 run reached.

The rate: ``roar-plan experiment=roar_cifar10 plan.calibrate=true`` on an NVIDIA H100 80GB (16-mixed) measured
11.6 ms per step of 128 ResNet-18 images at 32 px (docs/guides/fast-retraining.md), 3 x 1.11 GFLOP per image
(forward, and a backward of twice its cost): 36.8 TFLOP/s. The fast grid's fastnet at batch 1000 reached 53.7
TFLOP/s (13.2 ms a step) on the same card, so the estimate carries about that spread (larger images and models
fill the card better: for them it errs high). ``roar-plan plan.calibrate=true`` on the device replaces it.
"""

import torch
from torch.utils.flop_counter import FlopCounterMode

from roar.models.registry import build_model
from roar.utils.plain import to_plain

H100_FLOPS = 3 * 1.11084544e9 * 128 / 0.0116  # FLOP/s: the calibrated ResNet-18 step above
PASS = 3  # a training step's or an attribution pass's cost in forward passes (the backward: twice the forward)


def forward_flops(model: dict, shape, num_classes: int) -> float:
    """FLOPs of one image's forward pass through ``model`` (its config: name, params) at ``shape`` (C, H, W)."""
    c, h, _ = shape
    net = build_model(
        model["name"], num_classes=num_classes, in_channels=c, image_size=h, **(model.get("params") or {})
    )
    net.eval()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        net(torch.rand(1, c, h, h))
    return float(counter.get_total_flops())


def h100_hours(cfg, plan: dict) -> float:
    """The estimated H100-hours of ``plan`` (make_plan's bill of ``cfg``): every training step and attribution
    pass of the base model's architecture at the calibrated rate."""
    classes = int((cfg.get("plan") or {}).get("num_classes") or 10)
    flops = forward_flops(to_plain(cfg.model), plan["data"]["shape"], classes)
    steps = plan["training_steps"] * plan["model"]["batch_size"] + plan["attribution"]["passes"]
    return steps * PASS * flops / H100_FLOPS / 3600
