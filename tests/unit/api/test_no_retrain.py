"""roar.no_retrain and roar.attribute on plain tensors and any nn.Module: measurements that follow from how the
model was built, and every bad input refused before any work."""

import pytest
import torch
import torch.nn as nn

import roar
from roar.errors import RoarError


class LeftHalf(nn.Module):
    """Classifies 2 classes by the mean of the left half of the image minus 0.5: it relies on the left half only."""

    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(20.0))

    def forward(self, x):
        v = (x[..., :4].mean((1, 2, 3)) - 0.5) * self.scale
        return torch.stack([-v, v], 1)


@pytest.fixture
def data():
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(40) % 2
    images = torch.rand(40, 1, 8, 8, generator=g) * 0.2 + 0.4
    images[..., :4] += (labels.float() * 2 - 1).view(-1, 1, 1, 1) * 0.3  # the class lives in the left half
    return images, labels


def left_first(images):
    maps = torch.zeros_like(images)
    maps[..., :4] = 1.0
    return maps


def test_removing_what_the_model_relies_on_costs_accuracy_and_keeping_it_does_not(data):
    images, labels = data
    model = LeftHalf().train()
    result = roar.no_retrain(model, images, labels, left_first(images), fill="channel_mean", mean=[0.5])
    assert result.fractions == [0.0, 0.1, 0.3, 0.5, 0.7, 0.9]
    assert result.accuracy["remove"][0] == 1.0 and result.accuracy["remove"][3] == 0.5  # left half gone: chance
    assert result.accuracy["keep"][3] == 1.0  # keep at t = 0.5 removes the right half, which the model ignores
    assert result.mif[0] == 1.0 and result.mif[5] == pytest.approx(0.0, abs=1e-6)  # all evidence gone at t = 0.5
    assert result.lif[5] == pytest.approx(1.0, abs=1e-6) and result.fidelity > 0
    assert result.predictions["mif"]["unchanged"][0] == 1.0
    assert model.training  # the model's mode is restored
    reverse = roar.no_retrain(model, images, labels, -left_first(images), mean=[0.5], reduce="sum")  # signed
    assert reverse.fidelity < 0 and reverse.accuracy["remove"][3] == 1.0


def test_fills_by_name_or_settings_and_the_images_mean_by_default(data):
    images, labels = data
    maps = left_first(images)
    linear = roar.no_retrain(LeftHalf(), images, labels, maps, fill={"name": "linear", "noise": 0}, modes=["remove"])
    assert set(linear.accuracy) == {"remove"} and len(linear.mif) == 11
    zero = roar.no_retrain(LeftHalf(), images, labels, maps, fill="zero")
    own_mean = roar.no_retrain(LeftHalf(), images, labels, maps)  # channel_mean of these images
    assert zero.mif[5] != pytest.approx(own_mean.mif[5])


def test_ties_are_drawn_per_id_and_seed(data):
    images, labels = data
    flat = torch.ones_like(images)  # every pixel tied: the seeded tie rule orders them
    a = roar.no_retrain(LeftHalf(), images, labels, flat, seed=0)
    assert a.mif == roar.no_retrain(LeftHalf(), images, labels, flat, seed=0).mif
    assert a.mif != roar.no_retrain(LeftHalf(), images, labels, flat, seed=1).mif


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda x, y, m: (x, y, m[:, :, :4]), r"maps: expected \(N, C or 1, H, W\)"),
        (lambda x, y, m: (x, y[:5], m), r"labels: expected \(40,\)"),
        (lambda x, y, m: (x, y, m.masked_fill(m > 0, float("nan"))), "NaN"),
        (lambda x, y, m: (x[0], y, m), r"images: expected \(N, C, H, W\)"),
    ],
)
def test_bad_inputs_are_refused_before_any_work(data, change, message):
    images, labels = data
    with pytest.raises(RoarError, match=message):
        roar.no_retrain(LeftHalf(), *change(images, labels, left_first(images)))


def test_fills_that_need_more_than_pixels_are_refused(data):
    images, labels = data
    with pytest.raises(RoarError, match="token_drop does not paint pixels"):
        roar.no_retrain(LeftHalf(), images, labels, left_first(images), fill="token_drop")
    with pytest.raises(RoarError, match="random_image paints from other images: pass donors="):
        roar.no_retrain(LeftHalf(), images, labels, left_first(images), fill="random_image")
    donors = torch.flip(images, [0])
    out = roar.no_retrain(LeftHalf(), images, labels, left_first(images), fill="random_image", donors=donors)
    assert out.accuracy["remove"][-1] < 1.0  # the donors' left halves carry the other classes
    with pytest.raises(RoarError, match="granularity='patch'"):
        roar.no_retrain(LeftHalf(), images, labels, left_first(images), granularity="patch")


def test_attribute_gives_any_registered_estimators_maps(data):
    images, _ = data
    model = LeftHalf()
    grad = roar.attribute(model, images, "grad")
    assert grad.shape == images.shape and torch.all(grad[..., 4:] == 0) and torch.all(grad[..., :4] != 0)
    noisy = roar.attribute(model, images, "sg-grad", samples=3)
    assert noisy.shape == images.shape and torch.equal(noisy, roar.attribute(model, images, "sg-grad", samples=3))
    ig = roar.attribute(model, images, "captum-IntegratedGradients", fill="zero")
    torch.testing.assert_close(ig, roar.attribute(model, images, "ig", ig_steps=50, ig_method="gausslegendre"))
    with pytest.raises(RoarError, match="Unknown estimator 'gradd'"):
        roar.attribute(model, images, "gradd")
