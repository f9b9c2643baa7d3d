"""``roar-mask``: ranked-masked WebDataset shards per estimator, mode, fill and fraction.

    roar-mask name=demo_digits estimators=[grad,random] mask.modes=[remove,keep]
    roar-mask verify name=demo_digits

For each estimator the stored maps are reduced (``reduce=``), ranked once per image (one sort
serves every fraction; ties broken by the seeded permutation of ``roar.masking.ranking``), and for
every (mode, fraction) the masked images are written to
``<shards>/<ranking>/<mode>/<fill>/<fraction>/{train,test}-%06d.tar`` with a ``manifest.json``.
Output shard ``s`` holds the samples of attribution shard ``s``; task ``shard_id`` writes the
shards ``s`` with ``s % num_shards == shard_id``. Each sample: ``image.npy`` (float32) or
``image.png`` (8-bit), ``mask.npy`` (bool, the removed features), ``cls`` (label), ``json``
(id, estimator, reduce, mode, fill, fraction, label).
"""

import io
import sys
from pathlib import Path

import hydra
import numpy as np
import torch
from omegaconf import DictConfig
from PIL import Image
from tqdm import tqdm

from roar.artifacts import shard_set_dir
from roar.attribute import iter_map_shard
from roar.config import CONFIG_DIR, to_plain
from roar.data import build_dataset
from roar.data.manifest import MANIFEST, finish_manifest, settings_hash, shard_complete, shard_name, verify_manifest
from roar.data.shards import ShardWriter, encode_key, json_bytes, npy_bytes
from roar.data.stats import channel_stats
from roar.errors import RoarError, reported
from roar.estimators import parse, reduce_maps
from roar.estimators.controls import sample_seed
from roar.masking import MODES, check_fill, check_fractions, feature_ranks, mask_images
from roar.utils.io import atomic_write_json

FORMATS = ("npy", "png")


