"""Learned masks (issue: masks with completeness and soundness): 32 images' masks optimized together (every
image's D distractor copies in one forward pass per step) vs the same 32 masks learned one image at a time,
ResNet-8 on 32x32x3, D = 10 distractors, 20 Adam steps (the paper's 2000 scale both alike). The masks
agree up to float summation order (max difference printed). Goal: >= 5x masks per second at batch 32.
A second line with D = 1 shows what batching gains when one image alone is a batch of one.
"""

import torch
from timing import interleaved, verdict

from roar.classifier.module import Classifier
from roar.estimators.learned_masks import learn_masks


def resnet8():
    torch.manual_seed(0)
    return Classifier(
        model={"name": "resnet8", "params": {}},
        optim={"lr": 0.1},
        augment={"name": "none"},
        num_classes=6,
        image_shape=[3, 32, 32],
        mean=[0.5] * 3,
        std=[0.25] * 3,
        max_epochs=1,
    ).eval()


def main(images: int = 32, steps: int = 20, distractors: int = 10):
    model = resnet8()
    g = torch.Generator().manual_seed(0)
    x, pool = torch.rand(images, 3, 32, 32, generator=g), torch.rand(256, 3, 32, 32, generator=g)
    labels, ids = torch.arange(images) % 6, [f"img{i}" for i in range(images)]
    params = {"mask_steps": steps, "mask_distractors": distractors}

    def batched():
        return learn_masks(model, x, labels, pool, ids, params, 0.01)

    def one_at_a_time():
        return torch.cat(
            [
                learn_masks(model, x[i : i + 1], labels[i : i + 1], pool, ids[i : i + 1], params, 0.01)
                for i in range(images)
            ]
        )

    diff = (batched() - one_at_a_time()).abs().max().item()
    t = interleaved({"one": one_at_a_time, "batch": batched}, rounds=3)
    ratio = t["one"] / t["batch"]
    print(f"\n== Learned masks: {images} images, {steps} steps, {distractors} distractors, ResNet-8 32x32")
    print(
        f"  one image at a time {images / t['one']:.2f} masks/s, batch of {images} {images / t['batch']:.2f} masks/s: "
        f"{ratio:.1f}x  {verdict(ratio, 5)}; max mask difference {diff:.1e}"
    )


if __name__ == "__main__":
    main()
    main(distractors=1)
