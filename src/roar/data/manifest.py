"""manifest.json: what a set of shards was made from, and the sha256 of every file in it.

A stage trusts a set only when its manifest verifies: every listed file exists with its sha256.
"""

from pathlib import Path

from roar.data.shards import sha256_file
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
