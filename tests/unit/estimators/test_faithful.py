# ruff: noqa: F811  (pytest fixtures imported from test_estimators are arguments here)
"""Faithful to the papers: patch rankings for token drop, signed zeros, the fill as the attribution
reference, FPA's SG', masks that follow crops, the papers' fills, and the ground-truth oracle."""

import pytest
import torch
from captum.attr import InputXGradient, IntegratedGradients
from omegaconf import OmegaConf
from test_estimators import batch, model  # noqa: F401  (the estimator tests' ResNet-8 and batch: shared fixtures)

from roar.augment import BatchAugment
from roar.augment.batch import random_resized_crop
from roar.config import compose_config
from roar.data import build_dataset
from roar.errors import RoarError
from roar.estimators import EstimatorSuite
from roar.evaluate.run import training_fill_mismatch
from roar.masking.fills import FILLS, bind_fill
from roar.masking.patches import patch_keep
from roar.masking.ranking import rank_features
from roar.masking.removal import check_granularity, feature_ranks, mask_images, ranking_scores, top_count
from roar.store.names import parse_ranking, ranking_name

MEAN = [0.2, 0.4, 0.6]


# --- patch granularity (missingness paper, section 3 and appendix A.3) ---


@pytest.mark.parametrize("t", [0.1, 0.3, 0.5, 0.9])
@pytest.mark.parametrize("mode", ["remove", "keep"])
def test_patch_rankings_remove_round_t_p_whole_patches(t, mode):
    images, ids = torch.rand(6, 3, 32, 32), [f"s{i}" for i in range(6)]
    maps = torch.rand(6, 3, 32, 32)  # the random control's maps
    ranks = feature_ranks(ranking_scores(maps, "abs_sum", 4), ids, maps_seed=0)
    assert ranks.shape == (6, 64)
    _, removed = mask_images(
        images, ranks, mode, t, bind_fill(OmegaConf.create({"name": "channel_mean"}), 3, MEAN), patch=4
    )
    patches = removed[:, 0].unfold(1, 4, 4).unfold(2, 4, 4)  # (B, 8, 8, 4, 4)
    whole = patches.all(-1).all(-1)
    assert torch.equal(whole, patches.any(-1).any(-1))  # every patch is all removed or all kept
    assert whole.flatten(1).sum(1).tolist() == [top_count(t, 64)] * 6
    keep = patch_keep(removed, 4)  # what a ViT keeps: the random ranking drops a t share of its tokens
    assert (~keep).flatten(1).sum(1).tolist() == [top_count(t, 64)] * 6


def test_pixel_rankings_with_token_drop_are_refused_with_the_way_out():
    """The bug: pixel rankings drop any touched patch (82% of the tokens at t = 0.1). Refused now."""
    ranks = feature_ranks(torch.rand(4, 32 * 32), list("abcd"), maps_seed=0)
    _, removed = mask_images(
        torch.rand(4, 3, 32, 32), ranks, "remove", 0.1, bind_fill(OmegaConf.create({"name": "zero"}), 3)
    )
    assert (~patch_keep(removed, 4)).float().mean() > 0.5  # what pixel rankings did to the tokens
    drop = FILLS["token_drop"]
    with pytest.raises(RoarError, match="pass granularity=patch"):
        check_granularity(drop, None, 4)
    check_granularity(drop, 3, 4)  # patches off the token grid (appendix C.5): each overlapped token is dropped
    removed = torch.zeros(1, 1, 12, 12, dtype=torch.bool)
    removed[..., 3:6, 3:6] = True  # the 3x3 patch at (1, 1) straddles four 4x4 tokens
    assert (~patch_keep(removed, 4)).nonzero()[:, 1:].tolist() == [[0, 0], [0, 1], [1, 0], [1, 1]]
    with pytest.raises(RoarError, match="the model has no tokens"):
        check_granularity(drop, 4, None)
    check_granularity(drop, 4, 4)
    check_granularity(FILLS["channel_mean"], None, None)


def test_patch_score_is_the_mean_of_the_reduced_map():
    maps = torch.zeros(1, 2, 4, 4)
    maps[0, 0, 0, 0], maps[0, 1, 3, 3] = 8.0, -4.0  # patch 0 and patch 3 of 2x2 patches
    assert ranking_scores(maps, "abs_sum", 2).tolist() == [[2.0, 0.0, 0.0, 1.0]]
    assert ranking_scores(maps, "sum", 2).tolist() == [[2.0, 0.0, 0.0, -1.0]]
    with pytest.raises(RoarError, match="reduce=none keeps channels apart"):
        ranking_scores(maps, "none", 2)
    with pytest.raises(RoarError, match="does not tile 4x4"):
        ranking_scores(maps, "abs_sum", 3)


