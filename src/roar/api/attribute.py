"""``roar.attribute``: any registered estimator's maps of a batch of images, from plain tensors."""

import torch
import torch.nn as nn

from roar.api.no_retrain import fill_config
from roar.errors import RoarError
from roar.estimators import EstimatorSuite
from roar.masking.fills import bind_fill


def attribute(  # noqa: PLR0913 (an estimator's inputs and the keyword settings of one call)
    model: nn.Module,
    images: torch.Tensor,
    estimator: str,
    target: torch.Tensor | None = None,
    *,
    ids=None,
    fill="channel_mean",
    extras: dict | None = None,
    pool: torch.Tensor | None = None,
    batch_size: int = 64,
    **params,
) -> torch.Tensor:
    """The maps of ``estimator`` for ``images``, as roar-attribute computes them (before storing).

    Args:
        model: any classifier ``model(images) -> logits`` (in eval mode for the call, then restored).
        images: (N, C, H, W) in the model's input space.
        estimator: a registered estimator's name (``grad``, ``sg_sq-ig``, ``random``, ``gbs``, your own).
        target: (N,) the classes to explain; None: the model's predictions.
        ids: one id per image (SmoothGrad's noise and the random control are drawn per id); None: indices.
        fill: the fill (a name or a dict) painting the reference of ``baseline="fill"`` and the removed pixels
            of iterative rankings (``gbs``, ``bs``, ``lime``); its ``channel_mean`` is the images' mean.
        extras: ground truth the controls need ({"object_mask": (N, H, W)} for ``oracle``).
        pool: (M, C, H, W) training images, the distractors of learned masks (``mask-tv*``).
        batch_size: images per chunk.
        **params: estimator parameters (``attribute.params``: ``ig_steps``, ``samples``, ``noise``,
            ``baseline``, ``seed``, ...).

    Returns:
        (N, C, H, W) float maps, higher is more important.
    """
    if images.dim() != 4 or len(images) == 0:
        raise RoarError(f"images: expected a non-empty (N, C, H, W) batch, got shape {tuple(images.shape)}.")
    suite = EstimatorSuite([estimator], **params)
    ids = [str(i) for i in range(len(images))] if ids is None else [str(i) for i in ids]
    channels, painted_fill = images.shape[1], None
    if suite.fill_baseline or suite.needs_fill:
        painted_fill = bind_fill(fill_config(fill, channels), channels, images.float().mean((0, 2, 3)).tolist())
    was_training = model.training
    model.eval()
    try:
        chunks = [
            _chunk(suite, model, images[lo : lo + int(batch_size)], target, ids, lo, painted_fill, extras, pool)
            for lo in range(0, len(images), int(batch_size))
        ]
    finally:
        model.train(was_training)
    return torch.cat(chunks)


def _chunk(suite, model, x, target, ids, lo, fill, extras, pool):  # noqa: PLR0913 (one chunk of attribute's call)
    """The maps of ``x``, rows ``lo`` on of the call (their targets, ids and ground truth)."""
    device = next(iter(model.parameters()), torch.empty(0)).device
    part = slice(lo, lo + len(x))
    x = x.to(device)
    if target is None:
        with torch.no_grad():
            t = model(x).argmax(1)
    else:
        t = target[part].to(device)
    painted = None
    if fill is not None:
        everywhere = torch.ones((x.shape[0], 1, *x.shape[2:]), dtype=torch.bool, device=device)
        painted = fill.apply(x, everywhere, ids[part])
    maps = suite(
        model,
        x,
        t,
        ids[part],
        painted if suite.fill_baseline else None,
        {k: v[part] for k, v in (extras or {}).items()},
        fill=painted if suite.needs_fill else None,
        pool=None if pool is None else pool.to(device),
    )
    return maps[suite.names[0]].float().cpu()
