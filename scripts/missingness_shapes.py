"""The missingness paper's measurements on shapes (Jain et al. 2022, sections 3 and 4), end to end.

Five base models of ``experiment=missingness_shapes``: ResNet-8 (seeds 0 and 1), ResNet-8 trained with
half its 4x4 patches blacked out (``augment=missingness``), a 4-block ViT, and that ViT trained with half
its tokens dropped. Then, through the ordinary stages:

1. patch-removal curves (section 3, Figs. 3-5): every model evaluated in *one* reference order, the
   ResNet-8's ``grad`` map (``eval.order_from``, appendix A.3), most and least salient first and random,
   with the fills zero, channel_mean, blur, random_colour_image, random_colour_pixel for the ResNets and
   token drop (and zero paint, C.7) for the ViTs: unchanged share, class entropy, histogram;
2. LIME (1,000 perturbations, 4x4 patches) of every model; its top-K ablation (Figs. 9, 10): each model
   under test loses the patches ranked first by its own LIME, by LIME of another model, or at random;
3. LIME's consistency across the 8 baseline colours (Fig. 8) of the plain ResNet, the augmented ResNet
   and the token-dropping ViT;
4. the report (``outputs/missingness_shapes/report/index.html``).

    python scripts/missingness_shapes.py [key=value ...]     # about 35 min on 2 CPU cores

Every stage skips what is done, so a rerun after an interruption resumes.
"""

import sys
import time

from roar.attribution.run import attribute
from roar.config import compose_config
from roar.evaluate.run import evaluate
from roar.report.run import build_report
from roar.store.resolve import base_key
from roar.tracking import quiet_lightning
from roar.training.run import train

VIT = ["model=vit_tiny", "model.params.depth=4", "optim.lr=0.01"]
MODELS = {  # name: overrides
    "resnet": ["model=resnet8"],
    "resnet_seed1": ["model=resnet8", "seed=1"],
    "resnet_missing": ["model=resnet8", "augment=missingness"],
    "vit": VIT,
    "vit_missing": [*VIT, "augment=missingness"],
}
PAINTS = ["zero", "channel_mean", "blur", "random_colour_image", "random_colour_pixel"]
PATCHES = ["granularity=patch", "patch_size=4", "eval.step=0.0625", "eval.fractions=[0]", "eval.modes=[remove]"]


def main(extra):
    quiet_lightning()
    common = ["experiment=missingness_shapes", "logger=csv", "trainer.enable_progress_bar=false", *extra]

    def cfg(model, *more):
        return compose_config("pipeline", [*common, *MODELS[model], *more])

    start, bases = time.time(), {}
    for name in MODELS:
        metrics = train(cfg(name), quiet=True)
        bases[name] = base_key(cfg(name)).name
        print(f"[missingness] {name}: {bases[name]} test_acc {metrics['test_acc']:.3f} ({time.time() - start:.0f} s)")
    token = ["fill=token_drop"]
    for name in MODELS:
        vit = name.startswith("vit")
        estimators = "[grad,random,lime]" if name == "resnet" else "[random,lime]"
        attribute(
            cfg(
                name,
                *(token if vit else ["fill=zero"]),
                f"attribute.estimators={estimators}",
                "attribute.splits=[test]",
            )
        )
        print(f"[missingness] maps of {name} ({time.time() - start:.0f} s)")
    reference = f"eval.order_from={bases['resnet']}"
    for name in MODELS:
        if name == "resnet_seed1":
            continue
        fills = ["token_drop", "zero"] if name.startswith("vit") else PAINTS
        for fill in fills:
            evaluate(cfg(name, f"fill={fill}", "eval.rankings=[grad,random]", reference, *PATCHES))
    ablation = {  # model under test: whose LIME orders its patches
        "resnet": ["resnet", "resnet_seed1", "vit"],
        "resnet_missing": ["resnet_missing", "resnet"],
        "vit": ["vit", "resnet"],
    }
    for name, sources in ablation.items():
        fill = "token_drop" if name.startswith("vit") else "zero"
        for source in sources:
            evaluate(
                cfg(
                    name,
                    f"fill={fill}",
                    "eval.rankings=[lime.sum,random]",
                    f"eval.order_from={bases[source]}",
                    *PATCHES,
                )
            )
    for name, images in (("resnet", 32), ("resnet_missing", 32), ("vit", 8)):
        fill = "token_drop" if name.startswith("vit") else "zero"
        evaluate(cfg(name, f"fill={fill}", "eval.rankings=[random]", f"eval.consistency.images={images}", *PATCHES))
    print(f"[missingness] done in {time.time() - start:.0f} s")
    build_report(compose_config("pipeline", [*common, "eval.rankings=[grad,random,lime.sum]"]))


if __name__ == "__main__":
    main(sys.argv[1:])
