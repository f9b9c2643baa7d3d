"""Backward selection (overinterpretation paper): roar's batched gbs against the public method's loop,
and exact BackSelect against gbs (issue: sufficient input subsets).

1. ``gbs`` (roar.estimators.backselect, batch 64) vs the reference code's per-image loop
   (gifford-lab/overinterpretation, ``imagenet_backselect.run_gradient_backward_selection`` called on one
   image at a time: a forward and a backward pass per iteration, ``topk`` of the mask gradient over the
   unmasked pixels), both with k = 4 and the channel-mean fill on the same trained ResNet-8, on shapes
   test images. Throughput from the batched run over ``--images`` images and the loop over the first
   ``--loop-images`` of them; the removal steps of those images are compared (share identical). Goal >= 10x.
2. ``bs`` vs ``gbs`` on digits (8x8, trained digits model): forward(+backward) passes and seconds per
   image, and the mean SIS size at tau = 0.9 of both on the same images. Goal: gbs needs >= 100x fewer.
"""

import argparse
import math
import tempfile
import time

import torch
from timing import verdict

from roar.classifier.load import load_classifier
from roar.config import compose_config
from roar.data import build_dataset
from roar.estimators.backselect import exact_backselect, gradient_backselect, sis_mask
from roar.estimators.registry import ITERATIVE
from roar.store.resolve import base_key
from roar.tracking import quiet_lightning
from roar.training.run import train

QUIET = ["logger=csv", "trainer.enable_progress_bar=false", "trainer.accelerator=cpu"]


def trained(root, overrides):
    cfg = compose_config("train", [f"paths.output_root={root}", *QUIET, *overrides])
    train(cfg, quiet=True)
    return load_classifier(base_key(cfg).checkpoint), build_dataset(cfg.data, "test")


def reference_loop(model, image, fill, k):
    """The public code's Batched Gradient BackSelect on one image (its tie noise of variance 1e-12 left
    out): mask k pixels per iteration by the top-k mask gradient; returns the (H, W) removal steps."""
    _, _, h, w = image.shape
    masks = torch.zeros(1, 1, h, w, requires_grad=True)
    history = torch.zeros(1, 1, h, w, dtype=torch.long)
    with torch.no_grad():
        c = model(image).argmax(1)
    for i in range(math.ceil(h * w / k)):
        conf = torch.softmax(model((1 - masks) * image + masks * fill), 1).gather(1, c[:, None])
        (grad,) = torch.autograd.grad(conf.sum(), masks)
        remaining = (masks.detach() == 0).flatten().nonzero()[:, 0]
        top = torch.topk(grad.flatten()[remaining], min(k, len(remaining))).indices
        chosen = remaining[top]
        with torch.no_grad():
            masks.view(-1)[chosen] = 1
            history.view(-1)[chosen] = i
    return history[0, 0]


def images_of(dataset, n):
    n = min(n, len(dataset))
    return torch.stack([dataset[i]["image"] for i in range(n)]), dataset.ids[:n]


def bench_gbs(root, n_images: int, n_loop: int, batch: int = 64, k: int = 4):
    print(f"\n== gbs, batch {batch}, vs the reference per-image loop (ResNet-8 on shapes, k = {k})")
    model, test = trained(root, ["data=shapes", "model=resnet8"])
    x, ids = images_of(test, n_images)
    fill = x.mean((0, 2, 3), keepdim=True).expand_as(x).contiguous()
    params = {"sis_k": k}
    start = time.perf_counter()
    steps = torch.cat(
        [
            gradient_backselect(model, x[a : a + batch], fill[a : a + batch], ids[a : a + batch], params)[0]
            for a in range(0, len(x), batch)
        ]
    )
    batched = time.perf_counter() - start
    start = time.perf_counter()
    loop = [reference_loop(model, x[j : j + 1], fill[j : j + 1], k) for j in range(n_loop)]
    looped = time.perf_counter() - start
    same = torch.stack([steps[j, 0] == loop[j] for j in range(n_loop)]).float().mean().item()
    passes = ITERATIVE["gbs"].passes(params, x.shape[2] * x.shape[3])
    rate_b, rate_l = len(x) / batched, n_loop / looped
    print(
        f"  {passes} passes per image; batched: {len(x)} images in {batched:.1f} s ({rate_b:.2f} img/s); "
        f"reference loop: {n_loop} images in {looped:.1f} s ({rate_l:.2f} img/s)"
    )
    print(
        f"  speed-up {rate_b / rate_l:.1f}x  {verdict(rate_b / rate_l, 10)}; same removal step for {same:.2%} of pixels"
    )


def bench_bs(root, n_images: int = 48):
    print(f"\n== bs (exact BackSelect) vs gbs on digits (8x8), {n_images} test images")
    model, test = trained(root, ["data=digits"])
    x, ids = images_of(test, n_images)
    fill = x.mean((0, 2, 3), keepdim=True).expand_as(x).contiguous()
    p = x.shape[2] * x.shape[3]
    rows = {}
    for name, fn, params in (
        ("bs", exact_backselect, {}),
        ("gbs k=1 (default)", gradient_backselect, {}),
        ("gbs k=4", gradient_backselect, {"sis_k": 4}),
    ):
        start = time.perf_counter()
        steps, trace = fn(model, x, fill, ids, params)
        seconds = (time.perf_counter() - start) / len(x)
        keep, has = sis_mask(steps[:, 0], trace, 0.9)
        passes = ITERATIVE[name.split()[0]].passes(params, p)
        rows[name] = passes
        size = keep.flatten(1).sum(1)[has].float().mean().item()
        print(
            f"  {name:18s} {passes:5d} passes/image, {seconds * 1000:7.1f} ms/image, mean SIS at tau 0.9: {size:.1f} px"
            f" ({int(has.sum())} images)"
        )
    for name in ("gbs k=1 (default)", "gbs k=4"):
        ratio = rows["bs"] / rows[name]
        print(f"  bs / {name}: {ratio:.0f}x fewer passes  {verdict(ratio, 100)}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--loop-images", type=int, default=64)
    args, _ = parser.parse_known_args()
    torch.manual_seed(0)
    quiet_lightning()
    with tempfile.TemporaryDirectory() as root:
        bench_bs(root)
        bench_gbs(root, args.images, args.loop_images)
