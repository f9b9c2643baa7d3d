"""Batch augmentations do what their papers say, on whole batches."""

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from roar.augment import BatchAugment, fpa, fpa_loop, fpa_removed, grow_squares
from roar.augment.perturbations import generators
from roar.errors import RoarError

MEAN = [0.25, 0.5, 0.75]


def augment(name, **params):
    cfg = OmegaConf.create({"name": name, "fill": "channel_mean", "params": params})
    return BatchAugment(cfg, MEAN)


def removed_fraction(aug, x, train=True):
    out, keep = aug(x, train=train)
    return (out != x).any(dim=1).float().mean().item()


def test_fpa_pixel_rate_matches_algorithm_without_squares():
    """p2 = 0: a selected batch loses a fraction p1 ~ U(0, p1_max) of its pixels, so on average
    over batches p * p1_max / 2 (FPA Algorithm 1)."""
    torch.manual_seed(0)
    x = torch.rand(32, 3, 16, 16) + 2  # no pixel equals the fill
    aug = augment("fpa", p=0.5, p1_max=0.3, p2=0.0, s_max=3)
    rates = [removed_fraction(aug, x) for _ in range(800)]
    assert np.mean(rates) == pytest.approx(0.5 * 0.3 / 2, rel=0.06)
    assert np.mean([r == 0 for r in rates]) == pytest.approx(0.5, abs=0.06)  # half the batches untouched


@pytest.mark.parametrize("p1, p2, s_max", [(0.1, 0.5, 3), (0.05, 1.0, 5), (0.2, 0.1, 10)])
def test_fpa_vectorized_matches_literal_loop(p1, p2, s_max):
    """The batched implementation removes the same expected fraction as Algorithm 1's pixel loop."""
    rng = np.random.default_rng(0)
    loop = np.mean([fpa_loop((24, 24), p1, p2, s_max, rng).mean() for _ in range(150)])
    g = torch.Generator().manual_seed(0)
    vec = [fpa_removed((150, 1, 24, 24), p1, p2, s_max, g).float().mean().item() for _ in range(8)]
    assert np.mean(vec) == pytest.approx(loop, rel=0.05)


def test_fpa_squares_extend_right_and_down():
    seeds = torch.zeros(1, 1, 8, 8, dtype=torch.bool)
    seeds[0, 0, 2, 3] = True
    sides = torch.full((1, 1, 8, 8), 3)
    covered = grow_squares(seeds, sides, 3)[0, 0]
    expected = torch.zeros(8, 8, dtype=torch.bool)
    expected[2:5, 3:6] = True
    assert torch.equal(covered, expected)
    seeds[0, 0, 2, 3], seeds[0, 0, 7, 7] = False, True  # clipped at the border
    assert grow_squares(seeds, sides, 3)[0, 0].sum() == 1


def test_fpa_paints_the_channel_mean():
    torch.manual_seed(3)
    aug = augment("fpa", p=1.0, p1_max=0.5, p2=0.0, s_max=2)
    x = torch.rand(4, 3, 8, 8) + 2
    out, keep = aug(x)
    changed = (out != x).all(dim=1)
    assert keep is None and changed.any()
    assert torch.equal(out.permute(0, 2, 3, 1)[changed], torch.tensor(MEAN).expand(int(changed.sum()), 3))


def test_fpa_function_returns_none_for_unselected_batches():
    rng = generators(0, "cpu")
    results = [fpa(torch.zeros(2, 3, 8, 8), rng, p=0.0, p1_max=0.5, p2=0.1, s_max=2) for _ in range(10)]
    assert all(r is None for r in results)


def test_rectangle_erases_one_rectangle_within_scale():
    torch.manual_seed(0)
    aug = augment("rectangle", p=1.0, scale=[0.1, 0.2], ratio=[0.5, 2.0])
    x = torch.rand(64, 3, 20, 20) + 2
    out, _ = aug(x)
    removed = (out != x).any(dim=1)
    fractions = removed.float().mean(dim=(1, 2))
    assert (fractions > 0.05).all() and (fractions < 0.3).all()
    rows, cols = removed.any(dim=2), removed.any(dim=1)
    assert torch.equal(removed.sum(dim=(1, 2)), rows.sum(1) * cols.sum(1))  # a full rectangle


