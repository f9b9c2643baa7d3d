"""Compare a Captum method with roar's gradients without retraining: which ranking's removal hurts the model
most (MIF/LIF and fidelity A, FPA section 3; the deletion accuracies, ROAR Fig. 3)?

    python examples/captum_vs_gradients.py
"""

from digits_model import digits, train_cnn

import roar

train_x, train_y, test_x, test_y = digits()
model = train_cnn(train_x, train_y)
test_x, test_y = test_x[:200], test_y[:200]  # a minute on a laptop CPU; the whole test set is 450
accuracy = (model(test_x).argmax(1) == test_y).float().mean().item()
print(f"your model: test accuracy {accuracy:.3f} on {len(test_y)} test digits")

mean = train_x.mean((0, 2, 3)).tolist()  # the removed pixels get the training images' mean (ROAR's fill)
print(
    f"{'ranking':30s} {'fidelity A':>16s}   accuracy with t removed: "
    + "  ".join(f"{t:.1f}" for t in (0, 0.1, 0.3, 0.5, 0.7, 0.9))
)
for name in ("grad", "sg_sq-grad", "captum-IntegratedGradients", "captum-Occlusion", "random"):
    maps = roar.attribute(model, test_x, name, captum={"n_steps": 25})
    result = roar.no_retrain(model, test_x, test_y, maps, fill="channel_mean", mean=mean, modes=["remove"])
    curve = "  ".join(f"{a:.2f}" for a in result.accuracy["remove"])
    print(f"{name:30s} {result.fidelity:>9.2f} ± {result.fidelity_ci:.2f}   {curve}")