def test_ranking_names_carry_the_patch():
    assert ranking_name("grad", "abs_sum", 4) == "grad.patch4" and ranking_name("ig", "sum", 2) == "ig.sum.patch2"
    assert parse_ranking("ig.sum.patch2") == ("ig", "sum", 2) and parse_ranking("grad") == ("grad", "abs_sum", None)


def test_granularity_patch_takes_the_models_patch_size():
    from roar.store.resolve import ranking_patch

    vit = compose_config("mask", ["model=vit_tiny", "granularity=patch"])
    assert ranking_patch(vit) == 4
    assert ranking_patch(compose_config("mask", ["model=vit_tiny", "granularity=patch", "patch_size=8"])) == 8
    assert ranking_patch(compose_config("mask", ["model=vit_tiny"])) is None
    with pytest.raises(RoarError, match="model=resnet8 has none of its own; pass patch_size"):
        ranking_patch(compose_config("mask", ["granularity=patch"]))


# --- signed zeros ---


def test_signed_zeros_tie_at_random_not_by_sign():
    scores = torch.tensor([[1.0, -0.0, 0.0, -0.0, 0.0, -0.0, 0.0, -0.0, 0.0, 2.0]])
    for seed in range(5):
        assert torch.equal(rank_features(scores, ["z"], seed), rank_features(scores.abs(), ["z"], seed))
    firsts = {rank_features(scores, ["z"], s)[0, 2].item() for s in range(20)}
    assert any(scores[0, k].item() == 0 and str(scores[0, k].item()) == "-0.0" for k in firsts)


# --- the attribution reference ---


def test_fill_reference_equals_captum_with_that_baseline(model, batch):
    x, t = batch
    ref = torch.tensor(MEAN, dtype=x.dtype).view(1, 3, 1, 1).expand_as(x).contiguous()
    maps = EstimatorSuite(["grad_x_input", "ig"], baseline="fill")(model, x, t, reference=ref)

    def shifted(z):  # the model seen from the reference: InputXGradient of it at x - x0 is (x - x0) * g
        return model(z + ref)

    theirs = InputXGradient(shifted).attribute(x - ref, target=t)
    torch.testing.assert_close(maps["grad_x_input"], theirs, rtol=1e-5, atol=1e-12)
    ig = IntegratedGradients(model).attribute(x, baselines=ref, target=t, n_steps=25, method="gausslegendre")
    torch.testing.assert_close(maps["ig"], ig, rtol=1e-5, atol=1e-12)
    assert not torch.allclose(maps["ig"], EstimatorSuite(["ig"])(model, x, t)["ig"])  # black differs


def test_ig_is_complete_against_the_fill_image(model, batch):
    x, t = batch
    ref = torch.tensor(MEAN, dtype=x.dtype).view(1, 3, 1, 1).expand_as(x).contiguous()
    maps = EstimatorSuite(["ig"], baseline="fill", ig_steps=64)(model, x, t, reference=ref)["ig"]
    with torch.no_grad():
        gap = model(x).gather(1, t[:, None])[:, 0] - model(ref).gather(1, t[:, None])[:, 0]
    torch.testing.assert_close(maps.sum((1, 2, 3)), gap, rtol=0.02, atol=1e-3)


def test_baseline_is_checked():
    with pytest.raises(RoarError, match="baseline='grey'"):
        EstimatorSuite(["ig"], baseline="grey")


# --- FPA's SG' ---


def test_sg_prime_is_the_smoothgrad_map_times_the_input(model, batch):
    x, t = batch
    ids = list("abcd")
    maps = EstimatorSuite(["sg_x_input-grad", "sg-grad", "sg-grad_x_input"], samples=4)(model, x, t, ids)
    assert torch.equal(maps["sg_x_input-grad"], x * maps["sg-grad"])
    assert not torch.allclose(maps["sg_x_input-grad"], maps["sg-grad_x_input"])  # the two forms differ
    assert EstimatorSuite(["sg_x_input-grad", "sg-grad"], samples=4).passes_per_image == 4  # free from SG's passes
    ref = torch.full_like(x, 0.5)
    fill = EstimatorSuite(["sg_x_input-grad", "sg-grad"], samples=4, baseline="fill")(model, x, t, ids, ref)
    assert torch.equal(fill["sg_x_input-grad"], (x - 0.5) * fill["sg-grad"])


# --- masks follow crops and flips ---


