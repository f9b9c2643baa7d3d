"""``roar-plan``: the experiment's bill before anything runs (roar.plan).

roar-plan experiment=roar_imagenet
roar-plan experiment=roar_cifar10 model=fastnet recipe=fast_cifar plan.calibrate=true trainer=gpu
"""

import hydra
from omegaconf import DictConfig

from roar.config import CONFIG_DIR
from roar.errors import reported
from roar.plan.run import plan_and_print


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="plan")
def main(cfg: DictConfig):
    with reported("roar-plan"):
        plan_and_print(cfg)
