"""CAM methods through pytorch-grad-cam (the optional extra ``pip install 'roar[cam]'``): ``cam-<Class>``
(``cam-GradCAM``, ``cam-GradCAMPlusPlus``, ``cam-ScoreCAM``, ...).

The class is built on the model with the model's last feature block as its target layer (``feature_layer``, as
for Captum's layer methods) and called with ``ClassifierOutputTarget`` of the target class. pytorch-grad-cam
resizes a CAM to the input with OpenCV's bilinear interpolation; roar takes the map at the feature map's own
resolution (``get_target_width_height`` returning None: no resize, the library's per-image min-max scaling
and ReLU kept) and upsamples it to the image nearest-neighbour, as roar's Captum layer methods do, so every
pixel of a feature-map cell shares the cell's value (the ranking breaks ties at random, per sample, as always).
Maps are of the input's shape (the same value in every channel).
"""

import importlib

import numpy as np
import torch
import torch.nn.functional as F

from roar.errors import RoarError
from roar.estimators.captum_methods import feature_layer
from roar.estimators.registry import CAM_PREFIX, ITERATIVE

LISTED = ("GradCAM", "HiResCAM", "GradCAMPlusPlus", "XGradCAM", "LayerCAM", "EigenCAM", "ScoreCAM")
PER_CHANNEL = {"ScoreCAM", "AblationCAM"}  # one forward pass per feature channel (counted as 64 in the bill)


def cam_class(name: str):
    """The pytorch-grad-cam class of ``cam-<Class>``; an error naming the extra when the package is missing, or
    listing the valid classes."""
    try:
        cams = importlib.import_module("pytorch_grad_cam")
    except ImportError:
        raise RoarError(
            f"estimator {name!r} needs pytorch-grad-cam, roar's optional extra: pip install 'roar[cam]' "
            f"(or pip install grad-cam)."
        ) from None
    from pytorch_grad_cam.base_cam import BaseCAM

    valid = sorted(n for n in dir(cams) if isinstance(getattr(cams, n), type) and issubclass(getattr(cams, n), BaseCAM))
    cls = str(name).removeprefix(CAM_PREFIX)
    if cls not in valid:
        raise RoarError(
            f"estimator {name!r}: pytorch_grad_cam has no CAM class {cls!r}. Valid: "
            f"{', '.join(CAM_PREFIX + v for v in valid)}."
        )
    return getattr(cams, cls)


def cam_passes(params, pixels) -> int:
    return 64 if str(params["name"]).removeprefix(CAM_PREFIX) in PER_CHANNEL else 1


def cell_maps(model, x, name: str, target) -> torch.Tensor:
    """(B, h, w) CAMs at the feature map's resolution, each scaled to [0, 1] by pytorch-grad-cam."""
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    cls = cam_class(name)
    with torch.enable_grad(), cls(model=model, target_layers=[feature_layer(model)]) as cam:
        cam.get_target_width_height = lambda _: None  # keep the cells: roar upsamples (nearest)
        try:
            cells = cam(x, targets=[ClassifierOutputTarget(int(t)) for t in target])
        except (RuntimeError, ValueError, IndexError) as err:
            raise RoarError(f"estimator {name} failed on this model: {err}") from err
    return torch.from_numpy(np.asarray(cells, dtype=np.float32)).to(x.device)


@ITERATIVE.register(
    "cam", passes=cam_passes, paints=False, family=tuple(CAM_PREFIX + n for n in LISTED), check=cam_class
)
def cam_maps(model, x, fill, ids, params):
    """(maps of x's shape, None): ``params["name"]``'s CAM of ``params["target"]``, each cell's value on its pixels."""
    cells = cell_maps(model, x, params["name"], params["target"])
    return F.interpolate(cells[:, None], size=x.shape[-2:], mode="nearest").expand_as(x).contiguous(), None
