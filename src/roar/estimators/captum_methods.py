"""Any Captum attribution method as an estimator: ``captum-<Class>`` (``captum-Occlusion``, ``captum-DeepLift``,
``captum-GradientShap``, ``captum-LayerGradCam``, ...).

The class is built on the model (and, for a class that takes a ``layer``, the model's last feature block:
its ``feature_layer``, which roar's ResNets and FastNet name, or a torchvision ResNet's ``layer4``), and its
``attribute`` is called with the target class. ``attribute.params.captum`` holds the keyword arguments: each
goes to the constructor when the constructor takes it, else to ``attribute`` (``captum.n_steps=25``,
``captum.sliding_window_shapes=[1,4,4]``; lists become tuples). The configured fill, painted over the whole
image, is ``baselines`` where the class takes one: the fill is the reference, as for roar's own IG with
``baseline=fill`` (FPA). A layer attribution is summed over its channels and upsampled to the image
(nearest: every input pixel of a feature-map cell gets the cell's value). Maps are of the input's shape.
"""

import inspect
import warnings

import numpy as np
import torch
import torch.nn.functional as F

from roar.errors import RoarError
from roar.estimators.registry import CAPTUM_PREFIX, ITERATIVE
from roar.utils.seeding import sample_seed

STEP_ARGS = ("n_steps", "n_samples")  # the forward passes an image costs, where the class has them
# the options of ``estimator=`` and ``available()``: image methods that run with their defaults (and Occlusion with
# a 4 x 4 window by default); any other class of captum.attr is taken by name in ``attribute.estimators`` (DeepLift
# among them: it needs every ReLU to be its own module, which torchvision's BasicBlock, reusing one, is not)
LISTED = (
    "Saliency",
    "InputXGradient",
    "IntegratedGradients",
    "GuidedBackprop",
    "Deconvolution",
    "GradientShap",
    "FeatureAblation",
    "Occlusion",
    "LayerGradCam",
    "GuidedGradCam",
)
STOCHASTIC = {"GradientShap", "DeepLiftShap", "KernelShap", "Lime", "ShapleyValueSampling", "FeaturePermutation"}
STOCHASTIC |= {f"Layer{n}" for n in STOCHASTIC} | {"NoiseTunnel"}
OCCLUSION_WINDOW = 4  # Occlusion's sliding window side when none is given (the window covers every channel)


def captum_class(name: str):
    """The Captum attribution class of ``captum-<Class>``, or an error listing the valid ones."""
    import captum.attr

    valid = sorted(
        n
        for n in dir(captum.attr)
        if inspect.isclass(getattr(captum.attr, n))
        and issubclass(getattr(captum.attr, n), captum.attr.Attribution)
        and "attribute" in vars(getattr(captum.attr, n))
        and not n.startswith(("Neuron", "LLM", "RemoteLLM", "DataLoader"))
    )
    cls = str(name).removeprefix(CAPTUM_PREFIX)
    if cls not in valid:
        raise RoarError(
            f"estimator {name!r}: captum.attr has no attribution class {cls!r} that roar can call with an image and "
            f"a target. Valid: {', '.join(CAPTUM_PREFIX + v for v in valid)}."
        )
    return getattr(captum.attr, cls)


