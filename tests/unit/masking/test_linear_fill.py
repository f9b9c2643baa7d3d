"""fill=linear: ROAD's noisy linear imputation, batched conjugate gradients equal to a sparse direct solve."""

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from scipy.sparse import lil_matrix
from scipy.sparse.linalg import spsolve

from roar.errors import RoarError
from roar.masking.fills import bind_fill, check_fill
from roar.masking.imputation import solve_linear

SIDE, DIAGONAL = 1 / 6, 1 / 12
MEAN = [0.3, 0.5, 0.7]


def spsolve_reference(image: np.ndarray, removed: np.ndarray) -> np.ndarray:
    """The system written from its equations, one pixel at a time, and solved by scipy (the reference
    implementations' method): each removed pixel is the weighted mean of its in-image neighbours."""
    c, h, w = image.shape
    unknown = [(y, x) for y in range(h) for x in range(w) if removed[y, x]]
    index = {p: k for k, p in enumerate(unknown)}
    a, rhs = lil_matrix((len(unknown), len(unknown))), np.zeros((len(unknown), c))
    for k, (y, x) in enumerate(unknown):
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                if (dy, dx) == (0, 0) or not (0 <= y + dy < h and 0 <= x + dx < w):
                    continue
                weight = SIDE if dy == 0 or dx == 0 else DIAGONAL
                a[k, k] += weight
                if (y + dy, x + dx) in index:
                    a[k, index[(y + dy, x + dx)]] -= weight
                else:
                    rhs[k] += weight * image[:, y + dy, x + dx]
    solution = spsolve(a.tocsc(), rhs).reshape(len(unknown), c)
    out = image.copy()
    for k, (y, x) in enumerate(unknown):
        out[:, y, x] = solution[k]
    return out


def fill(noise=0.0, **extra):
    return OmegaConf.create({"name": "linear", "noise": noise, **extra})


def paint(images, removed, cfg, mean, ids=None, seed=0):
    return bind_fill(cfg, images.shape[1], mean, seed).apply(images, removed, ids)


@pytest.mark.parametrize("t", [0.1, 0.5, 0.9])
def test_equals_a_sparse_direct_solve_and_keeps_known_pixels_bit_for_bit(t):
    g = torch.Generator().manual_seed(0)
    images = torch.rand(4, 3, 16, 16, generator=g)
    removed = torch.rand(4, 1, 16, 16, generator=g) < t
    out = paint(images, removed, fill(), MEAN)
    for k in range(4):
        ref = spsolve_reference(images[k].double().numpy(), removed[k, 0].numpy())
        np.testing.assert_allclose(out[k].numpy(), ref, atol=1e-4)
    keep = ~removed.expand_as(images)
    assert torch.equal(out[keep], images[keep])


def test_constant_and_linear_ramps_are_reproduced_inside_holes():
    yy, xx = torch.meshgrid(torch.arange(12.0), torch.arange(12.0), indexing="ij")
    ramp = (0.1 + 0.03 * yy + 0.05 * xx)[None, None].expand(1, 3, 12, 12).contiguous()
    constant = torch.full((1, 3, 12, 12), 0.42)
    removed = torch.zeros(1, 1, 12, 12, dtype=torch.bool)
    removed[..., 3:9, 2:7] = True  # an interior hole: the stencil is exact on linear functions
    removed[..., 5, 9] = True
    for image in (ramp, constant):
        torch.testing.assert_close(paint(image, removed, fill(tol=1e-10), MEAN), image, rtol=0, atol=1e-6)


