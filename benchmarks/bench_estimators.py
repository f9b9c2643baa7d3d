"""Estimator benchmarks (issue: estimators), ResNet-18 (small stem) at 32x32 on this machine's CPU.

1. images/s of each estimator relative to its floor, passes x (one forward+backward of the batch);
   goal at least 0.9.
2. against Captum computing the same estimator, one call each: at least 1.0x for every single
   estimator, at least 2.5x for the trio sg, sg_sq, vargrad of one base (one shared set of noisy
   estimates here, three NoiseTunnel calls there).
3. forward+backward passes per image of ROAR's full suite, shared vs one estimator at a time.
"""

import torch
from captum.attr import GuidedBackprop, InputXGradient, IntegratedGradients, NoiseTunnel, Saliency
from timing import interleaved, verdict

from roar.estimators import EstimatorSuite, available
from roar.estimators.gradients import target_gradient
from roar.models import build_model

BATCH, SAMPLES, STEPS, ROWS = 8, 15, 25, 64  # ROWS: rows per forward+backward chunk, ours and Captum's alike


def model_and_batch():
    torch.manual_seed(0)
    model = build_model("resnet18", num_classes=10, small_stem=True).eval()
    x = torch.rand(BATCH, 3, 32, 32)
    return model, x, torch.randint(0, 10, (BATCH,))


def captum_single(name, model, x, t):
    if name == "grad":
        return lambda: Saliency(model).attribute(x, target=t, abs=False)
    if name == "grad_x_input":
        return lambda: InputXGradient(model).attribute(x, target=t)
    if name == "ig":
        return lambda: IntegratedGradients(model).attribute(
            x, baselines=0.0, target=t, n_steps=STEPS, internal_batch_size=ROWS
        )
    if name == "gb":
        return lambda: GuidedBackprop(model).attribute(x, target=t)
    raise KeyError(name)


def captum_trio(base_name, model, x, t):
    base = {"grad": Saliency, "gb": GuidedBackprop}[base_name](model)
    kw = {"abs": False} if base_name == "grad" else {}

    def run():
        for nt in ("smoothgrad", "smoothgrad_sq", "vargrad"):
            NoiseTunnel(base).attribute(
                x, target=t, nt_type=nt, nt_samples=SAMPLES, stdevs=0.15, nt_samples_batch_size=ROWS // BATCH, **kw
            )

    return run


def main():
    model, x, t = model_and_batch()
    ids = [f"b{i}" for i in range(BATCH)]
    floor_fb = interleaved({"fb": lambda: target_gradient(model, x, t)}, rounds=5)["fb"]
    print(
        f"\n== ResNet-18 (small stem) 32x32, batch {BATCH}: one forward+backward of the batch = {1e3 * floor_fb:.1f} ms"
    )
    print(
        f"  {'estimator':24s} {'passes':>6s} {'ours img/s':>10s} {'floor img/s':>11s} {'of floor':>8s}   "
        f"{'captum img/s':>12s} {'vs captum':>9s}"
    )
    cases = [(n, [n]) for n in ("grad", "grad_x_input", "ig", "gb")] + [
        (f"trio of {b}", [f"sg-{b}", f"sg_sq-{b}", f"vargrad-{b}"]) for b in ("grad", "gb")
    ]
    for label, names in cases:
        suite = EstimatorSuite(names, ig_steps=STEPS, samples=SAMPLES, max_rows=ROWS)
        captum = (
            captum_single(names[0], model, x, t)
            if len(names) == 1
            else captum_trio(names[0].split("-")[1], model, x, t)
        )
        times = interleaved({"ours": lambda: suite(model, x, t, ids), "captum": captum}, rounds=3)
        floor = suite.passes_per_image * floor_fb
        of_floor, vs_captum = floor / times["ours"], times["captum"] / times["ours"]
        goal = 2.5 if len(names) > 1 else 1.0
        print(
            f"  {label:24s} {suite.passes_per_image:6d} {BATCH / times['ours']:10.2f} {BATCH / floor:11.2f} "
            f"{of_floor:8.2f}   "
            f"{BATCH / times['captum']:12.2f} {vs_captum:8.2f}x  floor {verdict(of_floor, 0.9)}, captum "
            f"{verdict(vs_captum, goal)}"
        )
    roar_suite = [n for n in available() if "grad_x_input" not in n]
    shared = EstimatorSuite(roar_suite).passes_per_image
    alone = sum(EstimatorSuite([n]).passes_per_image for n in roar_suite if not n.endswith("_sq"))
    print(
        f"\n== ROAR's full suite ({len(roar_suite)} estimators: 3 bases, 3 ensembles each, squared bases, random, "
        f"sobel)"
    )
    print(
        f"  forward+backward passes per image: {shared} shared vs {alone} one estimator at a time  "
        f"{verdict(shared, 432, higher_is_better=False)}"
    )


if __name__ == "__main__":
    main()
