"""Estimators equal the reference implementation (Captum), ensembles obey their definitions,
controls behave, and maps never depend on batching."""

import pytest
import torch
from captum.attr import GuidedBackprop, InputXGradient, IntegratedGradients, NoiseTunnel, Saliency

from roar.errors import RoarError
from roar.estimators import EstimatorSuite, available, get_estimator, parse, reduce_maps
from roar.masking import rank_features
from roar.models import build_model


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    net = build_model("resnet8", num_classes=5, in_channels=3, image_size=12, width=8).double().eval()
    for m in net.modules():  # random BN statistics, so the network is not near-identity at init
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 1.5)
    return net


@pytest.fixture(scope="module")
def batch():
    g = torch.Generator().manual_seed(1)
    return torch.rand(4, 3, 12, 12, generator=g, dtype=torch.float64), torch.tensor([0, 3, 1, 4])


CAPTUM = {
    "grad": lambda m, x, t: Saliency(m).attribute(x, target=t, abs=False),
    "grad_x_input": lambda m, x, t: InputXGradient(m).attribute(x, target=t),
    "ig": lambda m, x, t: IntegratedGradients(m).attribute(
        x, baselines=0.0, target=t, n_steps=25, method="gausslegendre"
    ),
    "gb": lambda m, x, t: GuidedBackprop(m).attribute(x, target=t),
}


@pytest.mark.parametrize("name", sorted(CAPTUM))
def test_base_estimators_equal_captum(model, batch, name):
    x, t = batch
    ours = get_estimator(name)(model, x, t)
    theirs = CAPTUM[name](model, x, t)
    assert ours.shape == x.shape and ours.abs().sum() > 0
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-12)


def test_guided_backprop_differs_from_grad_and_leaves_model_unchanged(model, batch):
    x, t = batch
    gb, g = get_estimator("gb")(model, x, t), get_estimator("grad")(model, x, t)
    assert not torch.allclose(gb, g)
    torch.testing.assert_close(get_estimator("grad")(model, x, t), g)  # ReLUs restored


def test_ig_is_complete(model, batch):
    """IG's completeness axiom: maps sum to logit(x) - logit(baseline) (up to the quadrature)."""
    x, t = batch
    maps = get_estimator("ig", ig_steps=64)(model, x, t)
    with torch.no_grad():
        gap = model(x).gather(1, t[:, None])[:, 0] - model(torch.zeros_like(x)).gather(1, t[:, None])[:, 0]
    torch.testing.assert_close(maps.sum((1, 2, 3)), gap, rtol=0.02, atol=1e-3)


def test_smoothgrad_with_zero_noise_equals_grad(model, batch):
    x, t = batch
    torch.testing.assert_close(get_estimator("sg-grad", noise=0.0)(model, x, t), get_estimator("grad")(model, x, t))


def test_ensembles_are_mean_square_and_variance_of_the_same_noisy_estimates(model, batch):
    x, t = batch
    ids = ["a", "b", "c", "d"]
    maps = EstimatorSuite(["sg-grad", "sg_sq-grad", "vargrad-grad"], samples=6)(model, x, t, ids)
    from roar.estimators.suite import DEFAULT_PARAMS, noisy_inputs

    noisy = noisy_inputs(x, ids, {**DEFAULT_PARAMS, "samples": 6})
    est = get_estimator("grad")(model, noisy, t.repeat_interleave(6)).view(4, 6, 3, 12, 12)
    torch.testing.assert_close(maps["sg-grad"], est.mean(1))
    torch.testing.assert_close(maps["vargrad-grad"], est.var(1, unbiased=False))  # the 1/J convention
    torch.testing.assert_close(maps["sg_sq-grad"] - maps["sg-grad"] ** 2, maps["vargrad-grad"], atol=1e-10, rtol=1e-6)
    spread = (noisy.view(4, 6, -1) - x.view(4, 1, -1)).std(dim=(1, 2)) / (x.flatten(1).amax(1) - x.flatten(1).amin(1))
    assert torch.allclose(spread, torch.full((4,), 0.15, dtype=spread.dtype), rtol=0.1)


def test_smoothgrad_matches_captum_noise_tunnel_in_expectation(model, batch):
    x, t = batch
    ours = get_estimator("sg-grad", samples=400, noise=0.05)(model, x[:1], t[:1])
    spread = float(x[:1].max() - x[:1].min()) * 0.05
    torch.manual_seed(0)
    theirs = NoiseTunnel(Saliency(model)).attribute(
        x[:1], target=t[:1], nt_type="smoothgrad", nt_samples=400, stdevs=spread, abs=False
    )
    assert torch.nn.functional.cosine_similarity(ours.flatten(), theirs.flatten(), dim=0) > 0.97


def test_squared_base_comes_with_the_base(model, batch):
    x, t = batch
    suite = EstimatorSuite(["grad", "grad_sq"])
    maps = suite(model, x, t)
    torch.testing.assert_close(maps["grad_sq"], maps["grad"] ** 2)
    assert suite.passes_per_image == 1


