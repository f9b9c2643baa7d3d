"""``roar-attribute``: every estimator's map of every train and test image (roar.attribution.run).

roar-attribute experiment=roar_digits attribute.estimators=[grad,sg-grad,sg_sq-grad]
roar-attribute experiment=roar_imagenet attribute.shard_id=3 attribute.num_shards=8   # one task of a job array
roar-attribute experiment=roar_digits import=my_maps/ import_name=mine    # maps made elsewhere: imported-mine
"""

import hydra
from omegaconf import DictConfig

from roar.attribution.imported import import_maps
from roar.attribution.run import attribute
from roar.config import CONFIG_DIR
from roar.errors import reported
from roar.store.resolve import base_key
from roar.utils.log import get_logger

log = get_logger(__name__)


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="attribute")
def main(cfg: DictConfig):
    with reported("roar-attribute"):
        manifests = import_maps(cfg) if cfg.get("import") is not None else attribute(cfg)
    done = [n for n, m in manifests.items() if m]
    log.info(f"[roar-attribute] complete: {len(done)}/{len(manifests)} estimators -> {base_key(cfg).maps_root}")
