"""Registering your own estimator, model, dataset or fill: the registries' own decorators, public.

    import roar

    @roar.register_estimator("edge_grad")
    def edge_grad(model, x, target, params):
        return roar.attribute(model, x, "grad", target) * x   # any (B, C, H, W) map of x's shape

After registration the name is an option everywhere roar takes one: ``estimator=edge_grad``,
``attribute.estimators=[edge_grad,sg-edge_grad]``, ``roar.attribute(model, x, "edge_grad")``. From an
installed package, register in the module its ``roar.plugins`` entry point names (roar.plugins).
"""

import hashlib
import inspect

from roar.data.registry import DATASETS
from roar.errors import RoarError
from roar.estimators.gradients import BASES
from roar.estimators.registry import available
from roar.masking.fills import FILLS
from roar.models.registry import MODELS
from roar.store.names import check_name


def _checked(name: str, what: str, taken) -> str:
    name = str(name)
    try:
        check_name(name)
    except RoarError:
        raise RoarError(
            f"{what} name {name!r}: use letters, digits, '.' and '_' (it names a folder of outputs)."
        ) from None
    if "-" in name:
        raise RoarError(f"{what} name {name!r}: '-' joins an ensemble to its base (sg-grad); use '_' instead.")
    if name in taken:
        raise RoarError(f"{what} {name!r} is registered already; choose another name.")
    return name


def source_digest(fn) -> str:
    """sha256 of a function's source (its qualified name where the source cannot be read): part of the
    identity of what it makes, so that editing the function redoes its outputs."""
    try:
        text = inspect.getsource(fn)
    except (OSError, TypeError):
        text = f"{getattr(fn, '__module__', '')}.{getattr(fn, '__qualname__', repr(fn))}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _decorator(registry, what: str, name: str, params: dict):
    """The decorator registering a function in ``registry`` under a checked ``name``, with its ``params``."""

    def wrap(fn):
        registry.add(_checked(name, what, registry), fn, params=dict(params))
        return fn

    return wrap


def register_estimator(name: str, *, passes=1, version: str | None = None):
    """Decorator: register ``fn(model, x, target, params) -> maps`` as an estimator.

    Args:
        name: the estimator's name (letters, digits, '_'); ``<name>_sq``, ``sg-<name>``, ``sg_sq-<name>``,
            ``vargrad-<name>`` and ``sg_x_input-<name>`` come with it (ROAR section 4.1's ensembles).
        passes: forward+backward passes one image costs (an int, or ``fn(params) -> int``); the planner's bill.
        version: what identifies the function's behaviour; by default a digest of its source, so that
            maps made by an earlier version of the function are recomputed, never reused.

    The function gets ``x`` (B, C, H, W) in the model's input space, ``target`` (B,) the classes to explain
    and ``params`` (``attribute.params``: ``max_rows``, ``seed``, ... and ``reference``, the baseline image
    x0) and returns maps of ``x``'s shape (higher: more important).

    Returns:
        The decorator; it returns the function unchanged.
    """
    cost = passes if callable(passes) else (lambda params, n=int(passes): n)

    def wrap(fn):
        checked = _checked(name, "estimator", available())
        BASES.add(checked, fn, passes=cost, code=str(version) if version is not None else source_digest(fn))
        return fn

    return wrap


def register_model(name: str, **params):
    """Decorator: register ``fn(num_classes, in_channels, image_size, **params) -> nn.Module`` as ``model=name``.

    Args:
        name: the model's name; ``params``: the defaults of ``model.params`` (overridable on the command line).

    The network receives images normalized by the training split's channel statistics (roar.classifier).
    A token model (a ViT) sets ``patch_size`` on itself and accepts ``forward(x, keep)``.

    Returns:
        The decorator; it returns the function unchanged.
    """

    return _decorator(MODELS, "model", name, params)


def register_dataset(name: str, **params):
    """Decorator: register ``fn(cfg, split) -> ImageDataset`` as ``data=name``.

    Args:
        name: the dataset's name; ``params``: the keys of its ``data`` config and their defaults (besides
            ``batch_size`` 64 and ``num_workers`` 0), read by the function from ``cfg``.

    The function returns a ``roar.data.base.TensorImageDataset`` (or any ImageDataset): images in [0, 1],
    integer labels and one stable id per sample; ``split`` is "train" or "test".

    Returns:
        The decorator; it returns the function unchanged.
    """

    return _decorator(DATASETS, "data", name, params)


def register_fill(name: str, **params):
    """Decorator: register ``fn(images, removed, cfg, ctx) -> images`` as ``fill=name``.

    Args:
        name: the fill's name; ``params``: its settings and their defaults (``fill.<key>=...``).

    ``images`` (B, C, H, W) in [0, 1]; ``removed`` (B, 1, H, W) booleans, True where a pixel is removed; ``cfg``
    the fill's config (its settings); ``ctx.mean`` the training split's channel mean, ``ctx.ids`` the samples'
    ids, ``ctx.maps_seed`` the seed of any noise. Return the images with the removed pixels painted.

    Returns:
        The decorator; it returns the function unchanged.
    """

    return _decorator(FILLS, "fill", name, params)
