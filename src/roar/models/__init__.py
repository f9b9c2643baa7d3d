"""Models: the registry (ResNets, ViT with token drop, the airbench fastnet, ensembles of trained
models), the LightningModule, checkpoint loading."""

from roar.models import cifar, ensemble, fastnet, resnet, vit  # noqa: F401  (registers the models)
from roar.models.registry import MODELS, available, build_model, register_model

__all__ = ["MODELS", "available", "build_model", "register_model"]
