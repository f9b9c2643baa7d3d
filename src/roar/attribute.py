"""``roar-attribute``: estimator maps for every train and test image, resumable and shardable.

    roar-attribute name=demo_digits estimators=[grad,sg-grad,sg_sq-grad,vargrad-grad]

Writes ``<attributions>/<estimator>/{train,test}-%06d.tar``: one sample per image (key: the
sample id; ``map.npy``: float16 map of the image's shape divided by its largest magnitude;
``json``: id, label, target, scale), and ``manifest.json`` once every shard of every split exists.
Shard ``s`` holds samples ``[s * shard_size, (s + 1) * shard_size)`` of a split and is computed by
task ``s % num_shards``. A complete shard (its sidecar ``.json`` matches the settings and its
sha256) is skipped; everything is written atomically.
"""

import json
import math
from pathlib import Path

import hydra
import numpy as np
import torch
from omegaconf import DictConfig
from tqdm import tqdm

from roar.config import CONFIG_DIR, to_plain
from roar.data import build_dataset
from roar.data.manifest import finish_manifest, settings_hash, shard_complete, shard_name, write_shard_with_record
from roar.data.shards import decode_key, encode_key, json_bytes, load_npy, npy_bytes, read_shard, sha256_file
from roar.errors import RoarError, reported
from roar.estimators import EstimatorSuite
from roar.models.checkpoint import load_classifier
from roar.utils.device import resolve_device

TARGETS = ("predicted", "label")


def settings_for(cfg, estimator: str, ckpt_sha: str, fingerprints: dict) -> dict:
    """Everything an estimator's maps depend on; its hash is checked before a shard is trusted."""
    params = to_plain(cfg.estimator_params)
    return {
        "estimator": estimator,
        "estimator_params": params,
        "seed": int(cfg.seed),
        "target": cfg.target,
        "base_checkpoint_sha256": ckpt_sha,
        "dataset": cfg.data.name,
        "dataset_fingerprints": fingerprints,
        "shard_size": int(cfg.attribute.shard_size),
    }


def check_config(cfg) -> EstimatorSuite:
    suite = EstimatorSuite(list(cfg.estimators), **to_plain(cfg.estimator_params), seed=int(cfg.seed))
    if cfg.target not in TARGETS:
        raise RoarError(f"target={cfg.target!r}; valid targets: {', '.join(TARGETS)}.")
    a = cfg.attribute
    if not 0 <= int(a.shard_id) < int(a.num_shards):
        raise RoarError(f"attribute.shard_id={a.shard_id} must be in [0, attribute.num_shards={a.num_shards}).")
    bad = set(a.splits) - {"train", "test"}
    if bad:
        raise RoarError(f"attribute.splits has {sorted(bad)}; valid splits: train, test.")
    return suite


def base_checkpoint(cfg) -> Path:
    ckpt = Path(cfg.paths.base_dir) / "checkpoints" / "last.ckpt"
    if not (Path(cfg.paths.base_dir) / "metrics.json").is_file() or not ckpt.is_file():
        raise RoarError(
            f"No finished base model at {cfg.paths.base_dir} (metrics.json and checkpoints/last.ckpt). "
            f"Run roar-train with the same name/data/model/augment first."
        )
    return ckpt


