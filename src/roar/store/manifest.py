"""manifest.json: what a set of shards was made from, and the sha256 of every file in it.

A stage trusts a set only when its manifest verifies: every listed file exists with its sha256.
Splits are merged, never shrunk: a call that writes only the test split keeps the train split a
finished earlier call listed (when both were made with the same settings).
"""

import math
from pathlib import Path

from roar.errors import RoarError
from roar.store.io import atomic_write_json, read_json
from roar.store.names import settings_changes, settings_hash
from roar.store.shards import sha256_file

MANIFEST = "manifest.json"
SHARD_SUFFIX = ".tar"

__all__ = [
    "MANIFEST",
    "finish_manifest",
    "read_manifest",
    "seal_path",
    "settings_hash",
    "shard_complete",
    "shard_files",
    "shard_name",
    "verify_manifest",
]


def shard_name(split: str, index: int) -> str:
    return f"{split}-{index:06d}{SHARD_SUFFIX}"


def shard_files(folder) -> list:
    """The shards (tar files) in one set's folder, whether its manifest lists them or not."""
    return sorted(Path(folder).glob("*" + SHARD_SUFFIX))


def seal_path(tar: Path) -> Path:
    """The sidecar .json beside a shard: its sha256, count and settings hash. Its seal."""
    return Path(tar).with_suffix(".json")


def read_manifest(folder):
    """The manifest of ``folder`` without verifying it (None when missing or unreadable)."""
    manifest = read_json(Path(folder) / MANIFEST)
    return manifest if isinstance(manifest, dict) and "files" in manifest else None


def verify_manifest(folder) -> dict:
    """The manifest of ``folder`` after checking every file's sha256; RoarError naming what differs."""
    folder = Path(folder)
    manifest = read_manifest(folder)
    if manifest is None:
        raise RoarError(
            f"{folder / MANIFEST} is missing or unreadable: the stage that writes {folder} has not finished. Rerun it."
        )
    problems = []
    for name, entry in manifest["files"].items():
        path = folder / name
        if not path.is_file():
            problems.append(f"{path} is missing")
        elif sha256_file(path) != entry["sha256"]:
            problems.append(f"{path} has sha256 {sha256_file(path)[:12]}…, the manifest says {entry['sha256'][:12]}…")
    if problems:
        raise RoarError(
            f"{folder / MANIFEST} does not verify: "
            + "; ".join(problems)
            + ". Rerun the stage that wrote it with overwrite=true."
        )
    return manifest


def shard_complete(folder: Path, name: str, digest: str, settings: dict, overwrite: bool) -> bool:
    """True when the shard is complete for these settings. A shard made with other settings is an
    error (never silently replaced) unless ``overwrite``; the error names what differs when the seal
    records the settings it was made with. ``digest``: ``settings_hash(settings)``, computed once per set."""
    tar = Path(folder) / name
    record = read_json(seal_path(tar))
    if not tar.is_file() or record is None:
        return False
    if record.get("settings_hash") != digest:
        if overwrite:
            return False
        what = settings_changes(record["settings"], settings) if isinstance(record.get("settings"), dict) else ""
        raise RoarError(
            f"{tar} was made with other settings ("
            + (what or "its inputs, model, data or parameters differ from this run's")
            + "). Pass overwrite=true to recompute it, or use another name=."
        )
    return sha256_file(tar) == record.get("sha256")


def finish_manifest(folder: Path, settings: dict, digest: str, counts: dict, size: int):
    """Write folder/manifest.json once every shard of every split is complete; None until then.
    ``counts`` are this call's splits; the splits of an earlier manifest of the same settings are
    kept. An unchanged manifest is not rewritten."""
    folder = Path(folder)
    old = read_manifest(folder)
    if old is not None and old.get("settings_hash") == digest:
        counts = {**old.get("counts", {}), **counts}
    counts = dict(sorted(counts.items()))
    files = {}
    for split, n in counts.items():
        for s in range(math.ceil(n / size)):
            name = shard_name(split, s)
            record = read_json(seal_path(folder / name))
            if not (folder / name).is_file() or not record or record.get("settings_hash") != digest:
                return None
            files[name] = {"sha256": record["sha256"], "count": record["count"], "bytes": record["bytes"]}
    manifest = {
        **settings,
        "counts": counts,
        "settings_hash": digest,
        "files": files,
        "count": sum(f["count"] for f in files.values()),
    }
    if manifest != old:
        atomic_write_json(folder / MANIFEST, manifest)
    return manifest
