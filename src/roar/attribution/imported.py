"""Maps computed elsewhere, stored as the ranking ``imported-<name>`` (``roar-attribute import=<path>``).

``import=`` names one of:
- a folder holding, for every split of ``attribute.splits``, ``<split>.npy`` (an array of shape
  (N, C or 1, H, W), or (N, H, W), in the dataset's order) or a folder ``<split>/`` of one ``<index>.npy``
  per sample (index 0 .. N-1 in the dataset's order);
- an ``.npz`` file with one such array per split, named by the split;
- an ``.npy`` file, when ``attribute.splits`` names one split (e.g. ``[test]`` for no-retrain curves only).

Every count, shape and value (NaN, infinity) is checked before anything is written. The maps are then
stored in the maps format (roar.store.maps), a map of one channel repeated over the image's channels, so
masks, retraining, no-retrain curves and the report treat them like any ranking. Their identity is the
sha256 of the file(s) read; the target recorded with each map is the one ``attribute.target`` names (the
base model's prediction by default), as for computed maps. The same name with other file(s) is refused
unless ``overwrite=true``.
"""

import hashlib
import re
from pathlib import Path

import numpy as np
import torch

from roar.attribution.run import class_targets, maps_lineage, storable, stored_reduction
from roar.classifier.load import load_base_model
from roar.data import build_dataset
from roar.errors import RoarError, as_list
from roar.models.checkpoint import check_trained_on
from roar.store.io import read_json
from roar.store.manifest import MANIFEST
from roar.store.maps import map_sample
from roar.store.resolve import base_key, maps_key
from roar.store.sharded import OutputSet, finish, plan_shards, samples_in, write_sealed
from roar.store.shards import sha256_file
from roar.utils.device import resolve_device
from roar.utils.log import get_logger
from roar.utils.progress import progress

log = get_logger(__name__)

PREFIX = "imported-"


def import_name(cfg) -> str:
    """The ranking the maps become: ``imported-<import_name>``, or ``imported-<the path's stem>`` with every
    character besides letters, digits and '_' written as '_'."""
    given = cfg.get("import_name")
    if given is not None:
        if not re.fullmatch(r"[A-Za-z0-9_]+", str(given)):
            raise RoarError(
                f"import_name={given!r}: use letters, digits and '_' only (it names a folder and a ranking)."
            )
        return PREFIX + str(given)
    stem = Path(str(cfg["import"])).expanduser().name.removesuffix(".npy").removesuffix(".npz")
    return PREFIX + (re.sub(r"[^A-Za-z0-9_]", "_", stem) or "maps")


class FolderMaps:
    """One ``<index>.npy`` per sample of a split, read on demand like an array's rows."""

    def __init__(self, folder: Path, expected: int):
        self.folder = folder
        found = {int(p.stem): p for p in folder.glob("*.npy") if p.stem.isdigit()}
        missing = [i for i in range(expected) if i not in found]
        extra = sorted(set(found) - set(range(expected)))
        if missing or extra:
            raise RoarError(
                f"{folder} must hold one <index>.npy per sample, 0 to {expected - 1} (the split's {expected} images in "
                f"the dataset's order); "
                + (f"missing {missing[:5]}{' ...' if len(missing) > 5 else ''}" if missing else f"extra {extra[:5]}")
                + "."
            )
        self.files = [found[i] for i in range(expected)]
        self.shape = (expected, *np.load(self.files[0], mmap_mode="r").shape) if self.files else (0,)

    def __len__(self):
        return len(self.files)

    def __getitem__(self, rows: slice):
        return np.stack([np.load(f) for f in self.files[rows]])


def digest_of(files) -> str:
    """sha256 of the files read (one file: its own sha256; several: of their names and sha256s in order)."""
    files = list(files)
    if len(files) == 1:
        return sha256_file(files[0])
    joined = "\n".join(f"{Path(f).name} {sha256_file(f)}" for f in files)
    return hashlib.sha256(joined.encode()).hexdigest()


def open_source(path: Path, splits: list, counts: dict) -> tuple:
    """({split: array-like of maps}, sha256) of ``import=<path>``; a clear error for what it cannot be."""
    if not path.exists():
        raise RoarError(f"import={path} does not exist: give the .npy/.npz file or the folder of the maps.")
    if path.is_file() and path.suffix == ".npz":
        archive = np.load(path, mmap_mode="r")
        absent = [s for s in splits if s not in archive.files]
        if absent:
            raise RoarError(
                f"import={path} holds arrays {archive.files}; it needs one per split {splits} (missing {absent})."
            )
        return {s: archive[s] for s in splits}, sha256_file(path)
    if path.is_file():
        if path.suffix != ".npy" or len(splits) != 1:
            raise RoarError(
                f"import={path}: one .npy file holds the maps of one split (attribute.splits=[test], say); for "
                f"{splits} give an .npz with one array per split, or a folder with "
                f"{', '.join(s + '.npy' for s in splits)}."
            )
        return {splits[0]: np.load(path, mmap_mode="r")}, sha256_file(path)
    arrays, files = {}, []
    for split in splits:
        if (path / f"{split}.npy").is_file():
            arrays[split] = np.load(path / f"{split}.npy", mmap_mode="r")
            files.append(path / f"{split}.npy")
        elif (path / split).is_dir():
            arrays[split] = FolderMaps(path / split, counts[split])
            files += arrays[split].files
        else:
            raise RoarError(f"import={path} has neither {split}.npy nor a folder {split}/ of <index>.npy files.")
    return arrays, digest_of(files)


