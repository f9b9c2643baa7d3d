"""Training-step benchmarks (issue: foundation).

1. FPA's cost: a training step with augment=fpa vs augment=none, on the demo model (ResNet-8 on
   8x8 digits) and on ResNet-18 (small stem) at 32x32. Goal: FPA adds at most 5%.
2. FPA vectorized vs a literal per-pixel loop of Algorithm 1 on the same batch: the speedup.
3. Lightning vs a plain PyTorch loop on ResNet-18 at 32x32, same model, data and optimizer:
   throughput ratio, goal at least 0.9.
"""

import time

import numpy as np
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf
from timing import fit_one_epoch, interleaved, verdict
from torch.utils.data import DataLoader, Dataset

from roar.augment import fpa_loop
from roar.augment.perturbations import generators
from roar.classifier.module import Classifier
from roar.config import compose_config

FPA = {
    "name": "fpa",
    "flip": False,
    "fill": "channel_mean",
    "params": {"p": 0.5, "p1_max": 0.25, "p2": 0.1, "s_max": 3},
}
NONE = {"name": "none"}


def classifier(model, augment, shape, num_classes=10):
    cfg = compose_config(
        "train", [f"model={model}"] + (["model.params.small_stem=true"] if model == "resnet18" else [])
    )
    return Classifier(
        model=OmegaConf.to_container(cfg.model),
        optim=OmegaConf.to_container(cfg.optim),
        augment=augment,
        num_classes=num_classes,
        image_shape=list(shape),
        mean=[0.5] * shape[0],
        std=[0.25] * shape[0],
        max_epochs=1,
    )


def step_fn(module, batch, steps):
    opt = torch.optim.SGD(module.parameters(), lr=0.01, momentum=0.9)
    module.augment.reseed(0, "cpu")

    def run():
        for _ in range(steps):
            x, keep = module.augment(batch["image"], train=True)
            loss = F.cross_entropy(module(x, keep), batch["label"])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

    return run


def bench_fpa_overhead():
    print("\n== FPA cost per training step (median of interleaved rounds; p=0.5, so half the steps are perturbed)")
    for model, shape, batch_size, steps in [("resnet8", (1, 8, 8), 64, 40), ("resnet18", (3, 32, 32), 64, 6)]:
        torch.manual_seed(0)
        batch = {"image": torch.rand(batch_size, *shape), "label": torch.randint(0, 10, (batch_size,))}
        none, fpa = classifier(model, NONE, shape), classifier(model, FPA, shape)
        fpa.load_state_dict(none.state_dict())
        t = interleaved({"none": step_fn(none, batch, steps), "fpa": step_fn(fpa, batch, steps)}, rounds=5)
        ratio = t["fpa"] / t["none"]
        print(
            f"  {model:9s} {shape}, batch {batch_size}: none {1e3 * t['none'] / steps:7.2f} ms/step, "
            f"fpa {1e3 * t['fpa'] / steps:7.2f} ms/step, fpa/none = {ratio:.3f}  "
            f"{verdict(ratio, 1.05, higher_is_better=False)}"
        )


def bench_fpa_vs_loop():
    print("\n== FPA masks for one selected batch of 64 images at 32x32: vectorized vs Algorithm 1's pixel loop")
    rng = np.random.default_rng(0)
    g = generators(0, "cpu")
    from roar.augment import fpa_removed

    t = interleaved(
        {
            "loop": lambda: [fpa_loop((32, 32), 0.125, 0.1, 3, rng) for _ in range(64)],
            "vectorized": lambda: fpa_removed((64, 1, 32, 32), 0.125, 0.1, 3, g.device),
        },
        rounds=3,
    )
    print(
        f"  loop {1e3 * t['loop']:.1f} ms, vectorized {1e3 * t['vectorized']:.3f} ms: speedup "
        f"{t['loop'] / t['vectorized']:.0f}x"
    )


class InMemory(Dataset):
    def __init__(self, n, shape):
        g = torch.Generator().manual_seed(0)
        self.images, self.labels = torch.rand(n, *shape, generator=g), torch.randint(0, 10, (n,), generator=g)

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        return {"image": self.images[i], "label": self.labels[i]}


def bench_lightning_vs_plain():
    print("\n== ResNet-18 (small stem) at 32x32, batch 64: Lightning Trainer vs a plain PyTorch loop")
    shape, batch_size, batches, skip = (3, 32, 32), 64, 12, 2
    loader = DataLoader(InMemory(batch_size * batches, shape), batch_size=batch_size)
    timed = batch_size * (batches - skip)

    def plain():
        torch.manual_seed(0)
        module = classifier("resnet18", NONE, shape)
        opt = module.configure_optimizers()["optimizer"]
        for i, batch in enumerate(loader):
            if i == skip:
                start = time.perf_counter()
            loss = F.cross_entropy(module(batch["image"]), batch["label"])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        return time.perf_counter() - start

    results = {"plain": [], "lightning": []}
    for _ in range(3):
        results["plain"].append(plain())
        torch.manual_seed(0)
        results["lightning"].append(fit_one_epoch(classifier("resnet18", NONE, shape), loader, skip))
    plain_ips = timed / float(np.median(results["plain"]))
    light_ips = timed / float(np.median(results["lightning"]))
    ratio = light_ips / plain_ips
    print(
        f"  plain {plain_ips:.1f} img/s, Lightning {light_ips:.1f} img/s: Lightning/plain = {ratio:.3f}  "
        f"{verdict(ratio, 0.9)}"
    )


def main():
    torch.set_num_threads(max(1, torch.get_num_threads()))
    bench_fpa_overhead()
    bench_fpa_vs_loop()
    bench_lightning_vs_plain()


if __name__ == "__main__":
    main()
