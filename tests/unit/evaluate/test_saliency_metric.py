"""The masking paper's intrinsic metrics beside completeness and soundness: Dabkowski & Gal's Saliency Metric
and RISE's blurred insertion canvas (roar.evaluate.saliency_metric)."""

import math

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter
from scipy.signal import correlate2d

from roar.evaluate.saliency_metric import DELTAS, boxes, rise_blur, saliency_metric, summarize_sm


def test_the_box_is_the_tightest_around_the_values_above_delta_standard_deviations():
    g = torch.Generator().manual_seed(0)
    scores = torch.rand(2, 16, 16, generator=g) * 0.1
    scores[0, 3:6, 10:15] = 5.0  # 15 of 256 features far above the rest
    scores[1, 12, 2] = 5.0
    assert boxes(scores, 2.0).tolist() == [[3, 5, 10, 14], [12, 12, 2, 2]]
    flat = torch.full((1, 8, 8), 0.3)
    flat[0, 6, 1] = 0.31  # nothing reaches 5 standard deviations: the largest value alone
    assert boxes(flat, 5.0).tolist() == [[6, 6, 1, 1]]
    assert boxes(scores, 0.0)[0].tolist() == [3, 5, 10, 14]  # the noise sits below the mean the square lifts


class Brightness(torch.nn.Module):
    """Two classes, logits (8 x mean brightness, 0): p(class 0) is a known function of the crop."""

    def forward(self, x):
        m = x.mean((1, 2, 3))
        return torch.stack([8 * m, torch.zeros_like(m)], 1)


def test_the_metric_is_log_area_minus_log_probability_of_the_upsampled_crop():
    images = torch.zeros(1, 3, 16, 16)
    images[..., 4:8, 4:12] = 1.0  # a bright 4 x 8 box: its crop, upsampled, is all ones
    scores = images[:, 0].clone()
    s = saliency_metric(Brightness(), images, scores, torch.tensor([0]), max_rows=7)
    assert s.shape == (1, len(DELTAS))
    p = 1 / (1 + math.exp(-8.0))
    assert float(s[0, DELTAS.index(1.0)]) == pytest.approx(math.log(32 / 256) - math.log(p), abs=1e-5)
    tiny = torch.zeros(1, 3, 16, 16)
    tiny[..., 0, 0] = 1.0  # a one-pixel box: its area counts as 0.05 (the metric's floor)
    s = saliency_metric(Brightness(), tiny, tiny[:, 0].clone(), torch.tensor([0]), max_rows=64)
    assert float(s[0, DELTAS.index(2.0)]) == pytest.approx(math.log(0.05) - math.log(p), abs=1e-5)


def test_patch_scores_make_boxes_of_whole_patches():
    images = torch.zeros(1, 3, 16, 16)
    images[..., 8:12, 0:4] = 1.0
    patches = torch.zeros(1, 4, 4)
    patches[0, 2, 0] = 1.0  # the patch at rows 8-11, columns 0-3 of 4-pixel patches
    s = saliency_metric(Brightness(), images, patches, torch.tensor([0]), max_rows=64)
    p = 1 / (1 + math.exp(-8.0))
    assert float(s[0, DELTAS.index(1.0)]) == pytest.approx(math.log(0.0625) - math.log(p), abs=1e-5)


def test_the_threshold_is_chosen_on_the_holdout_and_scored_on_the_rest():
    values = np.ones((6, len(DELTAS)))
    values[:3, 4] = 0.0  # the holdout prefers delta 0.8
    values[3:, 4] = 0.5
    values[3:, 7] = -3.0  # a better delta on the scored images is not chosen: no peeking
    s = summarize_sm(values.tolist(), holdout=3)
    assert (s["delta"], s["score"], s["holdout"], s["images"], s["tuned_on_scored_images"]) == (0.8, 0.5, 3, 3, False)
    alone = summarize_sm(values[:2].tolist(), holdout=3)
    assert alone["tuned_on_scored_images"] and alone["images"] == 2 and alone["score"] == 0.0
    assert summarize_sm([], holdout=3) is None


def test_the_blur_canvas_is_rise_s_kernel_with_zero_padding():
    """RISE's evaluation.py: gkern(11, 5) (gaussian_filter of a delta on an 11 x 11 grid), conv2d with
    padding 5 per channel."""
    x = torch.rand(1, 3, 20, 20, generator=torch.Generator().manual_seed(1))
    delta = np.zeros((11, 11))
    delta[5, 5] = 1
    kernel = gaussian_filter(delta, 5)
    for c in range(3):
        ref = correlate2d(x[0, c].double().numpy(), kernel, mode="same", boundary="fill")
        np.testing.assert_allclose(rise_blur(x)[0, c].numpy(), ref, atol=1e-6)
