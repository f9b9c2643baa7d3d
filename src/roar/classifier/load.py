"""Loading a trained Classifier: any checkpoint (``load_classifier``) or a finished base model, checked against
the config that asks for it (``load_base_model``)."""

from roar.classifier.module import Classifier
from roar.errors import RoarError
from roar.models.checkpoint import check_compatible, check_not_damaged, read_checkpoint
from roar.store.io import read_json
from roar.utils.plain import to_plain


def load_classifier(path, **expected) -> Classifier:
    """The Classifier saved at ``path``, in eval mode, after ``check_compatible(**expected)``."""
    ckpt = read_checkpoint(path)
    check_compatible(ckpt, path, **expected)
    model = Classifier(**ckpt["hyper_parameters"])
    model.load_state_dict(ckpt["state_dict"])
    return model.eval()


def load_base_model(key, model_cfg, num_classes: int, image_shape) -> Classifier:
    """The finished base model of ``key`` (a BaseKey), checked against the config's model (name and
    params), class count and image shape, so a foreign checkpoint is never used silently."""
    if not key.metrics.is_file() or not key.checkpoint.is_file():
        raise RoarError(
            f"No finished base model at {key.folder} ({key.metrics.name} and "
            f"{key.checkpoint.relative_to(key.folder)}). "
            f"Run roar-train with the same name/data/model/augment first."
        )
    check_not_damaged(key.checkpoint, read_json(key.metrics) or {})
    return load_classifier(
        key.checkpoint, model=to_plain(model_cfg), num_classes=num_classes, image_shape=list(image_shape)
    )
