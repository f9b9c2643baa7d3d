"""LIME over patches, batched (missingness paper section 4), and the random-colour fills (appendix C.4)."""

import numpy as np
import pytest
import torch
import torch.nn as nn
from omegaconf import OmegaConf

from roar.errors import RoarError
from roar.estimators import EstimatorSuite
from roar.estimators.lime import lime, lime_design, lime_solve
from roar.masking.fills import bind_fill

IDS = [f"img-{i}" for i in range(8)]


def test_the_batched_solve_equals_a_weighted_ridge_per_image():
    """One solve for every column = scikit-learn's Ridge(alpha=1) with sample weights and an
    unpenalized intercept, fitted per image (the reference code's fit_lime_model)."""
    from sklearn.linear_model import Ridge

    z, pi = lime_design({"lime_samples": 300, "seed": 3}, 16)
    y = torch.from_numpy(np.random.default_rng(0).random((300, 5)))
    coef, intercept = lime_solve(z, pi, y)
    for j in range(5):
        ref = Ridge(alpha=1.0, fit_intercept=True).fit(z.numpy(), y[:, j].numpy(), sample_weight=pi.numpy())
        np.testing.assert_allclose(coef[:, j].numpy(), ref.coef_, atol=1e-6)
        assert intercept[j].item() == pytest.approx(ref.intercept_, abs=1e-6)


def test_design_weights_follow_the_cosine_kernel():
    z, pi = lime_design({"lime_samples": 50, "seed": 0}, 9)
    on = z.sum(1)
    d = 1 - on / (on.sqrt() * 3)
    assert set(z.unique().tolist()) <= {0.0, 1.0} and torch.allclose(
        pi[on > 0], torch.exp(-(d[on > 0] ** 2) / 0.0625).sqrt()
    )
    assert torch.equal(lime_design({"lime_samples": 50, "seed": 0}, 9)[0], z)  # the same perturbations every batch
    with pytest.raises(RoarError, match="lime_samples=1"):
        lime_design({"lime_samples": 1}, 9)


class OnePatch(nn.Module):
    """Class 0's logit reads the mean of the top-left 2x2 patch only."""

    def forward(self, x):
        s = 8 * x[:, :, :2, :2].mean((1, 2, 3))
        return torch.stack([s, torch.zeros_like(s)], 1)


def test_lime_finds_the_one_patch_the_model_reads_and_does_not_depend_on_the_batch():
    x = torch.rand(8, 1, 8, 8) * 0.5 + 0.5
    fill = torch.zeros_like(x)
    params = {"lime_samples": 400, "lime_patch": 2, "seed": 0}
    maps, trace = lime(OnePatch(), x, fill, IDS, params)
    assert trace is None and maps.shape == x.shape
    scores = maps[:, 0, ::2, ::2].flatten(1)  # one value per patch
    assert torch.all(scores.argmax(1) == 0) and torch.all(scores[:, 1:].abs() < 0.01 * scores[:, :1])  # ridge: ~0
    alone, _ = lime(OnePatch(), x[3:4], fill[3:4], IDS[3:4], params)
    assert torch.allclose(alone[0], maps[3], atol=1e-6)


def test_lime_drops_tokens_with_a_vit_and_refuses_otherwise():
    from conftest import untrained_classifier

    vit = untrained_classifier("vit_tiny", {"dim": 32, "depth": 2, "heads": 2, "patch_size": 4}, [3, 16, 16])
    x = torch.rand(2, 3, 16, 16)
    maps, _ = lime(vit, x, None, IDS[:2], {"lime_samples": 64, "seed": 0})
    assert maps.shape == x.shape and torch.isfinite(maps).all()
    # token drop: what a removed patch held does not matter, so the baseline colour cannot change the map
    suite = EstimatorSuite(["lime"], lime_samples=64)
    again = suite(vit, x, torch.zeros(2, dtype=torch.long), IDS[:2], fill=None)["lime"]
    assert torch.equal(again, maps)
    with pytest.raises(RoarError, match="set lime_patch"):
        lime(vit, x, None, IDS[:2], {"lime_samples": 8, "lime_patch": 8})
    with pytest.raises(RoarError, match="needs a ViT"):
        lime(OnePatch(), torch.rand(1, 1, 8, 8), None, IDS[:1], {"lime_samples": 8, "lime_patch": 2})
    with pytest.raises(RoarError, match="gbs masks with the configured fill"):
        EstimatorSuite(["gbs"])(vit, x, torch.zeros(2, dtype=torch.long), IDS[:2], fill=None)


@pytest.mark.parametrize("name", ["random_colour_image", "random_colour_pixel"])
def test_random_colour_fills_are_seeded_per_sample_and_batch_independent(name):
    x = torch.rand(4, 3, 8, 8)
    removed = torch.zeros(4, 1, 8, 8, dtype=torch.bool)
    removed[:, :, 2:6, 2:6] = True
    cfg = OmegaConf.create({"name": name})
    batch = bind_fill(cfg, 3, maps_seed=1).apply(x, removed, IDS[:4])
    alone = bind_fill(cfg, 3, maps_seed=1).apply(x[2:3], removed[2:3], IDS[2:3])
    assert torch.equal(batch[2], alone[0]) and torch.equal(batch[~removed.expand_as(x)], x[~removed.expand_as(x)])
    painted = batch[:, :, 2:6, 2:6]
    assert not torch.equal(painted[0], painted[1])  # another sample, another colour
    assert not torch.equal(bind_fill(cfg, 3, maps_seed=2).apply(x, removed, IDS[:4]), batch)  # another seed
    per_image = painted.flatten(2).std(2).amax()
    assert (per_image == 0) if name == "random_colour_image" else (per_image > 0.1)
    with pytest.raises(RoarError, match="draws per sample id"):
        bind_fill(cfg, 3).apply(x, removed)


@pytest.mark.slow
def test_lime_maps_through_roar_attribute_rank_patches_in_roar_eval(tiny_base, tmp_path):
    """lime on the digits test split (2x2 patches, 16 segments): patch-constant maps in the maps format,
    the fill in their identity, and roar-eval ranks them signed at patch granularity."""
    from conftest import QUIET, TINY_BASE
    from roar.attribution.run import attribute
    from roar.config import compose_config
    from roar.evaluate.run import evaluate
    from roar.store.maps import iter_maps

    root = tiny_base(tmp_path)
    common = [f"paths.output_root={root}", *QUIET, *TINY_BASE, "grid.estimators=[lime]"]
    attribute(compose_config("attribute", [*common, "attribute.splits=[test]", "attribute.params.lime_samples=100"]))
    folder = next((root / "default" / "attributions").glob("*/lime"))
    maps = [m for _, m, _ in iter_maps(folder, "test")]
    assert len(maps) == 450 and all(np.array_equal(m[:, ::2, ::2].repeat(2, 1).repeat(2, 2), m) for m in maps[:20])
    import json

    assert json.loads((folder / "manifest.json").read_text())["fill"]["name"] == "channel_mean"
    result = evaluate(
        compose_config(
            "eval", [*common, "eval.rankings=[lime.sum]", "granularity=patch", "patch_size=2", "eval.max_images=64"]
        )
    )["lime.sum.patch2"]
    assert result["patch"] == 2 and result["fidelity"]["mean"] > 0  # removing LIME's top patches first hurts more
