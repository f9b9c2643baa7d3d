"""Retrain runs (``estimator=... fraction=...``): training on the masked WebDataset shards that ``roar-mask`` wrote.

The pipeline, stage by stage: shard list (from the manifest, order shuffled per (seed, epoch)) ->
split by worker (shard w::num_workers) -> samples (webdataset) -> split by node (a worker's j-th
sample goes to rank j % world) -> shuffle (buffer, seeded by (seed, epoch, rank, worker)) ->
decode (numpy/PIL, never pickle) -> batch (the DataLoader).

Splitting by node at sample level, not shard level, is what makes every rank's epoch the same
length whatever the shard sizes: a worker's quota is ceil(its samples / world) on every rank, and
a rank one short repeats one sample (as DistributedSampler pads), so DDP never waits on a rank
that ran out. Every sample is seen exactly once per epoch apart from those few repeats.
"""

import math
import multiprocessing
import random

from torch.utils.data import IterableDataset, get_worker_info

from roar.data.local import SourceDecoder
from roar.errors import RoarError
from roar.store.experiment import image_set_folder, set_folder
from roar.store.keys import METRICS
from roar.store.manifest import MANIFEST, read_manifest, shard_files, verify_manifest
from roar.store.masked import FORMATS, decode_masked_sample
from roar.store.shards import decode_key, read_shard
from roar.utils.log import get_logger

log = get_logger(__name__)

ON_ERROR = ("raise", "skip")


