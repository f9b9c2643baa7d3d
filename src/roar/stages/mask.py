"""``roar-mask``: ranked-masked shards per estimator, mode, fill and fraction (roar.masking.run).

roar-mask experiment=roar_digits mask.estimators=[grad,random] mask.modes=[remove,keep]
roar-mask verify experiment=roar_digits     # every manifest of the experiment (exit 1 on a mismatch)
"""

import sys

import hydra
from omegaconf import DictConfig

from roar.config import CONFIG_DIR
from roar.errors import RoarError, reported
from roar.evaluate.leakage import audit_sets
from roar.masking.run import write_masks
from roar.store.experiment import experiments_with_sets, has_sets, shards_dir, verify_all
from roar.store.resolve import experiment_dir
from roar.utils.log import get_logger

log = get_logger(__name__)


def verify(cfg) -> int:
    """Exit status of ``roar-mask verify``: 0 when every manifest of the experiment verifies, 1 when one
    does not; an experiment with nothing to verify is an error naming the experiments there are."""
    exp = experiment_dir(cfg)
    if not has_sets(exp):
        root, there = exp.parent, experiments_with_sets(exp.parent)
        raise RoarError(
            f"No maps or shards to verify at {exp}. Experiments with some under {root}: {', '.join(there) or 'none'}; "
            f"pass name=<one of them> (and paths.output_root= if they live elsewhere)."
        )
    return 1 if verify_all(exp) else 0


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="mask")
def _main(cfg: DictConfig):
    with reported("roar-mask"):
        if cfg.action == "verify":
            sys.exit(verify(cfg))
        sets = write_masks(cfg)
        done = sum(1 for m in sets.values() if m)
        log.info(f"[roar-mask] complete: {done}/{len(sets)} shard sets -> {shards_dir(experiment_dir(cfg))}")
        audit_sets(sets, int(cfg.mask.audit_steps), int(cfg.maps_seed))


def main():
    """``roar-mask [verify] overrides...``: the ``verify`` word is shorthand for ``action=verify``; a
    verify reads only, so it writes no Hydra log folder (it works on a read-only outputs/)."""
    if len(sys.argv) > 1 and sys.argv[1] == "verify":
        sys.argv[1:2] = [
            "action=verify",
            "hydra.output_subdir=null",
            "~hydra.job_logging.handlers.file",  # roar's messages still reach the console (roar.utils.log)
            "hydra.job_logging.root.handlers=[]",
            "hydra/hydra_logging=disabled",
            "hydra.run.dir=.",
        ]
    _main()
