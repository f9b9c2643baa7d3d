"""Model registry (timm style): ``@register_model("name")`` on
``fn(num_classes, in_channels, image_size, **params)``."""

from roar.errors import RoarError
from roar.registry import Registry

MODELS = Registry("model", defaults={"params": {}})  # params: a plug-in's model.params defaults
register_model = MODELS.register


def available():
    return MODELS.names()


def build_model(name, num_classes: int = 10, in_channels: int = 3, image_size: int = 32, **params):
    """The network ``name`` for inputs (in_channels, image_size, image_size) and ``num_classes`` outputs.

    Inputs are normalized images; the LightningModule (``roar.classifier.module``) does the normalizing.
    """
    build = MODELS[name]
    try:
        return build(num_classes=num_classes, in_channels=in_channels, image_size=image_size, **params)
    except TypeError as err:  # an unknown keyword in the model config
        raise RoarError(f"model={name}: {err}. Check the keys under model.params.") from None