class MaskedShards(IterableDataset):
    name = "shards"

    def __init__(
        self, folder, split: str, manifest: dict, seed: int = 0, on_error: str = "raise", shuffle_buffer: int = 1000
    ):
        self.folder, self.split, self.seed, self.on_error = folder, split, int(seed), on_error
        self.files = [
            (folder / n, e["count"]) for n, e in sorted(manifest["files"].items()) if n.startswith(f"{split}-")
        ]
        self.num_samples = int(manifest["counts"][split])
        self.classes, self.image_shape = list(manifest["classes"]), tuple(manifest["image_shape"])
        self.dataset = manifest["dataset"]  # the source dataset, for metrics.json
        self.stats = {"mean": manifest["mean"], "std": manifest["std"]}
        self.token_drop = bool(manifest["drops_tokens"])  # the fill's trait: the mask travels with the sample
        self.manifest = manifest
        self.format = manifest.get("format", "npy")  # uint8 and buckets: masked at load (roar.masking.at_load)
        transform = manifest.get("source_transform")
        self.decode_source = SourceDecoder(transform) if transform else None
        self.mask_shape = manifest.get("mask_shape")
        self.images = image_set_folder(folder, manifest)  # a bucket set: read beside the base model's image set
        self.shuffle_buffer = int(shuffle_buffer) if split == "train" else 0
        self.rank, self.world, self.workers, self.epoch = 0, 1, 0, 0
        self.skipped = multiprocessing.get_context("spawn").Value("i", 0)  # shared with spawned ranks too

    @property
    def num_classes(self):
        return len(self.classes)

    def configure(self, rank: int, world: int, workers: int) -> None:
        self.rank, self.world, self.workers = int(rank), int(world), int(workers)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def worker_files(self, worker: int, workers: int):
        files = list(self.files)
        if self.split == "train":
            random.Random(f"{self.seed}|{self.epoch}|shards").shuffle(files)  # same order on every rank
        return files[worker :: max(1, workers)]

    def quota(self, files) -> int:
        return math.ceil(sum(count for _, count in files) / self.world)

    def __len__(self):
        n = max(1, self.workers)
        return sum(self.quota(self.worker_files(w, n)) for w in range(n))

    def _skip(self, n: int) -> None:
        with self.skipped.get_lock():
            self.skipped.value += n

    def _rank_samples(self, files):
        """This rank's samples of ``files``: the j-th sample of the worker's stream goes to rank j % world.
        A shard that ends early (truncated at a member boundary reads as a shorter valid tar) is
        caught by its count in the manifest."""
        j = 0
        for path, count in files:
            start, mine = j, sum(1 for k in range(j, j + count) if k % self.world == self.rank)
            try:
                for sample in self.read(path):
                    if j % self.world == self.rank:
                        mine -= 1
                        try:
                            yield self.decode_named(path, sample)
                        except RoarError:
                            if self.on_error == "raise":
                                raise
                            self._skip(1)
                    j += 1
                if j - start != count:
                    raise RoarError(
                        f"Shard {path} holds {j - start} samples, its manifest says {count}: it is truncated. "
                        f"Rerun roar-mask, or retrain with retrain.on_error=skip (broken samples skipped and "
                        f"counted)."
                    )
            except RoarError:
                if self.on_error == "raise":
                    raise
                self._skip(max(mine, 0))  # this rank's unread samples of the broken shard
            j = start + count

    def __iter__(self):
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info else (0, 1)
        files = self.worker_files(worker, workers)
        return self._ordered(self._rank_samples(files), self.quota(files), worker)

    def order(self, epoch: int) -> list:
        """This rank's ``epoch`` as positions in the split's samples (files in manifest order, samples in file
        order): the order ``__iter__`` yields them in with ``num_workers=0``, for the device-resident copy
        (``roar.data.resident``). The stream's draws depend only on its length, so positions shuffle
        exactly as samples do."""
        current, self.epoch = self.epoch, int(epoch)
        try:
            return self._order()
        finally:
            self.epoch = current

    def _order(self) -> list:
        files = self.worker_files(0, 1)
        offsets, start = {}, 0
        for path, count in self.files:
            offsets[path], start = start, start + count
        stream, j = [], 0
        for path, count in files:
            stream += [offsets[path] + k for k in range(count) if (j + k) % self.world == self.rank]
            j += count
        return list(self._ordered(iter(stream), self.quota(files), 0))

    def _ordered(self, stream, quota: int, worker: int):
        if self.shuffle_buffer:
            stream = shuffled(
                stream, self.shuffle_buffer, random.Random(f"{self.seed}|{self.epoch}|{self.rank}|{worker}")
            )
        first, given = None, 0
        for sample in stream:
            if given == quota:
                break
            if first is None:
                first = sample
            given += 1
            yield sample
        if given < quota and first is None:
            raise RoarError(f"{self.folder}: no readable {self.split} sample for rank {self.rank}, worker {worker}.")
        for _ in range(quota - given):  # pad to the quota every rank shares (DDP needs equal lengths)
            yield first

    def samples(self):
        """Every sample of the split once, files in manifest order, samples in file order (no rank split)."""
        for path, _ in self.files:
            for sample in self.read(path):
                yield self.decode_named(path, sample)

    def read(self, path):
        """The raw samples of one shard; a bucket shard's merged with the same-named shard of the image set,
        sample by sample (the same ids in the same order, else an error naming both)."""
        if self.images is None:
            yield from read_shard(path)
            return
        for image, buckets in zip(read_shard(self.images / path.name), read_shard(path)):
            if image["__key__"] != buckets["__key__"]:
                raise RoarError(
                    f"{path} holds {decode_key(buckets['__key__'])} where {self.images / path.name} holds "
                    f"{decode_key(image['__key__'])}: the image set was made from other data. Rerun roar-mask with "
                    f"mask.format=buckets."
                )
            yield {**image, **buckets}

    def samples_with_masks(self):
        """``samples``, each with its removed mask (the leakage audit reads them)."""
        for path, _ in self.files:
            for sample in self.read(path):
                yield decode_masked_sample(sample, True, self.decode_source, self.mask_shape)

    def decode(self, sample: dict) -> dict:
        return decode_masked_sample(sample, self.token_drop, self.decode_source, self.mask_shape)

    def decode_named(self, path, sample: dict) -> dict:
        """``decode``, or an error naming the shard and the sample (the streamed and the in-memory path alike)."""
        try:
            return self.decode(sample)
        except Exception as err:
            raise RoarError(
                f"{path}: sample {decode_key(sample['__key__'])} cannot be decoded ({err}). Rerun roar-mask, or "
                f"retrain with retrain.on_error=skip (broken samples skipped and counted)."
            ) from err

    @property
    def masked_at_load(self) -> bool:
        """The set holds source images and compact masks: the batch is masked on the device (roar.masking.at_load)."""
        return FORMATS[self.format].at_load


def shuffled(stream, size: int, rng: random.Random):
    """Buffer shuffle (webdataset's ``shuffle`` stage) with an explicit, seeded generator."""
    buffer = []
    for sample in stream:
        buffer.append(sample)
        if len(buffer) >= size:
            k = rng.randrange(len(buffer))
            buffer[k], buffer[-1] = buffer[-1], buffer[k]
            yield buffer.pop()
    rng.shuffle(buffer)
    yield from buffer


