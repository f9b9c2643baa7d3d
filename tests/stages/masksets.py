"""The shard sets the roar-mask tests read: a module's own experiment (the tiny base model's grad and random
maps, masked in both modes at four fractions) and the helpers that name its sets."""

from pathlib import Path

import pytest

from conftest import TINY_BASE, base_name
from roar.attribution.run import attribute
from roar.config import compose_config
from roar.masking.run import write_masks
from roar.store.resolve import shard_set_key
from roar.store.shards import decode_key, read_shard

FRACTIONS = "mask.fractions=[0,0.3,0.7,1.0]"


QUIET = ["logger=csv", "trainer.enable_progress_bar=false"]


BASE = base_name(*TINY_BASE)


@pytest.fixture(scope="module")
def root(tmp_path_factory, tiny_base):
    out = tiny_base(tmp_path_factory.mktemp("outputs"))
    common = [f"paths.output_root={out}", *QUIET]
    attribute(compose_config("attribute", [*common, "attribute.estimators=[grad,random]", "attribute.shard_size=400"]))
    write_masks(
        compose_config("mask", [*common, "mask.estimators=[grad,random]", "mask.modes=[remove,keep]", FRACTIONS])
    )
    return out


def cfg(root, *overrides, config="mask"):
    return compose_config(
        config,
        [f"paths.output_root={root}", *QUIET, f"base={BASE}", "mask.estimators=[grad,random]", FRACTIONS, *overrides],
    )


def leaf(root, estimator="grad", mode="remove", fill=("fill=channel_mean",), fraction=0.3, name="default"):
    """The shard set's folder, as its key names it (the fill's folder is a digest of its whole config)."""
    return shard_set_key(cfg(root, *fill, f"name={name}"), estimator, mode, fraction).folder


def fill_overrides(fill):
    small = {"constant": ["fill.value=[0.25]"], "blur": ["fill.reference_size=null"]}  # blur in pixels on 8x8 digits
    return [f"fill={fill}", *small.get(fill, [])]


def samples(folder, split="test"):
    out = {}
    for tar in sorted(Path(folder).glob(f"{split}-*.tar")):
        for s in read_shard(tar):
            out[decode_key(s["__key__"])] = s
    return out


def current_umask() -> int:
    import os

    mask = os.umask(0)
    os.umask(mask)
    return mask