def test_full_roar_suite_shares_passes():
    """3 bases, their 3 ensembles each, the squared bases, the controls: 432 passes per image
    (1 + 25 + 1 for the bases, 15 x 27 for the ensembles) instead of 1242 one estimator at a time."""
    names = [
        n for n in available() if "x_input" not in n and n not in ("oracle", "shortcut") and parse(n)[0] != "iterative"
    ]  # ROAR's 16, sobel
    assert len(names) == 17
    assert EstimatorSuite(names).passes_per_image == 432
    assert sum(EstimatorSuite([n]).passes_per_image for n in names if not n.endswith("_sq")) == 1242


def test_maps_do_not_depend_on_batch_size(model, batch):
    x, t = batch
    ids = ["s0", "s1", "s2", "s3"]
    suite = EstimatorSuite(["sg_sq-ig", "random", "grad"], samples=3, ig_steps=4)
    whole = suite(model, x, t, ids)
    parts = [suite(model, x[i : i + 1], t[i : i + 1], ids[i : i + 1]) for i in range(4)]
    for name in whole:
        torch.testing.assert_close(whole[name], torch.cat([p[name] for p in parts]))
    assert not torch.equal(suite(model, x, t, ["z0", "z1", "z2", "z3"])["random"], whole["random"])


SMALL = {"samples": 2, "ig_steps": 4, "lime_samples": 24, "lime_patch": 4, "mask_steps": 3, "mask_distractors": 2}
SMALL["captum"] = {"n_steps": 4, "n_samples": 2}  # captum-IntegratedGradients, captum-GradientShap


@pytest.mark.parametrize("name", [n for n in available() if n not in ("oracle", "shortcut")])
def test_every_registered_estimator_gives_finite_maps_of_the_image_independent_of_the_batch(model, batch, name):
    """Every estimator of the registries (a new one included): maps of the image's shape, finite, and the same
    for an image alone as in its batch (noise and tie-breaks drawn per sample id). The controls that read
    ground truth (oracle, shortcut) have their own tests."""
    x, t = batch
    ids = ["s0", "s1", "s2", "s3"]
    suite = EstimatorSuite([name], **SMALL)
    fill = torch.full_like(x, 0.5) if suite.needs_fill else None
    pool = torch.rand(4, *x.shape[1:], generator=torch.Generator().manual_seed(2), dtype=x.dtype)
    pool = pool if suite.needs_pool else None
    maps = suite(model, x, t, ids, fill=fill, pool=pool)[name]
    assert maps.shape[0] == 4 and maps.shape[-2:] == x.shape[-2:] and torch.isfinite(maps).all()
    alone = suite(model, x[2:3], t[2:3], ids[2:3], fill=None if fill is None else fill[2:3], pool=pool)[name]
    torch.testing.assert_close(alone[0], maps[2])


def test_random_control_is_uniform_and_reproducible():
    x = torch.zeros(64, 3, 16, 16)
    ids = [f"id{i}" for i in range(64)]
    a, b = get_estimator("random")(None, x, None, ids), get_estimator("random")(None, x, None, ids)
    assert torch.equal(a, b) and not torch.equal(a, get_estimator("random", seed=1)(None, x, None, ids))
    hist = torch.histc(a, bins=10, min=0, max=1) / a.numel()
    assert torch.allclose(hist, torch.full((10,), 0.1), atol=0.01)


def test_sobel_ranks_a_step_edge_first():
    x = torch.zeros(1, 1, 10, 10)
    x[..., 5:] = 1.0  # vertical step between columns 4 and 5
    scores = reduce_maps(get_estimator("sobel")(None, x, None, ["e"]), "abs_sum").flatten(1)
    top = rank_features(scores, ["e"])[0, :20]
    assert set((top % 10).tolist()) == {4, 5}


def test_ranking_breaks_ties_by_seeded_permutation():
    scores = torch.tensor([[0.0, 5.0, 0.0, 0.0, 3.0, 0.0]])
    order = rank_features(scores, ["x"], maps_seed=0)
    assert order[0, :2].tolist() == [1, 4] and sorted(order[0, 2:].tolist()) == [0, 2, 3, 5]
    assert torch.equal(order, rank_features(scores, ["x"], maps_seed=0))
    others = {tuple(rank_features(scores, ["x"], maps_seed=s)[0, 2:].tolist()) for s in range(10)}
    assert len(others) > 1  # ties are not resolved by position


def test_reductions():
    maps = torch.tensor([[[[1.0]], [[-2.0]], [[0.5]]]])
    assert reduce_maps(maps, "abs_sum").item() == 3.5 and reduce_maps(maps, "sum").item() == -0.5
    assert reduce_maps(maps, "none").shape == (1, 3, 1, 1)
    with pytest.raises(RoarError, match="reduce='max'"):
        reduce_maps(maps, "max")


def test_unknown_estimator_lists_them():
    with pytest.raises(
        RoarError,
        match="Unknown estimator .shap.. Valid estimator names: bs, cam-EigenCAM, .*, captum-Deconvolution, .*, gb, "
        "gb_sq, gbs, grad",
    ):
        get_estimator("shap")


def test_model_without_gradient_path_is_reported():
    class Detached(torch.nn.Module):
        def forward(self, x):
            return torch.zeros(len(x), 3) + x.detach().mean()

    with pytest.raises(RoarError, match="no gradient path to its input"):
        get_estimator("grad")(Detached(), torch.rand(2, 1, 4, 4), torch.tensor([0, 1]))
