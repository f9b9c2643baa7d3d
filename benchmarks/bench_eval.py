"""No-retrain evaluation benchmark (issue: evaluation and report).

MIF + LIF at FPA's 5% steps: 2 x 21 masked copies of every image.
- batched: roar-eval's ``masked_logits``: all masked copies of ``max_rows // 42`` images go through
  the model together, in forward passes of up to ``eval.max_rows`` rows;
- per step: a loop over the curve, one forward pass of all the images per (curve, step).
Both compute the same logits (checked). Two models: ResNet-8 on 8x8 digits (the demo) and
ResNet-18 (small stem) at 32x32 (CIFAR), each at eval.max_rows 64 and 512. Goal: the better
max_rows at least as fast as the per-step loop (>= 1.0); the figures say which to choose on a CPU
(on a GPU, large chunks).
"""

import torch
from omegaconf import OmegaConf
from timing import interleaved, verdict

from roar.classifier.module import Classifier
from roar.evaluate.curves import MaskGrid, masked_logits, step_fractions
from roar.masking import bind_fill, feature_ranks, mask_images

FILL, T, MODES = OmegaConf.create({"name": "channel_mean"}), step_fractions(0.05), ["remove", "keep"]
CASES = {  # name: (model config, image shape, images)
    "ResNet-8, 1x8x8, 64 images": ({"name": "resnet8"}, [1, 8, 8], 64),
    "ResNet-18, 3x32x32, 16 images": ({"name": "resnet18", "params": {"small_stem": True}}, [3, 32, 32], 16),
}

for case, (net, shape, n) in CASES.items():
    torch.manual_seed(0)
    c, h, w = shape
    model = Classifier(
        model=net,
        optim={"lr": 0.1},
        augment={"name": "none"},
        num_classes=10,
        image_shape=shape,
        mean=[0.5] * c,
        std=[0.25] * c,
        max_epochs=1,
    ).eval()
    images, fill = torch.rand(n, *shape), bind_fill(FILL, c, [0.5] * c)
    ranks = feature_ranks(torch.randn(n, h * w), [f"i{k}" for k in range(n)], maps_seed=0)

    @torch.no_grad()
    def per_step():
        return torch.stack(
            [torch.stack([model(mask_images(images, ranks, m, f, fill)[0]) for f in T], 1) for m in MODES], 1
        )

    candidates = {"per step": per_step}
    for rows in (64, 512):
        grid = MaskGrid(MODES, T, max_rows=rows)
        candidates[rows] = lambda grid=grid: masked_logits(model, images, ranks, grid, fill)
        assert torch.allclose(candidates[rows](), per_step(), atol=1e-4)
    times = interleaved(candidates, rounds=3)
    ratios = {rows: times["per step"] / times[rows] for rows in (64, 512)}
    print(
        f"{case}: per step {times['per step']:.2f} s; batched "
        + ", ".join(f"max_rows={r} {times[r]:.2f} s ({q:.2f}x)" for r, q in ratios.items())
        + f"; best {verdict(max(ratios.values()), 1.0)}"
    )
