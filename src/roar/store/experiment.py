"""What one experiment folder holds, found through the keys: the set a retrain run reads, its base models,
its retrain runs' metrics, its roar-eval results, its shard sets' audits, and the verification of every map
and shard set.

The report and ``roar-mask verify`` enumerate an experiment here; nothing outside the store globs an
experiment folder or reads a setting back out of a folder name.
"""

import os
from pathlib import Path

from roar.errors import RoarError
from roar.store.keys import AUDIT, METRICS, BaseKey
from roar.store.manifest import MANIFEST, SHARD_SUFFIX, verify_manifest
from roar.utils.log import get_logger

log = get_logger(__name__)

SETS = ("attributions", "shards")  # the folders whose sets carry manifests (maps; masked shards and buckets)
RESULTS = ("runs", "base", "eval", "toy")  # the folders the report reads


def runs_dir(experiment_dir) -> Path:
    """Every retrain run of the experiment lies below it (RunKey.folder)."""
    return Path(experiment_dir) / "runs"


def shards_dir(experiment_dir) -> Path:
    """Every shard and bucket set of the experiment lies below it (ShardSetKey.folder, BucketSetKey.folder)."""
    return Path(experiment_dir) / "shards"


def has_results(experiment_dir) -> bool:
    """Whether the experiment holds anything the report reads (runs, base models, evaluations, the toy)."""
    return any((Path(experiment_dir) / part).exists() for part in RESULTS)


def set_folder(key) -> Path:
    """The folder a retrain run of ``key`` (a ShardSetKey) reads: its materialized set when one is
    complete, else its ranking's bucket set (``mask.format=buckets``) when that is, else the
    materialized set's folder (for the error)."""
    for folder in (key.folder, key.buckets.folder):
        if (folder / MANIFEST).exists():
            return folder
    return key.folder


def image_set_folder(folder, manifest: dict) -> Path | None:
    """The image set a bucket set is read beside (its manifest names it relative to its folder), else None."""
    images = manifest.get("images")
    return Path(os.path.normpath(Path(folder) / images)) if images else None


def base_keys(experiment_dir) -> list:
    """Every base model's key under ``base/`` (finished or not), by name."""
    folder = Path(experiment_dir) / "base"
    found = []
    for path in sorted(folder.iterdir()) if folder.is_dir() else []:
        try:
            found.append(BaseKey.from_folder(path))
        except RoarError:
            continue  # not a base folder (a user's notes, a stray file): never a base model
    return found


def trained_bases(experiment_dir) -> dict:
    """{name: BaseKey} of the base models with a checkpoint (eval.order_from picks one of them)."""
    return {key.name: key for key in base_keys(experiment_dir) if key.checkpoint.is_file()}


def base_metrics_files(experiment_dir) -> list:
    """The metrics files of the finished base models."""
    return [key.metrics for key in base_keys(experiment_dir) if key.metrics.is_file()]


def run_metrics_files(experiment_dir) -> list:
    """The metrics files of every finished retrain run below ``runs/`` (any base, setting, variant, seed)."""
    return sorted(runs_dir(experiment_dir).rglob(METRICS))


def eval_files(experiment_dir) -> list:
    """(base name, fill label, path) of every roar-eval result: ``eval/<base>/<fill>/<ranking>.json``
    (soundness results sit under the fill ``soundness``)."""
    root = Path(experiment_dir, "eval")
    return [(p.parent.parent.name, p.parent.name, p) for p in sorted(root.glob("*/*/*.json"))]


def audit_files(experiment_dir) -> list:
    """(base name, path) of every shard set's leakage audit (``shards/<base>/.../audit.json``)."""
    root = shards_dir(experiment_dir)
    return [(p.relative_to(root).parts[0], p) for p in sorted(root.rglob(AUDIT))]


def has_sets(experiment_dir) -> bool:
    """Whether the experiment holds any maps or shard sets (what ``roar-mask verify`` checks)."""
    return any((Path(experiment_dir) / part).is_dir() for part in SETS)


def experiments_with_sets(output_root) -> list:
    """The names of the experiments under ``output_root`` that hold maps or shard sets."""
    root = Path(output_root)
    return sorted(p.name for p in root.iterdir() if has_sets(p)) if root.is_dir() else []


def verify_all(experiment_dir) -> list:
    """Verify every manifest of an experiment (maps and shard sets); returns the problems (empty when all verify)."""
    problems, n = [], 0
    for root in (Path(experiment_dir) / part for part in SETS):
        for manifest in sorted(root.rglob(MANIFEST)):
            n += 1
            try:
                verify_manifest(manifest.parent)
            except RoarError as err:
                problems.append(str(err))
        for folder in sorted({p.parent for p in root.rglob("*" + SHARD_SUFFIX)}):
            if not (folder / MANIFEST).exists():
                problems.append(
                    f"{folder} has shards but no {MANIFEST}: the stage that writes it has not finished there."
                )
    status = "all verify" if not problems else f"{len(problems)} problem(s)"
    log.info(f"[roar-mask verify] {n} manifest(s) under {experiment_dir}: {status}")
    for p in problems:
        log.info(f"  {p}")
    return problems
