"""Computing several estimators at once, sharing every forward+backward pass they can share.

Names: a base (``grad``, ``grad_x_input``, ``ig``, ``gb``), its square (``grad_sq``), an ensemble
around it (``sg-ig``, ``sg_sq-ig``, ``vargrad-ig``), the SmoothGrad map times the input
(``sg_x_input-grad``, FPA's SG': the mean of the noisy gradients times the clean input, where
``sg-grad_x_input`` averages noisy products), a control (``random``, ``sobel``, ``oracle``,
``shortcut``), or an iterative ranking that shares no passes (``gbs``, ``bs``: backward selection,
roar.estimators.backselect, its per-image confidence trace left in ``suite.traces``; ``lime``: LIME over
patches, roar.estimators.lime; ``mask-tv<lambda_TV>``: masks learned against training-image
distractors, roar.estimators.learned_masks).

The reference (``baseline``): ``black`` (raw 0, ROAR's code and the FPA paper's text) or ``fill``
(the image the configured fill paints over every pixel; FPA's code multiplies by the *normalized*
input and integrates from normalized zero, i.e. from the channel mean the mask writes). It is what
``grad_x_input`` and ``sg_x_input`` subtract from the input ((x - x0) * g) and where IG starts.

Sharing (ROAR section 4.1 definitions):
- ``<base>_sq`` is the square of ``<base>``: free once the base is computed.
- ``sg_x_input-<base>`` is ``(x - x0) * sg-<base>``: free once SmoothGrad is computed.
- SmoothGrad, SmoothGrad-squared and VarGrad of one base are the mean, the mean of squares and the
  variance of the *same* J noisy estimates (J=15, noise sd 0.15 x the image's value range), so the
  trio costs J x (base passes), not 3 J x. VarGrad divides by J (population variance), so
  ``sg_sq - sg**2 == vargrad`` exactly up to rounding.
- Noise is drawn per (seed, sample id): maps do not depend on batch size, shard split or device.
"""

import torch

from roar.errors import RoarError
from roar.estimators import backselect, cam_methods, captum_methods, learned_masks, lime  # noqa: F401  (register them)
from roar.estimators.controls import CONTROLS
from roar.estimators.gradients import BASES
from roar.estimators.registry import ENSEMBLES, available, default_params, iterative_of, parse
from roar.utils.seeding import per_sample

BASELINES = ("black", "fill")
DEFAULT_PARAMS = default_params()  # every iterative estimator registered above


def noisy_inputs(x, ids, params):
    """J noisy copies of every image, (B*J, C, H, W): x + N(0, (noise * (max - min of the image))^2)."""
    j = int(params["samples"])
    unit = per_sample(params["seed"], ids, "smoothgrad", (j, *x.shape[1:]), fn=torch.randn).to(x.device, x.dtype)
    spread = (x.flatten(1).amax(1) - x.flatten(1).amin(1)).view(-1, 1, 1, 1, 1) * float(params["noise"])
    return (x[:, None] + unit * spread).reshape(-1, *x.shape[1:])


