"""The store: typed keys, sealed shards, merged manifests, and a full disk that leaves nothing behind."""

import errno

import pytest
from omegaconf import OmegaConf

from roar.errors import RoarError
from roar.store.grid import retrain_settings
from roar.store.keys import BaseKey, ShardSetKey
from roar.store.manifest import MANIFEST, read_manifest
from roar.store.names import fill_label
from roar.store.sharded import OutputSet, finish, plan_shards, write_sealed
from roar.store.shards import ShardWriter, read_shard


def test_keys_own_every_folder_and_the_fill_digest():
    base = BaseKey("out/exp", "digits", "resnet8", "fpa", "0123abcd")
    key = ShardSetKey(
        base, "ig", "sum", "keep", fill_label(OmegaConf.create({"name": "constant", "value": [0.2]})), 0.1
    )
    assert str(key.folder).startswith("out/exp/shards/digits-resnet8-fpa-0123abcd/ig.sum/keep/constant-") and str(
        key.folder
    ).endswith("/0.1")
    assert fill_label({"name": "constant", "value": [0.2]}) != fill_label({"name": "constant", "value": [0.8]})
    assert fill_label({"name": "zero"}) == "zero"
    grid = OmegaConf.create(
        {"estimators": ["grad", "random"], "modes": ["remove", "keep"], "fractions": [0, 0.5], "seeds": 1}
    )
    assert retrain_settings(grid) == [
        ("random", "remove", 0.0),
        ("grad", "remove", 0.5),
        ("grad", "keep", 0.5),
        ("random", "remove", 0.5),
        ("random", "keep", 0.5),
    ]


def samples(n, start=0):
    return [{"__key__": f"s{i:03d}", "txt": f"sample {i}".encode()} for i in range(start, start + n)]


def test_sharded_sets_are_planned_sealed_and_their_splits_merged(tmp_path):
    out = OutputSet(tmp_path / "set", {"what": "test"}, size=4)
    counts = {"train": 6, "test": 3}
    plan = plan_shards([out], counts, shard_id=0, num_shards=1, overwrite=False)
    assert [(split, s) for split, s, _ in plan] == [("train", 0), ("train", 1), ("test", 0)]
    for split, s, _ in plan:
        lo = s * 4
        write_sealed(out, split, s, samples(min(4, counts[split] - lo), lo))
    assert finish(out, counts)["counts"] == {"test": 3, "train": 6}
    assert plan_shards([out], counts, 0, 1, False) == []  # sealed: nothing to redo
    stamp = (out.folder / MANIFEST).stat().st_mtime_ns
    assert finish(out, {"test": 3})["counts"] == {"test": 3, "train": 6}  # one split later: merged, never shrunk
    assert (out.folder / MANIFEST).stat().st_mtime_ns == stamp  # unchanged: not rewritten
    (out.folder / "train-000001.json").unlink()  # a seal gone: the set is incomplete again
    assert finish(out, {"test": 3}) is None and read_manifest(out.folder)["counts"]["train"] == 6


class FullDisk:
    """A file whose writes and close fail with ENOSPC, as a full file system's do."""

    def write(self, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    def close(self):
        raise OSError(errno.ENOSPC, "No space left on device")


def test_a_full_disk_names_the_path_and_the_free_space_and_leaves_no_tmp(tmp_path):
    writer = ShardWriter(tmp_path / "train-000000.tar")
    writer.file.close()
    writer.file = FullDisk()
    with pytest.raises(
        RoarError, match=r"Could not write .*train-000000.tar: No space left on device \(.* GiB free there\)"
    ):
        writer.write(samples(1)[0])
    assert list(tmp_path.iterdir()) == []  # no hidden .tmp keeps the space, no half shard


def test_a_closed_shard_reads_back_and_honours_the_umask(tmp_path):
    import os

    with ShardWriter(tmp_path / "a.tar") as writer:
        for s in samples(3):
            writer.write(s)
    assert [s["txt"] for s in read_shard(tmp_path / "a.tar")] == [b"sample 0", b"sample 1", b"sample 2"]
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "a.tar").stat().st_mode & 0o777 == 0o666 & ~umask


def test_an_experiments_optim_does_not_make_later_stages_guess_the_base_digest(tmp_path):
    """missingness_vit_shapes sets optim.lr: composed into roar-attribute's config, that partial optim must
    not be taken for the training settings (it named a base model no roar-train made)."""
    from roar.config import compose_config
    from roar.store.resolve import base_key

    common = [f"paths.output_root={tmp_path}", "experiment=missingness_vit_shapes"]
    trained = base_key(compose_config("train", common))  # roar-train knows its settings: the exact digest
    folder = trained.folder
    folder.mkdir(parents=True)
    (folder / "metrics.json").write_text("{}")
    for stage in ("attribute", "mask", "eval"):
        assert base_key(compose_config(stage, common)) == trained  # found, not guessed