@pytest.mark.parametrize(
    "geometry",
    [
        {"crop_padding": 4, "flip": True},
        {"resized_crop": {"scale": [0.08, 1.0], "ratio": [0.75, 1.333]}, "flip": True},
    ],
)
def test_no_kept_token_covers_a_removed_pixel_after_any_crop_or_flip(geometry):
    """The image's pixels are their own removed indicator, so a transformed image shows where removed
    pixels went; a token the model keeps must show none."""
    aug = BatchAugment(OmegaConf.create({"name": "standard", **geometry}), MEAN, token_patch=4, seed=3)
    g = torch.Generator().manual_seed(0)
    removed = torch.rand(64, 1, 32, 32, generator=g) < 0.02
    x = removed.float().expand(64, 3, 32, 32).contiguous()
    out, keep = aug(x, train=True, removed=removed)
    assert not torch.equal(out, x)  # the batch was cropped or flipped
    touched = torch.nn.functional.max_pool2d((out[:, :1] > 0).float(), 4)[:, 0] > 0
    assert keep.any() and not (keep & touched).any()
    assert not (aug(x, train=False, removed=removed)[1] ^ patch_keep(removed, 4)).any()  # no geometry at test


def test_resized_crop_of_the_whole_image_is_the_image():
    x = torch.rand(3, 2, 16, 16)
    out = random_resized_crop(x, [1.0, 1.0], [1.0, 1.0], torch.Generator().manual_seed(0))
    torch.testing.assert_close(out, x, rtol=0, atol=1e-5)
    a = random_resized_crop(x, [0.1, 1.0], [0.75, 1.33], torch.Generator().manual_seed(1))
    b = random_resized_crop(x, [0.1, 1.0], [0.75, 1.33], torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and not torch.allclose(a, x)


# --- the papers' fills in the configs ---


def test_input_dropout_fills_with_the_channel_mean_and_crops_and_flips():
    cfg = compose_config("train", ["augment=input_dropout"]).augment
    assert cfg.fill == "channel_mean" and cfg.crop_padding == 4 and cfg.flip is True


@pytest.mark.parametrize("experiment", ["roar_imagenet", "roar_food101"])
def test_roar_imagenet_recipes_retrain_with_resized_crops_and_flips(experiment):
    cfg = compose_config("train", [f"experiment={experiment}"]).augment
    assert cfg.name == "resized_crop" and cfg.flip is True and list(cfg.resized_crop.scale) == [0.08, 1.0]


def test_fpa_fills_per_dataset_and_a_mismatch_is_named():
    cifar = compose_config("eval", ["experiment=fpa_cifar10"])
    assert (
        cifar.fill.name == "constant" and list(cifar.fill.value) == [0.5] * 3 and list(cifar.augment.fill) == [0.5] * 3
    )
    assert training_fill_mismatch(cifar, bind_fill(cifar.fill, 3, MEAN), token_model=False) is None
    food = compose_config("eval", ["experiment=fpa_food101"])
    assert food.fill.name == "channel_mean" and food.augment.fill == "channel_mean"
    assert training_fill_mismatch(food, bind_fill(food.fill, 3, MEAN), token_model=False) is None
    zero = compose_config("eval", ["experiment=fpa_food101", "fill=zero"])
    line = training_fill_mismatch(zero, bind_fill(zero.fill, 3, MEAN), token_model=False)
    assert "trained with augment=fpa filling with channel_mean" in line and "fill=zero" in line
    plain = compose_config("eval", ["fill=zero"])
    assert training_fill_mismatch(plain, bind_fill(plain.fill, 3, MEAN), False) is None


# --- the oracle controls ---


def test_oracle_ranks_the_object_first_and_shortcut_the_marker():
    shapes = build_dataset(
        OmegaConf.create({"name": "shapes", "n_train": 4, "n_test": 8, "shortcut_prob": 1.0}), "test"
    )
    samples = [shapes[i] for i in range(8)]
    x = torch.stack([s["image"] for s in samples])
    ids = shapes.ids[:8]
    for name, key in (("oracle", "object_mask"), ("shortcut", "shortcut_mask")):
        suite = EstimatorSuite([name])
        assert suite.needs == [key]
        truth = torch.stack([s[key] for s in samples])
        maps = suite(None, x, None, ids, extras={key: truth})[name]
        ranks = feature_ranks(ranking_scores(maps, "abs_sum"), ids, maps_seed=0)
        for k in range(8):
            n = int(truth[k].sum())
            t = n / truth[k].numel()
            _, removed = mask_images(
                x[k : k + 1], ranks[k : k + 1], "remove", t, bind_fill(OmegaConf.create({"name": "zero"}), 3)
            )
            assert n > 0 and torch.equal(removed[0, 0], truth[k])  # exactly the ground truth goes first
    with pytest.raises(RoarError, match="oracle control needs ground-truth masks"):
        EstimatorSuite(["oracle"])(None, x, None, ids)


def test_oracle_on_data_without_ground_truth_is_refused_before_any_work(tmp_path):
    from roar.attribution.run import attribute

    cfg = compose_config("attribute", [f"paths.output_root={tmp_path}", "attribute.estimators=[grad,oracle]"])
    with pytest.raises(RoarError, match="needs ground truth \\(object_mask\\); data=digits has none"):
        attribute(cfg)
    assert not (tmp_path / "default").exists()
