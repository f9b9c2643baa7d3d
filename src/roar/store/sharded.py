"""The sharded-stage helper: plan shards, skip complete ones, seal each written shard, finish.

Every stage that writes shards (roar-attribute, roar-mask, and the ones to come) works the same way:
a split of ``n`` samples is cut into shards of ``size`` samples, shard ``s`` is this task's when
``s % num_shards == shard_id`` (SLURM job arrays), a shard whose seal names these settings and whose
sha256 matches is skipped, a written shard is sealed after it is complete (both atomic), and the
set's manifest appears once every shard of every split is sealed.
"""

import math
from dataclasses import dataclass, field
from pathlib import Path

from roar.store.io import atomic_write_json
from roar.store.manifest import finish_manifest, seal_path, shard_complete, shard_name
from roar.store.names import settings_hash
from roar.store.shards import ShardWriter


@dataclass
class OutputSet:
    """One set of shards a stage writes: its folder, what it is made from, and its shard size."""

    folder: Path
    settings: dict
    size: int
    digest: str = field(init=False)

    def __post_init__(self):
        self.folder = Path(self.folder)
        self.digest = settings_hash(self.settings)

    def shard(self, split: str, s: int) -> Path:
        return self.folder / shard_name(split, s)


def task_shards(n: int, size: int, shard_id: int, num_shards: int) -> range:
    """The indices of the shards of a split of ``n`` samples that task ``shard_id`` of ``num_shards`` writes."""
    return range(int(shard_id), math.ceil(n / size), int(num_shards))


def plan_shards(sets, counts: dict, shard_id: int, num_shards: int, overwrite: bool) -> list:
    """[(split, s, [sets still missing that shard])] for this task. ``sets`` share one shard size."""
    sets = list(sets)
    if not sets:
        return []
    size, plan = sets[0].size, []
    for split, n in counts.items():
        for s in task_shards(n, size, shard_id, num_shards):
            todo = [
                o for o in sets if not shard_complete(o.folder, shard_name(split, s), o.digest, o.settings, overwrite)
            ]
            if todo:
                plan.append((split, s, todo))
    return plan


def samples_in(plan, counts: dict, size: int) -> int:
    """How many samples the planned shards hold (for progress bars)."""
    return sum(min(size, counts[split] - s * size) for split, s, _ in plan)


def open_shard(out: OutputSet, split: str, s: int) -> ShardWriter:
    """A writer for one shard; its old seal goes first, so a crash mid-write leaves no stale seal."""
    seal_path(out.shard(split, s)).unlink(missing_ok=True)
    return ShardWriter(out.shard(split, s))


def seal_shard(out: OutputSet, split: str, s: int, info: dict) -> None:
    """Seal a closed shard: its sha256, count, bytes and the settings it was made with (and their hash)."""
    atomic_write_json(seal_path(out.shard(split, s)), {**info, "settings_hash": out.digest, "settings": out.settings})


def write_sealed(out: OutputSet, split: str, s: int, samples) -> dict:
    """Write a whole shard from ``samples`` and seal it."""
    with open_shard(out, split, s) as writer:
        for sample in samples:
            writer.write(sample)
    seal_shard(out, split, s, writer.info)
    return writer.info


def finish(out: OutputSet, counts: dict):
    """The set's manifest once every shard of every split (earlier calls' splits included) is sealed, else None."""
    return finish_manifest(out.folder, out.settings, out.digest, counts, out.size)