def encode_image(image: torch.Tensor, fmt: str) -> dict:
    """{"image.npy": float32 bytes} or {"image.png": 8-bit PNG bytes} of a (C, H, W) image in [0, 1]."""
    if fmt == "npy":
        return {"image.npy": npy_bytes(image.numpy().astype(np.float32))}
    pixels = (image.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    buf = io.BytesIO()
    Image.fromarray(pixels[..., 0] if pixels.shape[2] == 1 else pixels).save(buf, format="PNG", compress_level=1)  # fast, still lossless
    return {"image.png": buf.getvalue()}


def donor_images(train_set, ids, seed: int) -> torch.Tensor:
    """For ``fill=random_image``: one other training image per sample id, chosen per (seed, id)."""
    n, picks = len(train_set), []
    for sid in ids:
        j = sample_seed(seed, sid, "donor") % n
        if train_set.ids[j] == sid:
            j = (j + 1) % n
        picks.append(train_set[j]["image"])
    return torch.stack(picks)


def check_config(cfg):
    for name in cfg.estimators:
        parse(name)
    fractions = check_fractions(cfg.mask.fractions)
    for mode in cfg.mask.modes:
        if mode not in MODES:
            raise RoarError(f"mask.modes has {mode!r}; valid modes: {', '.join(MODES)}.")
    if cfg.mask.format not in FORMATS:
        raise RoarError(f"mask.format={cfg.mask.format!r}; valid formats: {', '.join(FORMATS)} (never JPEG: masks must stay exact).")
    if not 0 <= int(cfg.mask.shard_id) < int(cfg.mask.num_shards):
        raise RoarError(f"mask.shard_id={cfg.mask.shard_id} must be in [0, mask.num_shards={cfg.mask.num_shards}).")
    return fractions


def read_attribution_shard(tar: Path, expected_ids, image_shape):
    """Maps of one attribution shard, checked against the dataset's ids and image shape."""
    ids, maps = [], []
    for sid, m, _ in iter_map_shard(tar):
        ids.append(sid)
        maps.append(torch.from_numpy(m))
    if ids != list(expected_ids):
        first = next((i for i, (a, b) in enumerate(zip(ids, expected_ids)) if a != b), min(len(ids), len(expected_ids)))
        found = ids[first] if first < len(ids) else "(end of shard)"
        want = expected_ids[first] if first < len(expected_ids) else "(end of split)"
        raise RoarError(f"{tar}: sample {first} is {found}, the dataset has {want} there. The maps were made from other data; rerun roar-attribute.")
    for sid, m in zip(ids, maps):
        if tuple(m.shape) != tuple(image_shape):
            raise RoarError(f"{tar}: the map of sample {sid} has shape {tuple(m.shape)}, the images {tuple(image_shape)}.")
    return ids, torch.stack(maps)


def mask(cfg: DictConfig) -> dict:
    """Write this task's masked shards; returns {set folder: manifest or None while shards are missing}."""
    fractions = check_config(cfg)
    datasets = {split: build_dataset(cfg.data, split) for split in ("train", "test")}
    train_set = datasets["train"]
    c = train_set[0]["image"].shape[0]
    check_fill(cfg.fill, c)
    stats = channel_stats(train_set, cfg.data, cfg.paths.cache_dir)
    mean, image_shape = stats["mean"], list(train_set[0]["image"].shape)
    fingerprints = {split: datasets[split].fingerprint() for split in cfg.mask.splits}  # hashes every id: once
    attributions = Path(cfg.paths.attributions)
    sources = {}
    for est in cfg.estimators:
        manifest = verify_manifest(attributions / est) if (attributions / est / MANIFEST).exists() else None
        if manifest is None:
            raise RoarError(f"No complete maps for estimator {est} at {attributions / est}. Run roar-attribute with estimators=[{est}] first.")
        for split in cfg.mask.splits:
            if manifest["dataset_fingerprints"].get(split) != fingerprints[split]:
                raise RoarError(f"{attributions / est / MANIFEST} was made from other {split} data than data={cfg.data.name} gives now. Rerun roar-attribute.")
        sources[est] = manifest
    fill_cfg = to_plain(cfg.fill)
    sets, plan = {}, []
    for est, source in sources.items():
        size = int(source["shard_size"])
        for mode in cfg.mask.modes:
            for t in fractions:
                folder = shard_set_dir(cfg.paths.shards, est, cfg.reduce, mode, cfg.fill.name, t)
                settings = {
                    "estimator": est, "reduce": cfg.reduce, "mode": mode, "fill": fill_cfg, "fraction": t,
                    "format": cfg.mask.format, "seed": int(cfg.seed), "source_settings_hash": source["settings_hash"],
                    "dataset": cfg.data.name, "classes": train_set.classes, "image_shape": image_shape,
                    "mean": mean, "std": stats["std"], "shard_size": size,
                }
                sets[folder] = (settings, settings_hash(settings), size)
        for split in cfg.mask.splits:
            n = len(datasets[split])
            for s in range(int(cfg.mask.shard_id), -(-n // size), int(cfg.mask.num_shards)):
                todo = [(f, st) for f, st in sets.items() if st[0]["estimator"] == est and not shard_complete(f, shard_name(split, s), st[1], cfg.overwrite)]
                if todo:
                    plan.append((est, split, s, size, todo))
    total = sum(min(size, len(datasets[split]) - s * size) for _, split, s, size, _ in plan)
    print(f"[roar-mask] {len(sets)} shard sets ({len(cfg.estimators)} estimators x {len(cfg.mask.modes)} modes x {len(fractions)} fractions), "
          f"fill={cfg.fill.name}, reduce={cfg.reduce}; {len(plan)} source shard(s), {total} images to mask")
    with tqdm(total=total, unit="img", desc="mask", dynamic_ncols=True, disable=total == 0) as bar:
        for est, split, s, size, todo in plan:
            ds = datasets[split]
            lo, hi = s * size, min((s + 1) * size, len(ds))
            ids, maps = read_attribution_shard(attributions / est / shard_name(split, s), ds.ids[lo:hi], ds[0]["image"].shape)
            write_masked_shard(cfg, ds, train_set, mean, lo, ids, maps, split, s, todo, bar)
    counts = {split: len(datasets[split]) for split in cfg.mask.splits}
    return {folder: finish_manifest(folder, st, digest, counts, size) for folder, (st, digest, size) in sets.items()}


def write_masked_shard(cfg, ds, train_set, mean, lo, ids, maps, split, s, todo, bar):
    """Mask one source shard for every (mode, fraction) set in ``todo``, streaming into their tars."""
    writers = {folder: ShardWriter(folder / shard_name(split, s)) for folder, _ in todo}
    for folder, _ in todo:
        (folder / shard_name(split, s)).with_suffix(".json").unlink(missing_ok=True)
    reduce, fill, fmt, seed, bs = cfg.reduce, cfg.fill.name, cfg.mask.format, int(cfg.seed), int(cfg.mask.batch_size)
    try:
        for a in range(0, len(ids), bs):
            batch_ids = ids[a : a + bs]
            samples = [ds[lo + a + k] for k in range(len(batch_ids))]
            images, labels = torch.stack([x["image"] for x in samples]), [int(x["label"]) for x in samples]
            ranks = feature_ranks(reduce_maps(maps[a : a + bs], reduce).flatten(1), batch_ids, seed)
            donors = donor_images(train_set, batch_ids, seed) if fill == "random_image" else None
            for folder, (settings, _, _) in todo:
                masked, removed = mask_images(images, ranks, settings["mode"], settings["fraction"], cfg.fill, mean, donors)
                removed_np = removed.numpy()
                common = {key: settings[key] for key in ("estimator", "reduce", "mode", "fraction")}
                for k, sid in enumerate(batch_ids):
                    writers[folder].write({
                        "__key__": encode_key(sid), **encode_image(masked[k], fmt),
                        "mask.npy": npy_bytes(removed_np[k]), "cls": str(labels[k]).encode(),
                        "json": json_bytes({"id": sid, "label": labels[k], **common, "fill": fill}),
                    })
            bar.update(len(batch_ids))
    except BaseException:
        for w in writers.values():
            w.abort()
        raise
    for folder, (_, digest, _) in todo:
        info = writers[folder].close()
        atomic_write_json(folder / shard_name(split, s).replace(".tar", ".json"), {**info, "settings_hash": digest})


def verify_all(shards_root) -> list:
    """Verify every manifest below ``shards_root``; returns the list of problems (empty when all verify)."""
    problems, n = [], 0
    for manifest in sorted(Path(shards_root).rglob(MANIFEST)):
        n += 1
        try:
            verify_manifest(manifest.parent)
        except RoarError as err:
            problems.append(str(err))
    for folder in sorted({p.parent for p in Path(shards_root).rglob("*.tar")}):
        if not (folder / MANIFEST).exists():
            problems.append(f"{folder} has shards but no {MANIFEST}: roar-mask has not finished there.")
    print(f"[roar-mask verify] {n} manifest(s) under {shards_root}: {'all verify' if not problems else f'{len(problems)} problem(s)'}")
    for p in problems:
        print(f"  {p}")
    return problems


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="mask")
def _main(cfg: DictConfig):
    with reported("roar-mask"):
        if cfg.action == "verify":
            sys.exit(1 if verify_all(cfg.paths.shards) else 0)
        sets = mask(cfg)
    done = sum(1 for m in sets.values() if m)
    print(f"[roar-mask] complete: {done}/{len(sets)} shard sets -> {cfg.paths.shards}")


def main():
    """``roar-mask [verify] overrides...``: the ``verify`` word is shorthand for ``action=verify``."""
    if len(sys.argv) > 1 and sys.argv[1] == "verify":
        sys.argv[1] = "action=verify"
    _main()


if __name__ == "__main__":
    main()
