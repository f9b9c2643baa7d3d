"""The estimators' names and parameters: the registry of iterative estimators (each declaring the parameters
it reads), the parameters every other estimator shares, and the one parser of an estimator's name.

Names: a base (``grad``, ``grad_x_input``, ``ig``, ``gb``; roar.estimators.gradients), its square
(``grad_sq``), an ensemble around it (``sg-ig``, ``sg_sq-ig``, ``vargrad-ig``, ``sg_x_input-grad``), a
control (``random``, ``sobel``, ``oracle``, ``shortcut``; roar.estimators.controls), or an iterative ranking
(``gbs``, ``bs``, ``lime``, ``mask-tv<lambda_TV>``: an entry of ``ITERATIVE`` or a member of its family).
An iterative entry's ``params`` are its own: the defaults of ``attribute.params`` and which maps depend on
which parameter (``params_for``) are derived from them.
"""

import re

from roar.errors import RoarError, unknown_name
from roar.estimators.controls import CONTROLS
from roar.estimators.gradients import BASES
from roar.registry import Registry

ENSEMBLES = ("sg", "sg_sq", "vargrad", "sg_x_input")  # each made from the same J noisy estimates
# the parameters the gradient estimators and their ensembles read (every map depends on them)
SHARED_PARAMS = {
    "ig_steps": 25,
    "ig_method": "gausslegendre",
    "baseline": "black",
    "samples": 15,
    "noise": 0.15,
    "max_rows": 64,
    "seed": 0,
}
ITERATIVE = Registry(
    "iterative estimator",
    defaults={
        "passes": lambda params, pixels: 0,
        "tokens": False,
        "sis": False,
        "distractors": False,
        "family": None,
        "check": None,  # a family's check of a member's name (captum-<Class>: a class captum.attr has)
        "paints": True,  # whether its maps depend on the fill (it paints removed pixels with it; CAMs do not)
        "params": {},
    },
)
CAPTUM_PREFIX = "captum-"  # captum-<Class>: any Captum attribution class (roar.estimators.captum_methods)
CAM_PREFIX = "cam-"  # cam-<Class>: a pytorch-grad-cam class (roar.estimators.cam_methods, the extra roar[cam])
IMPORTED = re.compile(r"^imported-([A-Za-z0-9_]+)$")  # maps made elsewhere (roar-attribute import=...)
MASK_NAME = re.compile(r"^mask-tv(\d+(?:\.\d*)?(?:e-?\d+)?)$")
PAPER_NAMES = tuple(f"mask-tv{v}" for v in ("0", "0.001", "0.01", "0.1"))  # Tables 2, 4, 6: the registered options


def mask_tv(name: str):
    """lambda_TV of a ``mask-tv<lambda>`` name (``mask-tv0.01`` -> 0.01), or None for other names."""
    found = MASK_NAME.match(str(name))
    return float(found.group(1)) if found else None


def default_params() -> dict:
    """``attribute.params``' defaults: the shared parameters and every iterative entry's own."""
    return {**SHARED_PARAMS, **{k: v for n in ITERATIVE.names() for k, v in ITERATIVE[n].params.items()}}


def owner(name: str) -> str:
    """The registered entry an estimator name belongs to: its own, or its family's (``mask-tv0.01`` -> mask,
    ``captum-Occlusion`` -> captum, ``cam-GradCAM`` -> cam)."""
    if mask_tv(name) is not None:
        return "mask"
    for family, prefix in (("captum", CAPTUM_PREFIX), ("cam", CAM_PREFIX)):
        if str(name).startswith(prefix):
            return family
    return name


def iterative_of(name: str):
    """The ITERATIVE entry of an iterative estimator (``owner``)."""
    return ITERATIVE[owner(name)]


def stores_steps(name: str) -> bool:
    """Backward selection's maps are removal steps (whole numbers a sufficient input subset is read
    from), not scores: stored exactly, and filled alike when selected and when re-checked."""
    return parse(name)[0] == "iterative" and iterative_of(name).sis


def code_of(name: str):
    """The source digest of the user-registered base ``name`` is made from (``BASES``' trait ``code``), or
    None for roar's own estimators."""
    kind, base = parse(name)
    return BASES[base].code if base is not None else None


def params_for(name: str, params: dict) -> dict:
    """The estimator parameters ``name``'s maps depend on (its identity): the shared ones and its own, never
    another estimator's (adding an estimator's parameter never invalidates the others' maps)."""
    mine = owner(name)
    owners = {k: n for n in ITERATIVE.names() for k in ITERATIVE[n].params}
    return {k: v for k, v in params.items() if owners.get(k, mine) == mine}


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
    """(kind, base) of an estimator name: kind is 'base', 'sq', one of ENSEMBLES, 'control', 'iterative' or
    'imported' (``imported-<name>``: maps computed elsewhere, roar.attribution.imported)."""
    if IMPORTED.match(str(name)):
        return "imported", None
    if name.startswith("imported"):
        raise RoarError(
            f"Unknown estimator {name!r}: imported maps are named imported-<name>, <name> of letters, digits and "
            f"'_' (roar-attribute import=<path> import_name=<name>)."
        )
    if name in CONTROLS:
        return "control", None
    if (name in ITERATIVE and ITERATIVE[name].family is None) or mask_tv(name) is not None:
        return "iterative", None
    if owner(name) in ("captum", "cam") and owner(name) in ITERATIVE:
        ITERATIVE[owner(name)].check(name)  # a class the library has, or the valid ones listed
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
