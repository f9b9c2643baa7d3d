"""The masking-explanations paper's completeness and soundness on shapes (appendices A, C, D), end to end.

1. The base model of ``experiment=masks_shapes`` (ResNet-8 on shapes).
2. roar-attribute on the test images: learned masks ``mask-tv<lambda>`` for lambda_TV in {0, 0.001, 0.01,
   0.1} (s = 1, lambda_1 = 0.001) and ``grad_x_input``, once for the prediction a (``attribute.target=
   predicted``) and once for the runner-up a' (``attribute.target=second``).
3. roar-eval with ``eval.soundness.images``: completeness and soundness under grey and random-image
   replacement, deletion, insertion, the IoU of M(30%) with the object.
4. The shortcut: a base model trained with ``data.shortcut_prob=1`` (every image carries its class's
   marker); masks for the true label at lambda_TV 0 and 0.1; the share of the marker's pixels in M(30%).
5. The report (``outputs/masks_shapes/report/index.html``) and one table on the console.

The paper's 2000 Adam steps and 10 distractors cost about 10x this CPU study's defaults below
(``steps``, ``distractors``); pass ``--steps 2000 --distractors 10`` on a GPU.

    python scripts/masks_shapes.py [--steps 200] [--distractors 4] [key=value ...]   # about 45 min on 2 CPU cores

Every stage skips what is done, so a rerun after an interruption resumes.
"""

import argparse
import time

from roar.attribution.run import attribute
from roar.config import compose_config
from roar.evaluate.run import evaluate
from roar.report.run import build_report
from roar.tracking import quiet_lightning
from roar.training.run import train

LAMBDAS = ["0", "0.001", "0.01", "0.1"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--distractors", type=int, default=4)
    parser.add_argument("--images", type=int, default=200, help="correctly classified test images evaluated")
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()
    quiet_lightning()
    masks = [f"mask-tv{v}" for v in LAMBDAS]
    common = [
        "experiment=masks_shapes",
        "logger=csv",
        "trainer.enable_progress_bar=false",
        f"attribute.params.mask_steps={args.steps}",
        f"attribute.params.mask_distractors={args.distractors}",
        f"eval.soundness.images={args.images}",
        *args.overrides,
    ]
    start = time.time()

    def say(what):
        print(f"[masks] {what} ({time.time() - start:.0f} s)", flush=True)

    metrics = train(compose_config("pipeline", common), quiet=True)
    say(f"base test_acc {metrics['test_acc']:.3f}")
    for target in ("predicted", "second"):
        attribute(compose_config("pipeline", [*common, f"attribute.target={target}"]))
        say(f"maps for the {target} class")
    evaluate(compose_config("pipeline", common))
    say("completeness and soundness")
    shortcut = [
        *common,
        "name=masks_shortcut_shapes",
        "data.shortcut_prob=1.0",
        f"grid.estimators=[{masks[0]},{masks[-1]}]",
        "attribute.target=label",
        "eval.soundness.replacements=[grey]",
    ]
    metrics = train(compose_config("pipeline", shortcut), quiet=True)
    say(f"shortcut base test_acc {metrics['test_acc']:.3f}")
    attribute(compose_config("pipeline", shortcut))
    evaluate(compose_config("pipeline", shortcut))
    say("shortcut masks")
    print(f"[masks] report: {build_report(compose_config('pipeline', common))}")
    print(f"[masks] report: {build_report(compose_config('pipeline', shortcut))}")


if __name__ == "__main__":
    main()