def compute_shard(suite, model, dataset, start, stop, cfg, device, bar):
    """{estimator: [sample dicts]} for samples [start, stop) of ``dataset``."""
    out = {n: [] for n in suite.names}
    bs = int(cfg.attribute.batch_size)
    for lo in range(start, stop, bs):
        samples = [dataset[i] for i in range(lo, min(lo + bs, stop))]
        x = torch.stack([s["image"] for s in samples]).to(device)
        labels = torch.tensor([s["label"] for s in samples], device=device)
        ids = [dataset.ids[i] for i in range(lo, min(lo + bs, stop))]
        if cfg.target == "predicted":
            with torch.no_grad():
                target = model(x).argmax(1)
        else:
            target = labels
        maps = suite(model, x, target, ids)
        for name, m in maps.items():
            bad = ~torch.isfinite(m.flatten(1)).all(1)
            if bad.any():
                raise RoarError(f"Estimator {name} gave NaN or infinite maps for samples {[ids[i] for i in torch.nonzero(bad)[:, 0].tolist()]}.")
            scale = m.flatten(1).abs().amax(1).clamp_min(torch.finfo(torch.float32).tiny)
            unit = (m / scale.view(-1, *[1] * (m.dim() - 1))).to(torch.float16).cpu().numpy()
            for k, sid in enumerate(ids):
                meta = {"id": sid, "label": int(labels[k]), "target": int(target[k]), "scale": float(scale[k])}
                out[name].append({"__key__": encode_key(sid), "map.npy": npy_bytes(unit[k]), "json": json_bytes(meta)})
        bar.update(len(samples))
    return out


def attribute(cfg: DictConfig) -> dict:
    """Compute this task's shards; returns {estimator: manifest or None while shards are missing}."""
    suite = check_config(cfg)
    ckpt = base_checkpoint(cfg)
    device = resolve_device(cfg.trainer.accelerator)
    datasets = {split: build_dataset(cfg.data, split) for split in cfg.attribute.splits}
    probe = datasets[cfg.attribute.splits[0]]
    model = load_classifier(ckpt, num_classes=probe.num_classes, image_shape=list(probe[0]["image"].shape)).to(device)
    ckpt_sha = sha256_file(ckpt)
    fingerprints = {split: ds.fingerprint() for split, ds in datasets.items()}
    root = Path(cfg.paths.attributions)
    settings = {n: settings_for(cfg, n, ckpt_sha, fingerprints) for n in suite.names}
    digests = {n: settings_hash(s) for n, s in settings.items()}
    size, tasks = int(cfg.attribute.shard_size), int(cfg.attribute.num_shards)

    plan = []  # (split, shard index, estimators still to compute)
    for split, ds in datasets.items():
        for s in range(int(cfg.attribute.shard_id), math.ceil(len(ds) / size), tasks):
            todo = [n for n in suite.names if not shard_complete(root / n, shard_name(split, s), digests[n], cfg.overwrite)]
            if todo:
                plan.append((split, s, todo))
    total = sum(min(size, len(datasets[sp]) - s * size) for sp, s, _ in plan)
    print(f"[roar-attribute] {len(suite.names)} estimators, {suite.passes_per_image} forward+backward passes per image; "
          f"{len(plan)} shard(s), {total} images to compute on {device}")
    with tqdm(total=total, unit="img", desc="attribute", dynamic_ncols=True, disable=total == 0) as bar:
        for split, s, todo in plan:
            ds = datasets[split]
            shard_suite = EstimatorSuite(todo, **suite.params)
            written = compute_shard(shard_suite, model, ds, s * size, min((s + 1) * size, len(ds)), cfg, device, bar)
            for name, samples in written.items():
                write_shard_with_record(root / name / shard_name(split, s), samples, digests[name])
    counts = {split: len(ds) for split, ds in datasets.items()}
    return {n: finish_manifest(root / n, settings[n], digests[n], counts, size) for n in suite.names}


def iter_map_shard(tar: Path):
    """(sample id, float32 map in the estimator's units, meta) for every sample of one shard."""
    for sample in read_shard(tar):
        meta = json.loads(sample["json"])
        yield decode_key(sample["__key__"]), load_npy(sample["map.npy"]).astype(np.float32) * meta["scale"], meta


def iter_maps(folder, split: str):
    """``iter_map_shard`` over every shard of ``split`` in the estimator folder, in sample order."""
    for tar in sorted(Path(folder).glob(f"{split}-*.tar")):
        yield from iter_map_shard(tar)


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="attribute")
def main(cfg: DictConfig):
    with reported("roar-attribute"):
        manifests = attribute(cfg)
    done = [n for n, m in manifests.items() if m]
    print(f"[roar-attribute] complete: {len(done)}/{len(manifests)} estimators -> {cfg.paths.attributions}")


if __name__ == "__main__":
    main()
