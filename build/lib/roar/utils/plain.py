"""Plain containers from configs (for checkpoints, JSON, hashes and wandb)."""

from omegaconf import OmegaConf


def to_plain(node):
    """A resolved plain dict/list copy of a config node; anything else is returned as it is."""
    return OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else node
