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

from roar.errors import RoarError, unknown_name
from roar.estimators import lime  # noqa: F401  (registers lime)
from roar.estimators.backselect import ITERATIVE
from roar.estimators.controls import CONTROLS
from roar.estimators.gradients import BASES
from roar.estimators.learned_masks import PAPER_NAMES, mask_tv
from roar.utils.seeding import per_sample

ENSEMBLES = ("sg", "sg_sq", "vargrad", "sg_x_input")  # each made from the same J noisy estimates
BASELINES = ("black", "fill")
DEFAULT_PARAMS = {
    "ig_steps": 25,
    "ig_method": "gausslegendre",
    "baseline": "black",
    "samples": 15,
    "noise": 0.15,
    "max_rows": 64,
    "seed": 0,
    "sis_k": None,
    "bs_max_evals": 100000,
    "lime_samples": 1000,
    "lime_patch": None,
    "lime_kernel": 0.25,
    "lime_alpha": 1.0,
    "mask_l1": 0.001,
    "mask_scale": 1,
    "mask_steps": 2000,
    "mask_distractors": 10,
    "mask_lr": 0.05,
    "mask_pool": 1024,
    "mask_penalty": "sum",
}


# parameters only some estimators read: the other estimators' maps do not depend on them, so they stay out
# of those maps' identity (adding an estimator's parameter never invalidates the others' maps)
PARAM_OWNERS = {
    "sis_k": ("gbs",),
    "bs_max_evals": ("bs",),
    "lime_samples": ("lime",),
    "lime_patch": ("lime",),
    "lime_kernel": ("lime",),
    "lime_alpha": ("lime",),
    **{f"mask_{k}": ("mask",) for k in ("l1", "scale", "steps", "distractors", "lr", "pool", "penalty")},
}


def owner(name: str) -> str:
    """The registered entry an estimator name belongs to: its own, or its family's (``mask-tv0.01`` -> mask)."""
    return "mask" if mask_tv(name) is not None else name


def iterative_of(name: str):
    """The ITERATIVE entry of an iterative estimator (``owner``)."""
    return ITERATIVE[owner(name)]


def stores_steps(name: str) -> bool:
    """Backward selection's maps are removal steps (whole numbers a sufficient input subset is read
    from), not scores: stored exactly, and filled alike when selected and when re-checked."""
    return parse(name)[0] == "iterative" and iterative_of(name).sis


def params_for(name: str, params: dict) -> dict:
    """The estimator parameters ``name``'s maps depend on (its identity): all but other estimators' own."""
    mine = owner(name)
    return {k: v for k, v in params.items() if mine in PARAM_OWNERS.get(k, (mine,))}


def available():
    names = [
        *BASES,
        *(f"{b}_sq" for b in BASES),
        *(f"{e}-{b}" for e in ENSEMBLES for b in BASES),
        *CONTROLS,
        *(m for n in ITERATIVE for m in (ITERATIVE[n].family or (n,))),
    ]
    return sorted(names)


def parse(name: str):
    """(kind, base) of an estimator name: kind is 'base', 'sq', one of ENSEMBLES, 'control' or 'iterative'."""
    if name in CONTROLS:
        return "control", None
    if (name in ITERATIVE and ITERATIVE[name].family is None) or mask_tv(name) is not None:
        return "iterative", None
    if name in BASES:
        return "base", name
    if name.endswith("_sq") and name[:-3] in BASES:
        return "sq", name[:-3]
    ensemble, _, base = name.partition("-")
    if ensemble in ENSEMBLES and base in BASES:
        return ensemble, base
    if name.startswith("mask"):
        raise RoarError(
            f"Unknown estimator {name!r}: learned masks are named mask-tv<lambda_TV> (any lambda_TV >= 0), "
            f"e.g. {', '.join(PAPER_NAMES)}."
        )
    raise unknown_name("estimator", name, available())


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
        return any(not iterative_of(n).distractors for n in self.iterative)

    @property
    def needs_pool(self) -> bool:
        """Whether a call needs a pool of training images (learned masks superimpose on them)."""
        return any(iterative_of(n).distractors for n in self.iterative)

    def passes_for(self, pixels: int | None = None) -> int:
        """Forward(+backward) passes per image; iterative rankings count only when ``pixels`` is given."""
        cost = {b: BASES[b].passes(self.params) for b in BASES}
        shared = sum(cost[b] for b in self.plain) + int(self.params["samples"]) * sum(cost[b] for b in self.noisy)
        return shared + (sum(iterative_of(n).passes(self.params, pixels) for n in self.iterative) if pixels else 0)

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
            if fill is None and not (entry.tokens or entry.distractors):
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
