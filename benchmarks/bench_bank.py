"""A bank of K retrain runs as one stacked model (roar.training.bank) against the same K networks stepped one
after the other, in one process, side by side: training steps (forward, backward, SGD with momentum and weight
decay) on 32x32 images of the shapes size (a step's time does not depend on the pixels' values).

    python benchmarks/bench_bank.py          CPU: ResNet-8, K = 5, batch 64 (goal >= 1.5x)
    python benchmarks/bench_bank.py --gpu    CUDA: fastnet and ResNet-18 at K = 4, 8, 16 (goal >= 3x), float32
                                             and bf16 autocast
"""

import sys

import torch
import torch.nn.functional as F
from timing import interleaved, verdict

from roar.models.registry import build_model
from roar.training.bank import Bank, member_losses

GPU = "--gpu" in sys.argv
DEVICE = "cuda" if GPU else "cpu"


def members(arch: str, k: int, params: dict) -> list:
    nets = []
    for seed in range(k):
        torch.manual_seed(seed)
        nets.append(build_model(arch, num_classes=4, in_channels=3, image_size=32, **params).to(DEVICE))
    return nets


def sgd(params):
    return torch.optim.SGD(params, lr=0.05, momentum=0.9, weight_decay=5e-4)


def compare(arch: str, k: int, batch: int, params: dict, goal: float, autocast: bool = False) -> None:
    solos, bank = members(arch, k, params), Bank(members(arch, k, params)).to(DEVICE)
    solo_opts, bank_opt = [sgd(n.parameters()) for n in solos], sgd(bank.parameters())
    x = torch.rand(k, batch, 3, 32, 32, device=DEVICE)
    y = torch.randint(0, 4, (k, batch), device=DEVICE)
    context = torch.autocast(DEVICE, dtype=torch.bfloat16, enabled=autocast)

    def sequential():
        for net, opt, xk, yk in zip(solos, solo_opts, x, y):
            opt.zero_grad()
            with context:
                loss = F.cross_entropy(net(xk), yk)
            loss.backward()
            opt.step()
        if GPU:
            torch.cuda.synchronize()

    def banked():
        bank_opt.zero_grad()
        with context:
            loss = member_losses(bank(x), y).sum()
        loss.backward()
        bank_opt.step()
        if GPU:
            torch.cuda.synchronize()

    times = interleaved({"sequential": sequential, "bank": banked}, rounds=5, warmup=2)
    ratio = times["sequential"] / times["bank"]
    print(
        f"{arch} K={k} batch {batch}{' bf16' if autocast else ''} on {DEVICE}: {k} steps one after the other "
        f"{times['sequential'] * 1e3:.1f} ms, one bank step {times['bank'] * 1e3:.1f} ms -> {ratio:.2f}x "
        f"{verdict(ratio, goal)}"
    )


if __name__ == "__main__":
    if GPU:
        for arch, params in (("fastnet", {}), ("resnet18", {"small_stem": True})):
            for k in (4, 8, 16):
                for autocast in (False, True):
                    compare(arch, k, 512, params, goal=3.0, autocast=autocast)
    else:
        torch.set_num_threads(2)
        compare("resnet8", 5, 64, {}, goal=1.5)
