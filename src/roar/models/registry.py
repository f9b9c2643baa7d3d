"""Model registry (timm style): ``@register_model("name")`` on ``fn(num_classes, in_channels, image_size, **params)``."""

from roar.errors import RoarError, unknown_name

_MODELS = {}


def register_model(name):
    def wrap(fn):
        _MODELS[name] = fn
        return fn

    return wrap


def available():
    return sorted(_MODELS)


def build_model(name, num_classes: int = 10, in_channels: int = 3, image_size: int = 32, **params):
    """The network ``name`` for inputs (in_channels, image_size, image_size) and ``num_classes`` outputs.

    Inputs are normalized images; the LightningModule (``roar.models.module``) does the normalizing.
    """
    if name not in _MODELS:
        raise unknown_name("model", name, _MODELS)
    try:
        return _MODELS[name](num_classes=num_classes, in_channels=in_channels, image_size=image_size, **params)
    except TypeError as err:  # an unknown keyword in the model config
        raise RoarError(f"model={name}: {err}. Check the keys under model.params.") from None
