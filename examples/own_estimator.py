"""Evaluate your own estimator under ROAR on digits: register it with one decorator and run the pipeline
(base model, maps, masked shards, retraining, verdicts) from Python.

    python examples/own_estimator.py [output folder]

The estimator here is the gradient times the image's local contrast; replace its body with your method.
It runs a small grid (t = 0.5 and 0.9, three seeds, short training) so that it finishes in about a minute;
drop the overrides for ROAR's full grid.
"""

import sys
import tempfile

import torch

import roar


@roar.register_estimator("contrast_grad")
def contrast_grad(model, x, target, params):
    """|d logit / d x| weighted by how far each pixel is from its image's mean."""
    x = x.detach().requires_grad_(True)
    with torch.enable_grad():
        (gradient,) = torch.autograd.grad(model(x).gather(1, target[:, None]).sum(), x)
    return gradient.abs() * (x - x.mean((2, 3), keepdim=True)).abs().detach()


outputs = sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp()
result = roar.run(
    "roar_digits",
    overrides=[
        f"paths.output_root={outputs}",
        "logger=csv",
        "grid.estimators=[contrast_grad,grad,random]",  # random: the reference every verdict compares with
        "grid.fractions=[0.5,0.9]",
        "grid.seeds=3",
        "trainer.max_epochs=3",
        "trainer.limit_train_batches=8",
    ],
)
print(f"\n{'estimator':14s} {'mean accuracy over t':>20s} {'random':>7s}  verdict (Holm-adjusted p)")
for row in result.verdicts:
    area, random_area, p = float(row["area"]), float(row["area_random"]), float(row["p_adjusted"])
    print(f"{row['estimator']:14s} {area:20.3f} {random_area:7.3f}  {row['verdict']} ({p:.2g})")
print(f"report: {result.report}")