def check_maps(where: str, maps, count: int, image_shape) -> None:
    """Refuse a split's maps whose count, shape or values do not fit its images (one pass, before any write)."""
    c, h, w = image_shape
    shape = tuple(maps.shape)
    if shape[0] != count:
        raise RoarError(f"{where} holds {shape[0]} maps; the split has {count} images (one map each, in its order).")
    per = shape[1:] if len(shape) == 4 else (1, *shape[1:])
    if len(shape) not in (3, 4) or per[1:] != (h, w) or per[0] not in (1, c):
        raise RoarError(
            f"{where} has maps of shape {shape[1:]}; the images are {c} x {h} x {w}: give (N, {c}, {h}, {w}), "
            f"(N, 1, {h}, {w}) or (N, {h}, {w})."
        )
    if not np.issubdtype(np.dtype(getattr(maps, "dtype", np.float32)), np.number):
        raise RoarError(f"{where} holds {maps.dtype} values; maps are numbers.")
    for lo in range(0, count, 1024):
        bad = ~np.isfinite(np.asarray(maps[lo : lo + 1024], dtype=np.float64).reshape(min(1024, count - lo), -1)).all(1)
        if bad.any():
            raise RoarError(f"{where}: the map of sample {lo + int(np.argmax(bad))} holds NaN or infinite values.")


def settings_for(cfg, name: str, sha: str, ckpt_sha: str, fingerprints: dict) -> dict:
    """What imported maps depend on: the file(s) read, the target recorded with them, the base and the data."""
    reduced = stored_reduction(cfg)
    return {
        "estimator": name,
        "imported_sha256": sha,
        **({"reduced_by": reduced} if reduced else {}),
        "target": cfg.attribute.target,
        "base_checkpoint_sha256": ckpt_sha,
        "dataset": cfg.data.name,
        "dataset_fingerprints": fingerprints,
        "shard_size": int(cfg.attribute.shard_size),
    }


def refuse_other_file(folder: Path, sha: str, overwrite: bool) -> None:
    made = read_json(folder / MANIFEST) or {}
    if made.get("imported_sha256") not in (None, sha) and not overwrite:
        raise RoarError(
            f"{folder} holds maps imported from other file(s) (sha256 {made['imported_sha256'][:12]}..., these are "
            f"{sha[:12]}...). Give these another import_name=, or overwrite=true to replace them."
        )


def import_maps(cfg) -> dict:
    """Check and store ``import=<path>`` as ``imported-<name>``; returns {name: manifest, or None while shards of
    other tasks are missing}."""
    name, path = import_name(cfg), Path(str(cfg["import"])).expanduser()
    splits = [str(s) for s in as_list(cfg.attribute.splits, "attribute.splits")]
    datasets = {split: build_dataset(cfg.data, split) for split in splits}
    counts = {split: len(ds) for split, ds in datasets.items()}
    image_shape = tuple(datasets[splits[0]][0]["image"].shape)
    arrays, sha = open_source(path, splits, counts)
    for split in splits:
        check_maps(f"import={path} ({split})", arrays[split], counts[split], image_shape)
    key, device = base_key(cfg), resolve_device(cfg.trainer.accelerator)
    model = load_base_model(key, cfg.model, datasets[splits[0]].num_classes, list(image_shape)).to(device)
    fingerprints = {split: ds.fingerprint() for split, ds in datasets.items()}
    check_trained_on(key.folder, read_json(key.metrics) or {}, fingerprints, cfg.data.get("root"))
    out = OutputSet(
        maps_key(cfg, name).folder,
        settings_for(cfg, name, sha, sha256_file(key.checkpoint), fingerprints),
        int(cfg.attribute.shard_size),
    )
    refuse_other_file(out.folder, sha, bool(cfg.overwrite))
    plan = plan_shards([out], counts, cfg.attribute.shard_id, cfg.attribute.num_shards, cfg.overwrite)
    total = samples_in(plan, counts, out.size)
    log.info(f"[roar-attribute] import={path} -> {name}: {len(plan)} shard(s), {total} maps, sha256 {sha[:12]}...")
    with progress(total, "import", "map", disable=total == 0) as bar:
        for split, s, _ in plan:
            ds, lo = datasets[split], s * out.size
            samples = stored_samples(cfg, name, model, ds, arrays[split], range(lo, min(lo + out.size, len(ds))))
            write_sealed(out, split, s, samples)
            bar.update(len(samples))
    made = {name: finish(out, counts)}
    if total:
        maps_lineage(cfg, made)
    return made


def stored_samples(cfg, name: str, model, ds, maps, rows: range) -> list:
    """The maps-format samples of ``rows``: each map (broadcast to the image's channels), its label and the
    class ``attribute.target`` names."""
    samples, bs, device = [], int(cfg.attribute.batch_size), next(model.parameters()).device
    for lo in range(rows.start, rows.stop, bs):
        hi = min(lo + bs, rows.stop)
        batch = [ds[i] for i in range(lo, hi)]
        x = torch.stack([b["image"] for b in batch]).to(device)
        labels = torch.tensor([b["label"] for b in batch], device=device)
        target = class_targets(model, x, labels, cfg.attribute.target)
        m = torch.from_numpy(np.asarray(maps[lo:hi], dtype=np.float32).reshape(hi - lo, -1, *x.shape[2:]))
        unit, scale = storable(name, m.expand(-1, x.shape[1], -1, -1).contiguous(), stored_reduction(cfg))
        samples += [map_sample(ds.ids[i], unit[k], labels[k], target[k], scale[k]) for k, i in enumerate(range(lo, hi))]
    return samples
