"""``roar-train``: train one classifier, the base model or a retrain run (roar.training.run).

roar-train experiment=roar_digits                                      # the base model
roar-train experiment=roar_digits estimator=grad fraction=0.3 seed=2   # a retrain run on masked shards
roar-train -m experiment=roar_digits sweep=grid                        # every retrain run of the grid
"""

import hydra
from omegaconf import DictConfig

from roar.config import CONFIG_DIR
from roar.errors import reported
from roar.store.resolve import run_key
from roar.tracking import quiet_lightning
from roar.training.run import train
from roar.utils.log import get_logger

log = get_logger(__name__)


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="train")
def main(cfg: DictConfig):
    quiet_lightning()
    with reported("roar-train"):
        metrics = train(cfg)
        log.info(f"[roar-train] test_acc={metrics['test_acc']:.4f} -> {run_key(cfg).metrics}")
    return metrics["test_acc"]
