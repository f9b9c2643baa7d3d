"""roar-pipeline's SLURM chain (roar.stages.chain): how many attribution and masking tasks it submits."""

import pytest
from omegaconf import OmegaConf

from roar.errors import RoarError
from roar.stages.chain import num_shards

PLAN = {"data": {"num_train": 50_000, "num_test": 10_000}}  # 50 shards of 1,000 images


def config(given=None, minutes=30):
    return OmegaConf.create(
        {"pipeline": {"num_shards": given, "shard_minutes": minutes}, "attribute": {"shard_size": 1000}}
    )


def priced(hours: float) -> dict:
    return {**PLAN, "time": {"hours": {"attribution": hours}}}


def test_the_number_of_shard_tasks_comes_from_the_plan_or_is_given_and_never_exceeds_the_datas_shards():
    assert num_shards(config(), PLAN) == 1  # no step time: no bill to cut, one task
    assert num_shards(config(), priced(2.0)) == 4  # 120 min of attribution in tasks of 30 min
    assert num_shards(config(minutes=1), priced(100.0)) == 50  # more tasks than shards would idle
    assert num_shards(config(given=8), priced(100.0)) == 8
    assert num_shards(config(given=500), PLAN) == 50
    with pytest.raises(RoarError, match=r"pipeline.num_shards=0"):
        num_shards(config(given=0), PLAN)
