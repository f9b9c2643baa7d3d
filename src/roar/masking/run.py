"""Ranked-masked WebDataset shards per estimator, mode, fill and fraction (the roar-mask stage).

With ``mask.format=buckets`` instead one set per estimator (BucketSetKey,
``shards/<base>/<ranking>/buckets/``) holds each image's rank buckets (roar.masking.buckets), serving
every (mode, fraction) of the grid and every fill, masked at load; the images are stored once per base
model, as the source holds them, in its image set (ImageSetKey, ``shards/<base>/images/``), whose
shards the bucket sets' shards match one for one.

For each estimator the stored maps are reduced (``reduce=``), pooled into patches with
``granularity=patch`` (roar.masking.removal), ranked once per image (one sort serves
every fraction; ties broken per (``maps_seed``, sample id) by roar.masking.ranking), and for every
(mode, fraction) the masked images are written to the shard set of its ShardSetKey
(``shards/<base>/<ranking>/<mode>/<fill>/<fraction>/``) in the masked-sample format
(roar.store.masked), with a ``manifest.json``. Output shard ``s`` holds the samples of attribution
shard ``s``; task ``shard_id`` writes the shards with ``s % num_shards == shard_id``.
"""

from pathlib import Path

import torch
from omegaconf import DictConfig

from roar.data import build_dataset
from roar.data.stats import channel_stats
from roar.errors import RoarError, as_list, positive_int
from roar.estimators import REDUCTIONS, parse
from roar.lineage import set_artifact, stage_lineage
from roar.masking.buckets import bucket_bits, grid_boundaries
from roar.masking.fills import bind_fill, check_fill, fill_of
from roar.masking.removal import (
    MODES,
    check_fractions,
    check_granularity,
    check_patch,
)
from roar.masking.shard_masker import ShardMasker, SourceShard
from roar.store.grid import check_grid
from roar.store.manifest import MANIFEST, shard_name, verify_manifest
from roar.store.maps import check_reduction, iter_map_shard, map_shape
from roar.store.masked import FORMATS, eight_bit
from roar.store.resolve import bucket_set_key, maps_key, ranking_patch, shard_set_key
from roar.store.sharded import OutputSet, finish, plan_shards, samples_in
from roar.utils.log import get_logger
from roar.utils.plain import to_plain
from roar.utils.progress import progress

log = get_logger(__name__)


def check_config(cfg) -> list:
    """The fractions to write, after checking every mask.* value."""
    check_grid(cfg)
    for name in as_list(cfg.mask.estimators, "mask.estimators"):
        parse(name)
    fractions = check_fractions(as_list(cfg.mask.fractions, "mask.fractions"))
    if cfg.reduce not in REDUCTIONS:  # before any folder named by the reduction (shards/<base>/grad.<reduce>/)
        raise RoarError(f"reduce={cfg.reduce!r}; valid reductions: {', '.join(REDUCTIONS)}.")
    positive_int(cfg.mask.batch_size, "mask.batch_size")
    for mode in as_list(cfg.mask.modes, "mask.modes"):
        if mode not in MODES:
            raise RoarError(f"mask.modes has {mode!r}; valid modes: {', '.join(MODES)}.")
    if cfg.mask.format not in FORMATS:
        raise RoarError(
            f"mask.format={cfg.mask.format!r}; valid formats: {', '.join(FORMATS)} (never a lossy one: masks must "
            f"stay exact)."
        )
    if not 0 <= int(cfg.mask.shard_id) < int(cfg.mask.num_shards):
        raise RoarError(f"mask.shard_id={cfg.mask.shard_id} must be in [0, mask.num_shards={cfg.mask.num_shards}).")
    bad = set(as_list(cfg.mask.splits, "mask.splits")) - {"train", "test"}
    if bad:
        raise RoarError(f"mask.splits has {sorted(bad)}; valid splits: train, test.")
    return fractions


def read_attribution_shard(tar: Path, expected_ids, image_shape):
    """Maps of one attribution shard, checked against the dataset's ids and the maps' shape (``image_shape``:
    the images', or 1 x H x W for maps stored reduced)."""
    ids, maps = [], []
    for sid, m, _ in iter_map_shard(tar):
        ids.append(sid)
        maps.append(torch.from_numpy(m))
    if ids != list(expected_ids):
        first = next((i for i, (a, b) in enumerate(zip(ids, expected_ids)) if a != b), min(len(ids), len(expected_ids)))
        found = ids[first] if first < len(ids) else "(end of shard)"
        want = expected_ids[first] if first < len(expected_ids) else "(end of split)"
        raise RoarError(
            f"{tar}: sample {first} is {found}, the dataset has {want} there. The maps were made from other data; "
            f"rerun roar-attribute."
        )
    for sid, m in zip(ids, maps):
        if tuple(m.shape) != tuple(image_shape):
            raise RoarError(
                f"{tar}: the map of sample {sid} has shape {tuple(m.shape)}, the images {tuple(image_shape)}."
            )
    return ids, torch.stack(maps)


