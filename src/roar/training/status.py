"""Whether a run's folder holds a finished run that still stands for its settings: a run trained with other
settings is refused, a finished one is skipped (a base model only as it was written and on the data it was
trained on), a run whose shard set was rewritten since, or that trained around broken samples of a set that
verifies now, is redone."""

from pathlib import Path

from roar.data import build_dataset
from roar.errors import RoarError
from roar.models.checkpoint import check_not_damaged, check_trained_on
from roar.store.experiment import set_folder
from roar.store.io import read_json
from roar.store.keys import IDENTITY, RunKey
from roar.store.manifest import read_manifest, verify_manifest
from roar.store.names import settings_changes
from roar.store.resolve import training_settings
from roar.store.shards import sha256_file
from roar.utils.log import get_logger

log = get_logger(__name__)


def check_run_dir_identity(cfg, key: RunKey) -> dict:
    """The run's identity (its key and its training settings), after refusing a folder that holds a run
    trained with other ones: a changed recipe never resumes or skips into an old run, nor does a run whose
    identity is missing. A folder whose run never trained (no checkpoint, no metrics) is taken over by the
    corrected command."""
    now = {"identity": key.identity, "training": training_settings(cfg, run=True)}
    saved = read_json(key.identity_file)
    trained = key.metrics.exists() or key.checkpoint.exists()
    if cfg.overwrite or not trained or saved == now:
        return now
    if not isinstance(saved, dict):  # settings unknown: never skipped or resumed into
        raise RoarError(
            f"{key.folder} holds a trained run whose settings are unknown ({IDENTITY} is missing or unreadable), so "
            f"it cannot be checked against this command. Pass overwrite=true to retrain it with these settings, or "
            f"give this run its own name (name=...)."
        )
    raise RoarError(
        f"{key.folder} holds a run trained with other settings ({settings_changes(saved, now)}). "
        f"Give this run its own name (name=...), or pass overwrite=true to replace that run."
    )


def shard_set_hash(key: RunKey):
    """The settings hash of the shard set a retrain run trains on (None for a base model or a missing set)."""
    manifest = read_manifest(set_folder(key.shards)) if key.shards else None
    return manifest.get("settings_hash") if manifest else None


def check_same_data(cfg, base, metrics: dict) -> None:
    """A complete base model of this name and settings is trusted only on the data it was trained on
    (``check_trained_on``); data read from a folder only: the embedded data cannot differ."""
    if metrics.get("data_fingerprints") and cfg.data.get("root") is not None:
        now = {split: build_dataset(cfg.data, split).fingerprint() for split in metrics["data_fingerprints"]}
        check_trained_on(base.folder, metrics, now, Path(str(cfg.data.root)).resolve())


def finished_metrics(key: RunKey):
    """The run's metrics when its metrics.json is finished (parses and holds test_acc), else None."""
    metrics = read_json(key.metrics)
    return metrics if isinstance(metrics, dict) and "test_acc" in metrics else None


def outdated(key: RunKey, metrics) -> str | None:
    """Why a finished retrain run no longer stands for its setting, or None: its shard set was
    rewritten since it trained (other maps, fill, maps seed or format), or it trained around broken
    samples (retrain.on_error=skip) and its shard set verifies now; or, for an ensemble, a member's
    checkpoint changed since it was assembled."""
    if metrics is None:
        return None
    for path, digest in (metrics.get("members") or {}).items():
        if not Path(path).is_file() or sha256_file(path) != digest:
            return f"ensemble member {path} changed after {key.folder} was assembled"
    if key.shards is None:
        return None
    if metrics.get("shards_settings_hash") != shard_set_hash(key):
        return f"{set_folder(key.shards)} was rewritten after {key.folder} trained on it"
    if metrics.get("skipped_samples") and shards_verify(key):
        return f"{key.folder} skipped {metrics['skipped_samples']} broken samples and its shards verify now"
    if metrics.get("manifest_mismatch") and shards_verify(key):
        return f"{key.folder} trained on shards that did not verify, and they verify now"
    return None


def shards_verify(key: RunKey) -> bool:
    try:
        verify_manifest(set_folder(key.shards))
    except RoarError:
        return False
    return True


def finished_run(cfg, key: RunKey, quiet: bool) -> tuple:
    """(metrics of a complete run to skip to, identity): a complete run whose inputs are unchanged is returned
    (a base model only as it was written, on the data it was trained on); a stale or overwritten one is
    cleared for retraining."""
    identity = check_run_dir_identity(cfg, key)
    done = finished_metrics(key)
    stale = outdated(key, done)  # read once: outdated may re-hash the whole shard set
    if done and not stale and not cfg.overwrite:
        if key.shards is None:  # a base model is trusted by every later stage: only as it was written
            check_not_damaged(key.base.checkpoint, done)
            check_same_data(cfg, key.base, done)
        if not quiet:
            log.info(
                f"[roar-train] {key.metrics} is complete (test_acc={done['test_acc']:.4f}); skipping. "
                f"overwrite=true redoes it."
            )
        return done, identity
    if stale:
        log.info(f"[roar-train] {stale}: retraining that run.")
    if cfg.overwrite or stale:
        for old in (key.metrics, key.checkpoint):
            old.unlink(missing_ok=True)
    return None, identity
