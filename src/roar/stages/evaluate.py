"""``roar-eval``: rankings evaluated on the base model without retraining (roar.evaluate.run).

roar-eval experiment=roar_digits
roar-eval -m experiment=fpa_cifar10 data.root=/data/cifar augment=none,fpa,rectangle
"""

import hydra
from omegaconf import DictConfig

from roar.config import CONFIG_DIR
from roar.errors import reported
from roar.evaluate.run import evaluate
from roar.store.resolve import base_key
from roar.utils.log import get_logger

log = get_logger(__name__)


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="eval")
def main(cfg: DictConfig):
    with reported("roar-eval"):
        evaluate(cfg)
    log.info(f"[roar-eval] complete -> {base_key(cfg).experiment_dir / 'eval' / base_key(cfg).name}")