def test_noise_only_on_filled_pixels_seeded_per_sample_and_batch_independent():
    g = torch.Generator().manual_seed(1)
    images = torch.rand(32, 3, 8, 8, generator=g)
    removed = torch.rand(32, 1, 8, 8, generator=g) < 0.5
    ids = [f"s{i}" for i in range(32)]
    noisy = paint(images, removed, fill(0.01), MEAN, ids=ids, seed=3)
    clean = paint(images, removed, fill(0.0), MEAN)
    keep = ~removed.expand_as(images)
    assert torch.equal(noisy[keep], images[keep])
    spread = (noisy - clean)[~keep]
    assert 0.008 < float(spread.std()) < 0.012 and abs(float(spread.mean())) < 0.002
    alone = paint(images[7:8], removed[7:8], fill(0.01), MEAN, ids=ids[7:8], seed=3)
    torch.testing.assert_close(alone[0], noisy[7], rtol=0, atol=1e-6)  # the same image alone and in a batch of 32
    other = paint(images, removed, fill(0.01), MEAN, ids=ids, seed=4)
    assert not torch.equal(other, noisy)


def test_nothing_known_falls_back_to_the_channel_mean():
    images = torch.rand(2, 3, 6, 6)
    removed = torch.zeros(2, 1, 6, 6, dtype=torch.bool)
    removed[0] = True
    removed[1, :, :3] = True
    out = paint(images, removed, fill(), MEAN)
    assert torch.equal(out[0], torch.tensor(MEAN).view(3, 1, 1).expand(3, 6, 6))
    assert not torch.allclose(out[1, :, :3], torch.tensor(MEAN).view(3, 1, 1).expand(3, 3, 6))


def test_bad_settings_are_refused_and_a_solve_that_stops_short_is_reported():
    for bad, match in (
        ({"noise": -0.1}, "fill.noise=-0.1"),
        ({"tol": 0}, "fill.tol=0"),
        ({"max_iter": 0}, "fill.max_iter=0"),
    ):
        with pytest.raises(RoarError, match=match):
            check_fill(fill(**bad), 3)
    images = torch.rand(1, 3, 32, 32)
    removed = torch.ones(1, 1, 32, 32, dtype=torch.bool)
    removed[..., 0, 0] = removed[..., 31, 31] = False  # a huge hole fed from two far corners: unsolved after 3 steps
    images[..., 0, 0], images[..., 31, 31] = 0.0, 1.0
    with pytest.raises(
        RoarError, match="did not reach fill.tol=1e-05 in fill.max_iter=3 iterations .worst relative residual"
    ):
        paint(images, removed, fill(max_iter=3), MEAN)


def test_iterations_grow_with_the_hole():
    g = torch.Generator().manual_seed(2)
    images = torch.rand(8, 3, 32, 32, generator=g)
    counts = [solve_linear(images, torch.rand(8, 1, 32, 32, generator=g) < t)[1] for t in (0.1, 0.9)]
    assert 0 < counts[0] < counts[1]


def test_fpa_can_train_with_the_linear_fill_it_is_evaluated_with():
    """augment.fill=linear: FPA's removed pixels are imputed (noise from the augmentation's own seeded
    draws), known pixels untouched; roar-eval with fill=linear then sees the same perturbation."""
    from roar.augment import BatchAugment
    from roar.evaluate.run import training_fill_mismatch

    cfg = OmegaConf.create(
        {"name": "fpa", "fill": "linear", "params": {"p": 1.0, "p1_max": 0.5, "p2": 0.0, "s_max": 2}}
    )
    x = torch.rand(16, 3, 16, 16, generator=torch.Generator().manual_seed(5))
    aug = BatchAugment(cfg, MEAN, seed=1)
    out, _ = aug(x)
    changed = out != x
    assert changed.any() and changed.float().mean() < 0.6
    removed = changed.any(1, keepdim=True)  # the pixels FPA took out, all channels together
    solved, _ = solve_linear(x, removed)
    assert (out - solved)[removed.expand_as(x)].abs().max() < 0.06  # the imputation plus noise of sd 0.01
    again, _ = BatchAugment(cfg, MEAN, seed=1)(x)
    assert torch.equal(out, again)  # seeded
    both = OmegaConf.create({"augment": cfg, "fill": {"name": "linear"}})
    assert training_fill_mismatch(both, bind_fill(both.fill, 3, MEAN), token_model=False) is None
    other = OmegaConf.create({"augment": cfg, "fill": {"name": "channel_mean"}})
    assert "filling with linear" in training_fill_mismatch(other, bind_fill(other.fill, 3, MEAN), token_model=False)