def source_maps(cfg, fingerprints: dict) -> dict:
    """{estimator: verified manifest of its maps}, made from the data this config gives now."""
    sources = {}
    for est in cfg.mask.estimators:
        folder = maps_key(cfg, est).folder
        if not (folder / MANIFEST).exists():
            raise RoarError(
                f"No complete maps for estimator {est} at {folder}. Run roar-attribute with "
                f"attribute.estimators=[{est}] first."
            )
        manifest = verify_manifest(folder)
        check_reduction(manifest, cfg.reduce, folder)
        for split in cfg.mask.splits:
            if manifest["dataset_fingerprints"].get(split) != fingerprints[split]:
                raise RoarError(
                    f"{folder / MANIFEST} was made from other {split} data than data={cfg.data.name} gives now. "
                    f"Rerun roar-attribute."
                )
        sources[est] = manifest
    return sources


def common_settings(cfg, train_set, stats: dict, patch) -> dict:
    """What every set of this roar-mask call records besides its key: the format, maps seed, image facts."""
    image_shape = list(train_set[0]["image"].shape)
    return {
        "patch": patch,
        "format": cfg.mask.format,
        "maps_seed": int(cfg.maps_seed),
        "classes": train_set.classes,
        "image_shape": image_shape,
        "mean": stats["mean"],
        "std": stats["std"],
        "source_transform": source_transform(train_set, cfg.data),
        "mask_shape": [image_shape[0] if cfg.reduce == "none" and not patch else 1, *image_shape[1:]],
    }


def output_sets(cfg, est: str, made: dict, fill, fractions, images=None) -> list:
    """The sets one estimator's maps are masked into: its bucket set (``images``: the image set it is read
    beside), or one shard set per (mode, fraction)."""
    size, patch, image_shape = int(made["shard_size"]), made["patch"], made["image_shape"]
    if images is not None:
        key = bucket_set_key(cfg, est)
        features = num_features(image_shape, patch, cfg.reduce)
        bounds = grid_boundaries(fractions, features)
        grid = {"fractions": fractions, "boundaries": bounds, "bits": bucket_bits(bounds), "num_features": features}
        shared = {"images": "../../images", "images_settings_hash": images.digest}
        return [OutputSet(key.folder, {**key.identity, **grid, **shared, "drops_tokens": False, **made}, size)]
    sets = []
    for mode in cfg.mask.modes:
        for t in fractions:
            key = shard_set_key(cfg, est, mode, t)
            fills = {"fill": to_plain(cfg.fill), "fill_label": key.fill, "drops_tokens": fill.drops_tokens}
            sets.append(OutputSet(key.folder, {**key.identity, **fills, **made}, size))
    return sets


def check_eight_bit(cfg, train_set) -> None:
    if FORMATS[cfg.mask.format].eight_bit and eight_bit(train_set[0]["image"]) is None:
        raise RoarError(
            f"mask.format={cfg.mask.format} stores 8-bit pixels, but data={cfg.data.name}'s are not 8-bit (the first "
            f"training image has values off k/255): use mask.format=npy (exact for any data) or buckets (keeps the "
            f"source's pixels)."
        )


def describe(cfg, sources, outs, fractions, patch) -> str:
    if FORMATS[cfg.mask.format].per_ranking:
        at = ", ".join(format(t, "g") for t in fractions)
        what = f"{len(sources)} bucket sets (every mode and fill at t = {at}) and the image set"
    else:
        what = (
            f"{len(outs)} shard sets ({len(sources)} estimators x {len(cfg.mask.modes)} modes x {len(fractions)} "
            f"fractions), fill={cfg.fill.name}"
        )
    return f"{what}, format={cfg.mask.format}, reduce={cfg.reduce}, {f'{patch}x{patch} patches' if patch else 'pixels'}"


