"""Base estimators: gradient, gradient x input, integrated gradients, guided backprop.

Each is ``fn(model, x, target, params) -> maps`` of ``x``'s shape, computed with as few
forward+backward passes as the method needs (one per row for gradients; ``ig_steps`` per image for
IG), in chunks of at most ``params["max_rows"]`` rows. Results equal Captum's (Saliency with
abs=False, InputXGradient, IntegratedGradients, GuidedBackprop; tested to rtol 1e-5).
"""

import contextlib

import torch
import torch.nn as nn
from captum.attr._utils.approximation_methods import approximation_parameters

from roar.errors import RoarError
from roar.registry import Registry


def target_gradient(model, x, target, max_rows: int = 64) -> torch.Tensor:
    """d logit[target] / d x for every row of ``x``: one forward+backward per row."""
    grads = []
    for xs, ts in zip(x.split(max_rows), target.split(max_rows)):
        xs = xs.detach().requires_grad_(True)
        with torch.enable_grad():
            logits = model(xs)
            g = None
            if logits.requires_grad:
                (g,) = torch.autograd.grad(logits.gather(1, ts[:, None]).sum(), xs, allow_unused=True)
        if g is None:
            raise RoarError(
                f"The model's output has no gradient path to its input ({type(model).__name__}); gradient "
                f"estimators need a differentiable model. Use the controls (random, sobel) or fix the model."
            )
        grads.append(g)
    return torch.cat(grads)


def grad(model, x, target, params):
    """Vanilla gradient of the target logit (Simonyan et al. 2014; ROAR section 4.1)."""
    return target_gradient(model, x, target, params.get("max_rows", 64))


def reference_of(x, params) -> torch.Tensor:
    """The reference image x0 (``params["reference"]``, the suite's; black when absent)."""
    ref = params.get("reference")
    return torch.zeros_like(x) if ref is None else ref


def grad_x_input(model, x, target, params):
    """Gradient times input (Shrikumar et al.; the FPA paper's primed signed estimators), relative to
    the reference: (x - x0) * g, which is x * g for black and, for the channel-mean fill, FPA's
    normalized input times the gradient with respect to it."""
    return grad(model, x, target, params) * (x - reference_of(x, params))


def integrated_gradients(model, x, target, params):
    """Integrated gradients (Sundararajan et al. 2017) from the reference x0 (black, or the fill with
    ``baseline=fill``) in ``ig_steps`` steps (ROAR: 25) with Captum's ``ig_method`` quadrature;
    ``ig_steps`` passes per image."""
    steps, method = int(params.get("ig_steps", 25)), params.get("ig_method", "gausslegendre")
    step_sizes, alphas = approximation_parameters(method)
    baseline = reference_of(x, params)
    a = torch.tensor(alphas(steps), dtype=x.dtype, device=x.device)
    w = torch.tensor(step_sizes(steps), dtype=x.dtype, device=x.device)
    shape = (steps,) + (1,) * x.dim()
    path = (baseline + a.view(shape) * (x - baseline)).reshape(-1, *x.shape[1:])  # step-major rows
    g = target_gradient(model, path, target.repeat(steps), params.get("max_rows", 64)).view(steps, *x.shape)
    return (g * w.view(shape)).sum(0) * (x - baseline)


def _guided_relu(x):
    """ReLU whose backward passes only positive gradients where the input was positive: the hook
    clamps the incoming gradient at zero, ReLU's own backward then masks by (input > 0)."""
    out = torch.relu(x)
    if out.requires_grad:
        out.register_hook(lambda g: g.clamp(min=0))
    return out


@contextlib.contextmanager
def guided_relus(model: nn.Module):
    """Every ``nn.ReLU`` of ``model`` runs as a guided ReLU inside the block (reused modules too)."""
    relus = [m for m in model.modules() if isinstance(m, nn.ReLU)]
    for m in relus:
        m.forward = _guided_relu
    try:
        yield
    finally:
        for m in relus:
            del m.forward


def guided_backprop(model, x, target, params):
    """Guided backprop (Springenberg et al. 2015): ReLU modules pass back only positive gradients.
    Like Captum, only ``nn.ReLU`` modules are modified (a ViT's GELUs are not)."""
    with guided_relus(model):
        return grad(model, x, target, params)


# Estimator bases: fn(model, x, target, params) -> maps, and ``passes``: forward+backward passes per
# image given the params. A registered base gets its squared form and its three ensembles for free.
# ``code``: a digest of a user-registered base's source (roar.api.register), part of its maps' identity, so
# that editing the function redoes its maps; None for roar's own (their identity is roar's version of them).
BASES = Registry("estimator base", defaults={"passes": lambda p: 1, "code": None})
BASES.add("grad", grad)
BASES.add("grad_x_input", grad_x_input)
BASES.add("ig", integrated_gradients, passes=lambda p: int(p.get("ig_steps", 25)))
BASES.add("gb", guided_backprop)
