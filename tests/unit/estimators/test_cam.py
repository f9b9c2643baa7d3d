"""cam-<Class>: pytorch-grad-cam's CAMs as estimators (the extra roar[cam]), against Captum's Grad-CAM."""

import sys

import pytest
import torch

from roar.errors import RoarError
from roar.estimators import EstimatorSuite, available, parse
from roar.models import build_model


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build_model("resnet8", num_classes=5, in_channels=3, image_size=16, width=8).eval()


@pytest.fixture(scope="module")
def batch():
    g = torch.Generator().manual_seed(1)
    return torch.rand(3, 3, 16, 16, generator=g), torch.tensor([0, 3, 1])


def cells_of(maps, cell: int):
    """(B, C, h, cell, w, cell): the map cut into cell x cell blocks."""
    b, c, h, w = maps.shape
    return maps.reshape(b, c, h // cell, cell, w // cell, cell)


@pytest.mark.parametrize("name", ["cam-GradCAM", "cam-GradCAMPlusPlus", "cam-ScoreCAM", "cam-EigenCAM"])
def test_a_cam_is_constant_within_each_feature_map_cell(model, batch, name):
    """resnet8's last block sees 16x16 images as 4x4 cells: every 4x4 block of pixels has its cell's value, the
    same in every channel, and the map is not one value everywhere."""
    x, t = batch
    maps = EstimatorSuite([name])(model, x, t)[name]
    assert maps.shape == x.shape
    blocks = cells_of(maps, 4)
    assert torch.equal(blocks, blocks[:, :, :, :1, :, :1].expand_as(blocks))
    assert torch.equal(maps, maps[:, :1].expand_as(maps))
    assert (maps.flatten(1).amax(1) > maps.flatten(1).amin(1)).all()


def test_grad_cam_equals_captums_layer_grad_cam(model, batch):
    """Grad-CAM (Selvaraju et al.: ReLU of the activations weighted by their mean gradient) from both libraries:
    pytorch-grad-cam's scaled to [0, 1] per image (twice, so its epsilon cancels), Captum's with relu_attributions,
    min-max scaled."""
    x, t = batch
    suite = EstimatorSuite(["cam-GradCAM", "captum-LayerGradCam"], captum={"relu_attributions": True})
    maps = suite(model, x, t, fill=torch.zeros_like(x))
    theirs = maps["captum-LayerGradCam"].flatten(1)
    lo, hi = theirs.amin(1, keepdim=True), theirs.amax(1, keepdim=True)
    torch.testing.assert_close(maps["cam-GradCAM"].flatten(1), (theirs - lo) / (hi - lo), atol=1e-5, rtol=1e-4)


def test_cams_are_options_and_their_identity_ignores_the_fill():
    assert {"cam-GradCAM", "cam-ScoreCAM"} <= set(available())
    assert parse("cam-HiResCAM") == ("iterative", None)
    assert not EstimatorSuite(["cam-GradCAM"]).needs_fill
    with pytest.raises(RoarError, match="no CAM class 'Nope'"):
        parse("cam-Nope")


def test_without_the_extra_the_error_names_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "pytorch_grad_cam", None)  # as if grad-cam were not installed
    with pytest.raises(RoarError, match=r"roar\[cam\]"):
        parse("cam-GradCAM")
