"""fill=linear: ROAD's noisy linear imputation, batched conjugate gradients equal to a sparse direct solve."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
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
    out = paint(images, removed, fill(tol=1e-7), MEAN)
    default = paint(images, removed, fill(), MEAN)
    for k in range(4):
        ref = spsolve_reference(images[k].double().numpy(), removed[k, 0].numpy())
        np.testing.assert_allclose(out[k].numpy(), ref, atol=1e-6)  # the float64 refinement: float32's precision
        np.testing.assert_allclose(default[k].numpy(), ref, atol=1e-3)  # tol 1e-4: within half an 8-bit level
    keep = ~removed.expand_as(images)
    assert torch.equal(out[keep], images[keep]) and torch.equal(default[keep], images[keep])


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


def test_an_image_is_filled_bit_for_bit_the_same_alone_and_in_any_batch():
    """Shards masked at write (one batch) and at load (another) must agree exactly: the multigrid levels follow
    the image size, never the batch's holes, and each channel stops on its own estimate."""
    g = torch.Generator().manual_seed(4)
    images = torch.rand(6, 3, 32, 32, generator=g)
    removed = torch.rand(6, 1, 32, 32, generator=g) < torch.tensor([0.1, 0.3, 0.5, 0.7, 0.9, 0.97]).view(6, 1, 1, 1)
    removed[5, :, 4:28, 4:28] = True  # one big hole: deep levels with unknown cells, the others' without
    together, _ = solve_linear(images, removed)
    for k in range(6):
        alone, _ = solve_linear(images[k : k + 1], removed[k : k + 1])
        assert torch.equal(alone[0], together[k]), k
    pair, _ = solve_linear(images[[0, 5]], removed[[0, 5]])
    assert torch.equal(pair[0], together[0]) and torch.equal(pair[1], together[5])


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
        RoarError, match=r"did not reach fill.tol=1e-08 in fill.max_iter=3 iterations \(worst estimated error"
    ):
        paint(images, removed, fill(max_iter=3, tol=1e-8), MEAN)


def photo(side: int, n: int) -> torch.Tensor:
    """Crops of scikit-learn's bundled photographs (china.jpg, flower.jpg), in [0, 1]."""
    from sklearn.datasets import load_sample_images

    pictures = load_sample_images().images
    crops = [pictures[k % 2][40 * k : 40 * k + side, 60 * k : 60 * k + side] for k in range(n)]
    return torch.tensor(np.stack(crops).transpose(0, 3, 1, 2) / 255.0, dtype=torch.float32)


def blobs(n: int, side: int, t: float, seed: int) -> torch.Tensor:
    """The top t of a smooth random map: the contiguous holes a smooth saliency map removes."""
    coarse = torch.randn(n, 1, side // 8, side // 8, generator=torch.Generator().manual_seed(seed))
    smooth = F.interpolate(coarse, size=(side, side), mode="bicubic")
    return smooth > torch.quantile(smooth.flatten(1), 1 - t, dim=1)[:, None, None, None]


def test_equals_quantus_own_noisy_linear_imputation_on_photographs():
    """The peer's code itself (Quantus 0.6, adapted from ROAD's), noise off, on real photo crops with
    scattered and contiguous holes."""
    from quantus.functions.perturb_func import noisy_linear_imputation

    images = photo(48, 4)
    for removed in (torch.rand(4, 1, 48, 48, generator=torch.Generator().manual_seed(3)) < 0.7, blobs(4, 48, 0.7, 4)):
        out, _ = solve_linear(images, removed, tol=1e-7)
        for image, hole, mine in zip(images, removed, out):
            peer = noisy_linear_imputation(image.double().numpy(), np.flatnonzero(hole[0].numpy()), noise=0.0)
            np.testing.assert_allclose(mine.numpy(), peer, atol=1e-6)


def test_the_multigrid_preconditioner_is_symmetric_positive_and_holds_the_iterations_down():
    """Conjugate gradients need a symmetric positive preconditioner; the V-cycle's point is an iteration
    count that does not grow like the hole's diameter (Jacobi's: 15 on scattered pixels, 300 on blobs)."""
    from roar.masking.multigrid import Multigrid, channels_last

    removed = blobs(2, 64, 0.9, 5)
    unknown = channels_last(removed.expand(2, 3, 64, 64).reshape(1, 6, 64, 64).float())
    cycle = Multigrid(unknown)
    assert len(cycle.levels) >= 4  # 64, 32, 16, 8: the blobs survive coarsening
    g = torch.Generator().manual_seed(6)
    a, b = (channels_last(torch.randn(1, 6, 64, 64, generator=g)) * unknown for _ in range(2))
    ma, mb = cycle(a).clone(), cycle(b).clone()
    torch.testing.assert_close((ma * b).sum((2, 3)), (a * mb).sum((2, 3)), rtol=1e-4, atol=1e-4)
    assert bool(((ma * a).sum((2, 3)) > 0).all())
    images = photo(64, 2)
    for t, most in ((0.1, 8), (0.5, 12), (0.9, 20)):
        _, scattered = solve_linear(images, torch.rand(2, 1, 64, 64, generator=g) < t)
        _, contiguous = solve_linear(images, blobs(2, 64, t, 7))
        assert 0 < scattered <= most and 0 < contiguous <= most, (t, scattered, contiguous)


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
