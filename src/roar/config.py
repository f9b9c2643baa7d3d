"""Where the Hydra configs live, and composing them outside a Hydra app (tests, scripts, notebooks)."""

import os
import uuid
from pathlib import Path

from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, OmegaConf

from roar.artifacts import fraction_name, ranking_name

CONFIG_DIR = Path(__file__).resolve().parents[2] / "conf"

# Resolvers the configs use to name artifact folders (conf/paths/default.yaml) and pick a run's stage.
OmegaConf.register_new_resolver("roar.ranking", lambda est, red: ranking_name(est, red) if est else "none", replace=True)
OmegaConf.register_new_resolver("roar.fraction", lambda t: fraction_name(t) if t is not None else "none", replace=True)
OmegaConf.register_new_resolver("roar.if_shards", lambda data, yes, no: yes if data == "shards" else no, replace=True)
OmegaConf.register_new_resolver("roar.unique", lambda: f"{os.getpid()}-{uuid.uuid4().hex[:6]}", replace=True)
OmegaConf.register_new_resolver("roar.with_zero", lambda ts: [0.0] + [t for t in ts if float(t) != 0.0], replace=True)


def compose_config(config_name: str = "train", overrides=()) -> DictConfig:
    """The config ``roar-<stage> overrides...`` would run with, without starting a run."""
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return compose(config_name=config_name, overrides=list(overrides))


def to_plain(node):
    """A resolved plain dict/list copy of a config node (for checkpoints, JSON and wandb)."""
    return OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) or OmegaConf.is_config(node) else node