def make_command(key) -> str:
    """The roar-mask command that writes the shard set of ``key`` (a ShardSetKey), for errors."""
    base = key.base
    return (
        f"roar-mask name={base.experiment_dir.name} data={base.data} model={base.model} augment={base.augment} "
        f"mask.estimators=[{key.estimator}] mask.modes=[{key.mode}] reduce={key.reduce} fill=... (the same fill)"
    )


def checked_manifest(key, folder, splits) -> dict:
    """The (unverified) manifest of the set a retrain run of ``key`` reads from ``folder``, after checking it is
    finished, holds ``splits``, comes from the run's dataset and, for a bucket set, its image set is the one."""
    manifest, make = read_manifest(folder), make_command(key)
    if manifest is None and shard_files(folder):
        raise RoarError(
            f"{folder} holds {len(shard_files(folder))} shard(s) but its {MANIFEST} is missing or "
            f"unreadable (roar-mask did not finish, or the file was damaged). Rerun the same roar-mask to finish "
            f"it: {make}"
        )
    if manifest is None:
        raise RoarError(
            f"No masked shards at {folder} (estimator={key.estimator}, mode={key.mode}, fill={key.fill}, "
            f"fraction={key.fraction}), "
            f"nor rank buckets at {key.buckets.folder}. Run roar-attribute and then roar-mask with these settings "
            f"first: {make} "
            f"(or mask.format=buckets: one set for every mode, fill and fraction)."
        )
    for split in splits:
        if split not in manifest.get("counts", {}):
            raise RoarError(
                f"The shard set {folder} has no {split} split (its {MANIFEST} lists "
                f"{sorted(manifest.get('counts', {}))}). "
                f"Write it with {make} mask.splits=[{split}]."
            )
    if manifest.get("dataset") != key.base.data:
        raise RoarError(
            f"The shard set {folder} was made from data={manifest.get('dataset')}, not data={key.base.data}. Rerun "
            f"roar-mask."
        )
    images = image_set_folder(folder, manifest)
    if images is not None:  # a bucket set is read beside its base model's image set
        found = read_manifest(images)
        if found is None or found.get("settings_hash") != manifest.get("images_settings_hash"):
            raise RoarError(
                f"The bucket set {folder} is read with the image set {images}, which is "
                f"{'missing' if found is None else 'another one than it was made with'}. Rerun roar-mask with "
                f"mask.format=buckets."
            )
    return manifest


def verified(folder, manifest: dict, on_error: str) -> tuple:
    """(manifest, problem): the set (and a bucket set's image set) verified once. With ``on_error=skip`` a set
    that does not verify is read all the same, the mismatch printed and returned as the problem."""
    images = image_set_folder(folder, manifest)
    try:
        for checked in (images, folder) if images is not None else (folder,):
            found = verify_manifest(checked)
        return found, None
    except RoarError as err:
        if on_error == "raise":
            raise
        log.info(
            f"[roar-train] warning: {err} Training on (retrain.on_error=skip: unreadable samples are skipped and "
            f"counted); the mismatch is recorded in the run's {METRICS} as manifest_mismatch."
        )
        return manifest, str(err)


def open_shard_set(
    key, seed: int, on_error: str = "raise", shuffle_buffer: int = 1000, splits=("train", "test")
) -> list:
    """The ``splits`` of the shard set of ``key`` (a ShardSetKey: ``set_folder``) for a retrain run, after
    checking it exists, holds them, comes from the run's dataset and verifies, once. With ``on_error=skip`` a set
    that does not verify is read all the same (its unreadable samples skipped), the mismatch printed and kept as
    each split's ``manifest_problem`` for the run's metrics."""
    if on_error not in ON_ERROR:
        raise RoarError(f"retrain.on_error={on_error!r}; valid: {', '.join(ON_ERROR)}.")
    folder = set_folder(key)
    manifest, problem = verified(folder, checked_manifest(key, folder, splits), on_error)
    sets = [
        MaskedShards(folder, split, manifest, seed=seed, on_error=on_error, shuffle_buffer=shuffle_buffer)
        for split in splits
    ]
    for one in sets:
        one.manifest_problem = problem  # retrain.on_error=skip skips unreadable samples, never the verification
    return sets
