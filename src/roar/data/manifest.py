"""manifest.json: what a set of shards was made from, and the sha256 of every file in it.

A stage trusts a set only when its manifest verifies: every listed file exists with its sha256.
"""

import hashlib
import json
import math
from pathlib import Path

from roar.data.shards import sha256_file, write_shard
from roar.errors import RoarError
from roar.utils.io import atomic_write_json, read_json

MANIFEST = "manifest.json"


def write_manifest(folder, content: dict, files: dict) -> dict:
    """Write ``content`` plus ``files`` ({name: {"sha256", "count", ...}}) as folder/manifest.json."""
    manifest = {**content, "files": files, "count": sum(f.get("count", 0) for f in files.values())}
    atomic_write_json(Path(folder) / MANIFEST, manifest)
    return manifest


def verify_manifest(folder) -> dict:
    """The manifest of ``folder`` after checking every file's sha256; RoarError naming what differs."""
    folder = Path(folder)
    manifest = read_json(folder / MANIFEST)
    if not isinstance(manifest, dict) or "files" not in manifest:
        raise RoarError(f"{folder / MANIFEST} is missing or unreadable: the stage that writes {folder} has not finished. Rerun it.")
    problems = []
    for name, entry in manifest["files"].items():
        path = folder / name
        if not path.is_file():
            problems.append(f"{path} is missing")
        elif sha256_file(path) != entry["sha256"]:
            problems.append(f"{path} has sha256 {sha256_file(path)[:12]}…, the manifest says {entry['sha256'][:12]}…")
    if problems:
        raise RoarError(f"{folder / MANIFEST} does not verify: " + "; ".join(problems) + ". Rerun the stage that wrote it with overwrite=true.")
    return manifest


# Per-shard records: a shard is trusted when its sidecar .json names these settings and its sha256.

def shard_name(split: str, index: int) -> str:
    return f"{split}-{index:06d}.tar"


def settings_hash(settings: dict) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()


def shard_complete(folder: Path, name: str, digest: str, overwrite: bool) -> bool:
    """True when the shard is complete for these settings. A shard made with other settings is an
    error (never silently replaced) unless ``overwrite``."""
    tar, side = folder / name, folder / (name[:-4] + ".json")
    record = read_json(side)
    if not tar.is_file() or record is None:
        return False
    if record.get("settings_hash") != digest:
        if overwrite:
            return False
        raise RoarError(
            f"{tar} was made with other settings (its inputs, model, data or parameters differ from this run's). "
            f"Pass overwrite=true to recompute it, or use another name=."
        )
    return sha256_file(tar) == record.get("sha256")


def write_shard_with_record(path: Path, samples, digest: str) -> dict:
    """Write a shard and, after it, its sidecar record (both atomic): the record is the shard's seal."""
    path.with_suffix(".json").unlink(missing_ok=True)  # a crash mid-write leaves no stale seal behind
    info = write_shard(path, samples)
    atomic_write_json(path.with_suffix(".json"), {**info, "settings_hash": digest})
    return info


def finish_manifest(folder: Path, settings: dict, digest: str, counts: dict, size: int):
    """Write folder/manifest.json once every shard of every split is complete; None until then."""
    files = {}
    for split, n in counts.items():
        for s in range(math.ceil(n / size)):
            name = shard_name(split, s)
            record = read_json(folder / (name[:-4] + ".json"))
            if not (folder / name).is_file() or not record or record.get("settings_hash") != digest:
                return None
            files[name] = {"sha256": record["sha256"], "count": record["count"], "bytes": record["bytes"]}
    return write_manifest(folder, {**settings, "counts": counts, "settings_hash": digest}, files)