class EstimatorSuite:
    """``suite(model, x, target, ids) -> {name: maps}`` for every name, with shared passes.

    ``passes_per_image`` is the number of forward+backward passes one image costs.
    """

    def __init__(self, names, **params):
        self.names = list(dict.fromkeys(names))
        if not self.names:
            raise RoarError("No estimator given; name at least one of: " + ", ".join(available()))
        self.params = {**DEFAULT_PARAMS, **params}
        unknown = set(self.params) - set(DEFAULT_PARAMS)
        if unknown:
            raise RoarError(f"Unknown estimator parameter(s) {sorted(unknown)}; valid: {sorted(DEFAULT_PARAMS)}.")
        if int(self.params["samples"]) < 1 or int(self.params["ig_steps"]) < 1:
            raise RoarError("estimator samples and ig_steps must be at least 1.")
        if self.params["baseline"] not in BASELINES:
            raise RoarError(
                f"attribute.params.baseline={self.params['baseline']!r}; valid: black (raw 0, ROAR) or fill (the "
                f"image the fill paints, FPA)."
            )
        self.kinds = {n: parse(n) for n in self.names}
        imported = [n for n, (k, _) in self.kinds.items() if k == "imported"]
        if imported:
            raise RoarError(
                f"{', '.join(imported)}: imported maps are read from a file, not computed (roar-attribute "
                f"import=<path> import_name=<name>)."
            )
        self.plain = sorted({b for k, b in self.kinds.values() if k in ("base", "sq")})
        self.noisy = sorted({b for k, b in self.kinds.values() if k in ENSEMBLES})
        self.needs = sorted({CONTROLS[n].needs for n, (k, _) in self.kinds.items() if k == "control"} - {None})
        self.iterative = [n for n, (k, _) in self.kinds.items() if k == "iterative"]
        self.traces = {}

    @property
    def fill_baseline(self) -> bool:
        """Whether the gradient estimators' reference is the painted fill (``baseline=fill``)."""
        return self.params["baseline"] == "fill"

    @property
    def needs_fill(self) -> bool:
        """Whether a call needs the fill painted over the image (iterative rankings mask with it)."""
        return any(iterative_of(n).paints and not iterative_of(n).distractors for n in self.iterative)

    @property
    def needs_pool(self) -> bool:
        """Whether a call needs a pool of training images (learned masks superimpose on them)."""
        return any(iterative_of(n).distractors for n in self.iterative)

    def passes_for(self, pixels: int | None = None) -> int:
        """Forward(+backward) passes per image; iterative rankings count only when ``pixels`` is given."""
        cost = {b: BASES[b].passes(self.params) for b in BASES}
        shared = sum(cost[b] for b in self.plain) + int(self.params["samples"]) * sum(cost[b] for b in self.noisy)
        own = sum(iterative_of(n).passes({**self.params, "name": n}, pixels) for n in self.iterative) if pixels else 0
        return shared + own

    @property
    def passes_per_image(self) -> int:
        return self.passes_for(None)

    def __call__(self, model, x, target, ids=None, reference=None, extras=None, fill=None, pool=None):  # noqa: PLR0913 (what an estimator may read: the model, the batch and its references)
        """{name: maps}. ``reference``: the (B, C, H, W) reference image of ``baseline=fill`` (None:
        black); ``extras``: the batch's ground truth for the controls that need it (``needs``);
        ``fill``: the image the configured fill paints, for iterative rankings (``needs_fill``);
        ``pool``: (N, C, H, W) training images, the distractors of learned masks (``needs_pool``)."""
        ids = [str(i) for i in range(len(x))] if ids is None else list(ids)
        if self.fill_baseline and reference is None:
            raise RoarError("baseline=fill: pass the reference image (the fill painted over the whole image).")
        ref = torch.zeros_like(x) if reference is None else reference.to(x.device, x.dtype)
        p, out = {**self.params, "reference": ref}, {}
        for b in self.plain:
            maps = BASES[b](model, x, target, p)
            out[b], out[f"{b}_sq"] = maps, maps * maps
        if self.noisy:
            xs, j = noisy_inputs(x, ids, p), int(p["samples"])
            noisy_p = {**p, "reference": ref.repeat_interleave(j, 0)}
            for b in self.noisy:
                est = BASES[b](model, xs, target.repeat_interleave(j), noisy_p).view(len(x), j, *x.shape[1:])
                out[f"sg-{b}"] = est.mean(1)
                out[f"sg_sq-{b}"] = (est * est).mean(1)
                out[f"vargrad-{b}"] = est.var(1, unbiased=False)
                out[f"sg_x_input-{b}"] = out[f"sg-{b}"] * (x - ref)
        for n, (kind, _) in self.kinds.items():
            if kind == "control":
                out[n] = CONTROLS[n](x, ids, p["seed"], extras or {})
        self.traces = {}
        for n in self.iterative:
            entry = iterative_of(n)
            if fill is None and entry.paints and not (entry.tokens or entry.distractors):
                raise RoarError(f"{n} masks with the configured fill: pass the fill image (fill=...).")
            painted = None if fill is None else fill.to(x.device, x.dtype)
            out[n], trace = entry(model, x, painted, ids, {**p, "name": n, "target": target, "pool": pool})
            if trace is not None:
                self.traces[n] = trace
        return {n: out[n].detach() for n in self.names}


def get_estimator(name: str, **params):
    """The estimator ``name`` as a callable ``(model, inputs, target, ids=None) -> Tensor`` of the inputs'
    shape (per element, before any channel reduction). ``ids`` seed the noise per sample."""
    suite = EstimatorSuite([name], **params)

    def estimator(model, inputs, target, ids=None):
        return suite(model, inputs, target, ids)[name]

    estimator.__name__ = name
    estimator.passes_per_image = suite.passes_per_image
    return estimator
