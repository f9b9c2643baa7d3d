"""``roar-report``: the experiment's tables, figures, index.html and wandb run (roar.report.run).

roar-report experiment=roar_digits
"""

import hydra
from omegaconf import DictConfig

from roar.config import CONFIG_DIR
from roar.errors import reported
from roar.report.run import build_report


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="report")
def main(cfg: DictConfig):
    with reported("roar-report"):
        build_report(cfg)