def test_input_dropout_acts_at_train_and_test():
    torch.manual_seed(0)
    aug = augment("input_dropout", keep_prob=0.8)
    x = torch.rand(16, 3, 32, 32) + 2
    assert removed_fraction(aug, x, train=True) == pytest.approx(0.2, abs=0.01)
    assert removed_fraction(aug, x, train=False) == pytest.approx(0.2, abs=0.01)
    assert removed_fraction(augment("fpa", p=1.0, p1_max=0.5, p2=0.1, s_max=2), x, train=False) == 0


def test_missingness_removes_exactly_half_the_patches():
    torch.manual_seed(0)
    aug = augment("missingness", fraction=0.5, patch_size=4)
    x = torch.rand(8, 3, 16, 16) + 2
    out, keep = aug(x)
    removed = (out != x).any(dim=1).reshape(8, 4, 4, 4, 4).permute(0, 1, 3, 2, 4).reshape(8, 16, 16)
    per_patch = removed.float().mean(dim=2)
    assert set(per_patch.unique().tolist()) == {0.0, 1.0} and (per_patch.sum(dim=1) == 8).all()


def test_missingness_drops_tokens_for_vit():
    torch.manual_seed(0)
    cfg = OmegaConf.create({"name": "missingness", "params": {"fraction": 0.5, "patch_size": 8}})
    aug = BatchAugment(cfg, MEAN, token_patch=4)
    x = torch.rand(5, 3, 16, 16)
    out, keep = aug(x)
    assert torch.equal(out, x) and keep.shape == (5, 4, 4) and (keep.sum(dim=(1, 2)) == 8).all()


def test_standard_crop_and_flip_keep_content():
    torch.manual_seed(0)
    cfg = OmegaConf.create({"name": "standard", "crop_padding": 2, "flip": True})
    x = torch.rand(64, 1, 8, 8) + 1
    out, _ = BatchAugment(cfg, [0.5])(x)
    assert out.shape == x.shape and not torch.equal(out, x)
    shifted_in = (out == 0).float().mean().item()  # zero padding enters only through the crop
    assert 0 < shifted_in < 0.5
    plain = BatchAugment(OmegaConf.create({"name": "standard", "crop_padding": 0, "flip": True}), [0.5])(x)[0]
    same_or_flipped = [torch.equal(plain[i], x[i]) or torch.equal(plain[i], x[i].flip(-1)) for i in range(64)]
    assert all(same_or_flipped) and 10 < sum(torch.equal(plain[i], x[i]) for i in range(64)) < 54


def test_fpa_square_must_fit_the_image():
    with pytest.raises(RoarError, match="s_max=8 must be smaller than the image side"):
        augment("fpa", p=0.5, p1_max=0.25, p2=0.1, s_max=8).check_image((3, 8, 8))


def test_bad_fill_is_named():
    with pytest.raises(RoarError, match="augment.fill='grey': use one of blur, channel_mean, constant, linear, zero"):
        BatchAugment(
            OmegaConf.create(
                {"name": "fpa", "fill": "grey", "params": {"p": 0.5, "p1_max": 0.2, "p2": 0.1, "s_max": 2}}
            ),
            MEAN,
        )


def test_draws_come_from_the_augmentation_own_generators():
    """Same seed, same draws, whatever else consumed random numbers in between."""
    x = torch.rand(8, 3, 16, 16) + 2
    a, b = augment("fpa", p=1.0, p1_max=0.5, p2=0.2, s_max=3), augment("fpa", p=1.0, p1_max=0.5, p2=0.2, s_max=3)
    a.reseed(5, "cpu"), b.reseed(5, "cpu")
    first = a(x)[0]
    torch.rand(1000)
    assert torch.equal(first, b(x)[0])
    a.reseed(6, "cpu")
    assert not torch.equal(first, a(x)[0])
