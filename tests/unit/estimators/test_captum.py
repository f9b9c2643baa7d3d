"""captum-<Class>: any Captum attribution class as an estimator, checked against roar's own and Captum's."""

import pytest
import torch

from roar.errors import RoarError
from roar.estimators import EstimatorSuite, available, parse
from roar.estimators.registry import params_for
from roar.models import build_model


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build_model("resnet8", num_classes=5, in_channels=3, image_size=8, width=8).double().eval()


@pytest.fixture(scope="module")
def batch():
    g = torch.Generator().manual_seed(1)
    return torch.rand(3, 3, 8, 8, generator=g, dtype=torch.float64), torch.tensor([0, 3, 1])


@pytest.mark.parametrize("baseline", ["black", "fill"])
def test_captum_integrated_gradients_equals_roars_ig(model, batch, baseline):
    """The same steps and quadrature from the same reference: black (raw 0), or the painted fill, which roar's
    ig uses with baseline=fill and Captum gets as ``baselines``."""
    x, t = batch
    fill = torch.zeros_like(x) if baseline == "black" else torch.full_like(x, 0.4)
    suite = EstimatorSuite(
        ["captum-IntegratedGradients", "ig"],
        baseline=baseline,
        ig_steps=7,
        captum={"n_steps": 7, "method": "riemann_trapezoid"},
        ig_method="riemann_trapezoid",
    )
    maps = suite(model, x, t, reference=fill if baseline == "fill" else None, fill=fill)
    torch.testing.assert_close(maps["captum-IntegratedGradients"], maps["ig"])
    assert maps["ig"].abs().max() > 0


def test_grad_cam_is_constant_within_each_feature_map_cell(model, batch):
    """resnet8's last block sees 8x8 images as 2x2 cells: the map is one value per 4x4 block of pixels, the same
    in every channel, and not one value everywhere."""
    x, t = batch
    maps = EstimatorSuite(["captum-LayerGradCam"])(model, x, t, fill=torch.zeros_like(x))["captum-LayerGradCam"]
    assert maps.shape == x.shape
    cells = maps.unflatten(2, (2, 4)).unflatten(4, (2, 4))  # (B, C, 2, 4, 2, 4)
    assert torch.equal(cells, cells[:, :, :, :1, :, :1].expand_as(cells))
    assert torch.equal(maps, maps[:, :1].expand_as(maps))
    assert len(torch.unique(maps[0])) > 1


def test_occlusion_uses_the_fill_as_its_baseline_and_a_default_window(model, batch):
    x, t = batch
    suite = EstimatorSuite(["captum-Occlusion"])
    a = suite(model, x, t, fill=torch.zeros_like(x))["captum-Occlusion"]
    b = suite(model, x, t, fill=torch.ones_like(x))["captum-Occlusion"]
    assert a.shape == x.shape and not torch.allclose(a, b)
    assert suite.passes_for(64) == 64  # one pass per window position (stride 1), the planner's bill


def test_names_kwargs_and_identity():
    assert "captum-IntegratedGradients" in available() and parse("captum-KernelShap") == ("iterative", None)
    with pytest.raises(RoarError, match="captum.attr has no attribution class 'Integrated'.*captum-Saliency"):
        parse("captum-Integrated")
    with pytest.raises(RoarError, match=r"attribute.params.captum has \['n_stepz'\]"):
        EstimatorSuite(["captum-Saliency"], captum={"n_stepz": 3})(
            build_model("resnet8", 2, 1, 8), torch.rand(1, 1, 8, 8), torch.tensor([0]), fill=torch.zeros(1, 1, 8, 8)
        )
    params = {"ig_steps": 25, "captum": {"n_steps": 9}, "lime_samples": 10}
    assert params_for("captum-IntegratedGradients", params) == {"ig_steps": 25, "captum": {"n_steps": 9}}
    assert "captum" not in params_for("ig", params)  # a Captum setting never invalidates roar's own maps
    assert EstimatorSuite(["captum-IntegratedGradients"], captum={"n_steps": 9}).passes_for(64) == 9
