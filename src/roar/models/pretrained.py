"""A model trained elsewhere as roar's base model (``base_checkpoint=<path>``): its weights read safely and
loaded into the configured architecture.

The file may hold a ``state_dict`` (``torch.save(model.state_dict(), path)``; a ViT's in timm's or torchvision's
layout too: roar.models.converters), a checkpoint dict with one
(``{"state_dict": ...}``, Lightning's included; roar's own ``net.`` prefix and DDP's ``module.`` are taken
off), or a whole model saved with ``torch.save(model, path)``. Everything is read with ``weights_only=True``:
a whole model is read only when every class its pickle names belongs to torch, torchvision, roar or the
package that registered the architecture, so loading it never runs code from anywhere else.
"""

import importlib
import pickle
from pathlib import Path

import torch
from torch import nn

from roar.errors import RoarError
from roar.models.converters import to_roar_vit
from roar.models.registry import MODELS

TRUSTED = ("torch.", "torchvision.", "roar.", "collections.OrderedDict", "builtins.set")
PREFIXES = ("net.", "module.", "model.")
AUXILIARY = ("AuxLogits.", "aux1.", "aux2.")  # built with aux_logits=False (the overinterpretation paper, S1)


def _global(name: str):
    module, _, attr = name.rpartition(".")
    return getattr(importlib.import_module(module), attr)


def read_whole_model(path: Path, arch: str):
    """A model pickled whole, read with weights_only=True after allowing the classes it names, when each is
    trusted (torch, torchvision, roar, the package that registered ``arch``); else a refusal naming them."""
    owner = MODELS[arch].fn.__module__.split(".")[0] + "."
    needed = torch.serialization.get_unsafe_globals_in_checkpoint(str(path))
    foreign = [g for g in needed if not g.startswith((*TRUSTED, owner))]
    if foreign:
        raise RoarError(
            f"base_checkpoint={path} is a pickled object naming {', '.join(foreign[:4])}, which roar does not load "
            f"(unpickling it could run code). Save the weights instead: torch.save(model.state_dict(), path)."
        )
    with torch.serialization.safe_globals([_global(g) for g in needed]):
        return torch.load(path, map_location="cpu", weights_only=True)


def read_weights(path, arch: str) -> dict:
    """The state_dict held by ``path`` (see the module's docstring for what it may hold)."""
    path = Path(path)
    try:
        held = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        held = read_whole_model(path, arch)
    except Exception as err:  # not a torch file, or a truncated one
        raise RoarError(f"base_checkpoint={path} could not be read as a torch file: {err}") from None
    if isinstance(held, nn.Module):
        return held.state_dict()
    if isinstance(held, dict) and isinstance(held.get("state_dict"), dict):
        held = held["state_dict"]
    if not isinstance(held, dict) or not all(isinstance(v, torch.Tensor) for v in held.values()):
        raise RoarError(
            f"base_checkpoint={path} holds a {type(held).__name__}, not a model's weights: save them with "
            f"torch.save(model.state_dict(), path)."
        )
    for prefix in PREFIXES:  # roar's Classifier (net.), DDP (module.), a wrapper's model.
        if held and all(k.startswith(prefix) for k in held):
            held = {k[len(prefix) :]: v for k, v in held.items()}
    return to_roar_vit(held, path)  # timm's and torchvision's ViT layouts renamed (roar.models.converters)


def load_pretrained(net: nn.Module, path, arch: str) -> None:
    """Load ``path``'s weights into ``net`` (the configured architecture ``arch``), every tensor matched by name
    and shape; what does not match is named, with the architecture and class count to check."""
    weights = read_weights(path, arch)
    mine = net.state_dict()
    if not any(k.startswith(AUXILIARY) for k in mine):  # torchvision's Inception-v3/GoogLeNet side heads, unused
        weights = {k: v for k, v in weights.items() if not k.startswith(AUXILIARY)}
    missing = [k for k in mine if k not in weights]
    unexpected = [k for k in weights if k not in mine]
    shapes = [
        f"{k} {tuple(weights[k].shape)} vs {tuple(v.shape)}"
        for k, v in mine.items()
        if k in weights and weights[k].shape != v.shape
    ]
    if missing or unexpected or shapes:
        said = [
            f"missing {', '.join(missing[:3])}" if missing else "",
            f"unexpected {', '.join(unexpected[:3])}" if unexpected else "",
            f"other shapes ({'; '.join(shapes[:2])})" if shapes else "",
        ]
        raise RoarError(
            f"base_checkpoint={path} does not fit model={arch} with this data's classes and image size: "
            f"{'; '.join(s for s in said if s)}. Set model= (and model.params) to the architecture it was trained "
            f"as; the data's class count must be the model's."
        )
    net.load_state_dict(weights)