def _plain(value):
    """A config value as Captum takes it: lists as tuples (window shapes, strides)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return tuple(_plain(v) for v in value)
    return value


def _takes(cls) -> tuple:
    return set(inspect.signature(cls.__init__).parameters), set(inspect.signature(cls.attribute).parameters)


def split_kwargs(cls, kwargs: dict) -> tuple:
    """(constructor kwargs, attribute kwargs) of ``attribute.params.captum`` that ``cls`` takes. One dict serves
    every captum-<Class> of a call, so a key another class takes is left out for this one; a key no Captum class
    takes (a typo) is refused."""
    import captum.attr

    init, call = _takes(cls)
    everything = set().union(*(a | b for a, b in (_takes(getattr(captum.attr, n)) for n in LISTED)), init, call)
    unknown = sorted(set(kwargs) - everything)
    if unknown:
        raise RoarError(
            f"attribute.params.captum has {unknown}: no Captum class of roar's list takes them. {cls.__name__} takes "
            f"{sorted((init | call) - {'self', 'forward_func', 'inputs', 'target', 'layer'})}."
        )
    made = {k: _plain(v) for k, v in kwargs.items()}
    return {k: v for k, v in made.items() if k in init}, {k: v for k, v in made.items() if k in call and k not in init}


def feature_layer(model):
    """The last spatial feature block of ``model`` (or of the network it wraps, ``model.net``)."""
    net = getattr(model, "net", model)
    layer = getattr(net, "feature_layer", None) or getattr(net, "layer4", None)
    if layer is None:
        raise RoarError(
            f"{type(net).__name__} names no feature block for a Captum layer method: give the network a "
            f"``feature_layer`` attribute (its last convolutional block)."
        )
    return layer


def captum_passes(params, pixels) -> int:
    """Forward(+backward) passes per image: the class's ``n_steps`` or ``n_samples`` (given, else its default),
    one per pixel for the perturbation methods that visit every feature, else one."""
    cls = captum_class(params["name"])
    given = dict(params.get("captum") or {})
    for arg in STEP_ARGS:
        default = inspect.signature(cls.attribute).parameters.get(arg)
        if arg in given or (default is not None and isinstance(default.default, int)):
            return int(given.get(arg, default.default if default is not None else 1))
    visits = cls.__name__ in ("FeatureAblation", "FeaturePermutation", "Occlusion", "ShapleyValueSampling")
    return int(pixels) if visits and pixels else 1


def attribute_rows(method, x, params, call, ids):
    """``method.attribute`` on the batch; a method that draws random numbers (GradientShap, KernelShap, Lime,
    ...) runs image by image from each sample's own seed (roar.utils.seeding), so that its maps depend on
    (seed, sample id) alone, never on the batch (as roar's own SmoothGrad noise)."""
    target = params["target"]
    if type(method).__name__ not in STOCHASTIC:
        return method.attribute(x, target=target, **call)
    ids = [str(i) for i in range(len(x))] if ids is None else list(ids)
    rows = []
    for i, sid in enumerate(ids):
        one = {k: v[i : i + 1] if isinstance(v, torch.Tensor) and len(v) == len(x) else v for k, v in call.items()}
        seed = sample_seed(int(params.get("seed", 0)), sid, "captum")
        state = np.random.get_state()  # GradientShap draws its path positions from numpy's global generator
        with torch.random.fork_rng(devices=[x.device] if x.device.type == "cuda" else []):
            torch.manual_seed(seed)
            np.random.seed(seed % 2**32)
            try:
                rows.append(method.attribute(x[i : i + 1], target=target[i : i + 1], **one))
            finally:
                np.random.set_state(state)
    return torch.cat(rows)


@ITERATIVE.register(
    "captum",
    passes=captum_passes,
    params={"captum": {}},
    family=tuple(CAPTUM_PREFIX + n for n in LISTED),
    check=captum_class,
)
def captum_maps(model, x, fill, ids, params):
    """(maps of x's shape, None): ``params["name"]``'s Captum class on the model, for ``params["target"]``."""
    cls = captum_class(params["name"])
    init, call = split_kwargs(cls, dict(params.get("captum") or {}))
    if "layer" in inspect.signature(cls.__init__).parameters:
        init["layer"] = feature_layer(model)
    if "baselines" in inspect.signature(cls.attribute).parameters and "baselines" not in call and fill is not None:
        call["baselines"] = fill
    if cls.__name__ == "Occlusion" and "sliding_window_shapes" not in call:
        side = min(OCCLUSION_WINDOW, *x.shape[-2:])
        call["sliding_window_shapes"] = (x.shape[1], side, side)
    method = cls(model, **init)
    with torch.enable_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Captum's notes on hooks and gradients it sets itself: not the user's concern
        try:
            maps = attribute_rows(method, x, params, call, ids)
        except (RuntimeError, AssertionError, TypeError, ValueError) as err:
            raise RoarError(f"estimator {params['name']} ({cls.__name__}) failed on this model: {err}") from err
    maps = maps.detach()
    if maps.shape != x.shape:  # a layer's attribution: summed over its channels, each cell upsampled to its pixels
        maps = F.interpolate(maps.sum(1, keepdim=True), size=x.shape[-2:], mode="nearest").expand_as(x)
    return maps.contiguous(), None
