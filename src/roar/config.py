"""Where the Hydra configs live, and composing them outside a Hydra app (tests, scripts, notebooks)."""

from pathlib import Path

from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, OmegaConf

CONFIG_DIR = Path(__file__).resolve().parents[2] / "conf"


def compose_config(config_name: str = "train", overrides=()) -> DictConfig:
    """The config ``roar-<stage> overrides...`` would run with, without starting a run."""
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return compose(config_name=config_name, overrides=list(overrides))


def to_plain(node):
    """A resolved plain dict/list copy of a config node (for checkpoints, JSON and wandb)."""
    return OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) or OmegaConf.is_config(node) else node
