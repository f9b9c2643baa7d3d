"""``roar-mask``: ranked-masked shards per estimator, mode, fill and fraction (roar.masking.write).

roar-mask experiment=roar_digits mask.estimators=[grad,random] mask.modes=[remove,keep]
roar-mask verify experiment=roar_digits     # every manifest of the experiment (exit 1 on a mismatch)
"""

import sys

import hydra
from omegaconf import DictConfig

from roar.config import CONFIG_DIR
from roar.errors import reported
from roar.masking.write import verify_all, write_masks
from roar.store.keys import experiment_dir


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="mask")
def _main(cfg: DictConfig):
    with reported("roar-mask"):
        if cfg.action == "verify":
            sys.exit(1 if verify_all(experiment_dir(cfg)) else 0)
        sets = write_masks(cfg)
    done = sum(1 for m in sets.values() if m)
    print(f"[roar-mask] complete: {done}/{len(sets)} shard sets -> {experiment_dir(cfg) / 'shards'}")


def main():
    """``roar-mask [verify] overrides...``: the ``verify`` word is shorthand for ``action=verify``."""
    if len(sys.argv) > 1 and sys.argv[1] == "verify":
        sys.argv[1] = "action=verify"
    _main()
