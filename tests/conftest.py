import os

import pytest

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")


@pytest.fixture
def make_cfg(tmp_path):
    """Compose the train config as ``roar-train overrides...`` would, writing under tmp_path, tiny and quiet."""
    from roar.config import compose_config

    def make(*overrides, config_name="train"):
        base = [
            f"paths.output_root={tmp_path / 'outputs'}",
            "logger=csv",
            "trainer.enable_progress_bar=false",
            "trainer.accelerator=cpu",
        ]
        return compose_config(config_name, base + list(overrides))

    return make