def write_masks(cfg: DictConfig) -> dict:
    """Write this task's masked shards; returns {set folder: manifest or None while shards are missing}."""
    fractions = check_config(cfg)
    datasets = {split: build_dataset(cfg.data, split) for split in ("train", "test")}
    train_set = datasets["train"]
    channels, image_shape, patch = train_set[0]["image"].shape[0], list(train_set[0]["image"].shape), ranking_patch(cfg)
    check_fill(cfg.fill, channels)
    check_patch(patch, image_shape, cfg.reduce)
    check_granularity(fill_of(cfg.fill), patch, (cfg.model.get("params") or {}).get("patch_size"))
    stats = channel_stats(train_set, cfg.data, cfg.paths.cache_dir)
    fill = bind_fill(cfg.fill, channels, stats["mean"], int(cfg.maps_seed))
    fingerprints = {split: datasets[split].fingerprint() for split in cfg.mask.splits}  # hashes every id: once
    sources = source_maps(cfg, fingerprints)
    counts = {split: len(datasets[split]) for split in cfg.mask.splits}
    check_eight_bit(cfg, train_set)
    common = common_settings(cfg, train_set, stats, patch)
    outs, plan, total, origin = {}, [], 0, {}  # origin: each set's estimator
    images = image_set(cfg, sources, common, fingerprints) if FORMATS[cfg.mask.format].per_ranking else None
    if images is not None:
        outs[images.folder] = images
        mine = plan_shards([images], counts, cfg.mask.shard_id, cfg.mask.num_shards, cfg.overwrite)
        plan, total = [(None, split, s, todo) for split, s, todo in mine], samples_in(mine, counts, images.size)
    for est, source in sources.items():
        made = {"source_settings_hash": source["settings_hash"], "shard_size": int(source["shard_size"]), **common}
        sets = output_sets(cfg, est, made, fill, fractions, images)
        outs.update({o.folder: o for o in sets})
        origin.update({o.folder: est for o in sets})
        mine = plan_shards(sets, counts, cfg.mask.shard_id, cfg.mask.num_shards, cfg.overwrite)
        plan += [(est, split, s, todo) for split, s, todo in mine]
        total += samples_in(mine, counts, int(source["shard_size"]))
    log.info(
        f"[roar-mask] {describe(cfg, sources, outs, fractions, patch)}; {len(plan)} source shard(s), {total} "
        f"images to mask"
    )
    with progress(total, "mask", "img", disable=total == 0) as bar:
        masker = ShardMasker(fill, train_set, str(cfg.reduce), int(cfg.mask.batch_size), cfg.mask.format, bar)
        for est, split, s, todo in plan:
            ds, size = datasets[split], todo[0].size
            lo, hi = s * size, min((s + 1) * size, len(ds))
            if est is None:  # the image set's shard
                masker.write_images(SourceShard(ds, split, s, lo, ds.ids[lo:hi]), images)
                continue
            ids, maps = read_attribution_shard(
                maps_key(cfg, est).folder / shard_name(split, s), ds.ids[lo:hi], map_shape(sources[est], image_shape)
            )
            masker.write(SourceShard(ds, split, s, lo, ids, maps), todo)
    made = {folder: finish(o, counts) for folder, o in outs.items()}
    if total:  # what this task made: a rerun that wrote nothing adds no wandb run
        shards_lineage(cfg, made, origin)
    return made


def shards_lineage(cfg, manifests: dict, origin: dict) -> None:
    """roar-mask's wandb run (roar.lineage): the maps it used, every finished set it made, each naming its maps."""
    base = maps_key(cfg, next(iter(origin.values()))).base if origin else None
    if base is None:
        return
    maps = {est: set_artifact(base.experiment_dir, maps_key(cfg, est).folder, "maps") for est in set(origin.values())}
    made = [
        set_artifact(base.experiment_dir, folder, "shards", [maps[origin[folder]]] if folder in origin else [])
        for folder, manifest in manifests.items()
        if manifest
    ]
    stage_lineage(cfg, "mask", base.shards_root, list(maps.values()), made)


def num_features(image_shape, patch, reduce: str) -> int:
    """How many features a ranking orders: patches, pixels, or pixel-channel elements (reduce=none)."""
    c, h, w = image_shape
    if patch:
        return (h // int(patch)) * (w // int(patch))
    return c * h * w if reduce == "none" else h * w


def source_transform(dataset, data_cfg):
    """How a set's encoded source files are decoded (the dataset's resize and crop), or None when the
    dataset stores no files (its pixels are stored instead)."""
    if dataset.encoded(0) is None:
        return None
    corner = {"corner": data_cfg.corner} if data_cfg.get("corner") else {}  # Imagenette-Corner (roar.data.local)
    return {"resize": data_cfg.get("resize"), "crop": data_cfg.get("crop"), **corner}


def image_set(cfg, sources: dict, common: dict, fingerprints: dict) -> OutputSet:
    """The base model's image set, cut like the maps it serves (every ranking's maps share one shard size)."""
    sizes = {est: int(m["shard_size"]) for est, m in sources.items()}
    if len(set(sizes.values())) > 1:
        raise RoarError(
            f"mask.format=buckets reads every ranking beside one image set, so their maps need one shard size; "
            f"they have {sizes}. Rerun roar-attribute for some of them with one attribute.shard_size (and "
            f"overwrite=true)."
        )
    key = bucket_set_key(cfg, next(iter(sources))).images
    keep = ("classes", "image_shape", "mean", "std", "source_transform")
    settings = {
        **key.identity,
        **{k: common[k] for k in keep},
        "format": "images",
        "dataset_fingerprints": fingerprints,
    }
    size = next(iter(sizes.values()))
    return OutputSet(key.folder, {**settings, "shard_size": size}, size)
