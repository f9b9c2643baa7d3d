"""wandb artifacts with lineage: the base model, each maps set, each shard set and the report as artifacts,
and every run declaring what it used, so a project's lineage graph reads
report <- base model -> maps -> shard set -> retrain run (and eval <- maps).

By reference: an artifact holds its set's small record (a shard set's ``manifest.json`` with every file's
sha256, a run's ``identity.json`` and ``metrics.json``), so a changed set is a new version, and ``file://``
references to the data itself, never uploaded (``checksum=False``: wandb records the path; the record's
hashes already say what the bytes are). Its metadata says what it is and what it was made from.

Offline, which is roar's default: wandb's ``use_artifact`` refuses an offline run ("Cannot use artifact
when in offline mode", wandb 0.31). What ``use_artifact`` does online for an artifact object the server has
not served (a draft) is log that artifact with ``use_after_commit`` and without claiming it as the run's
output (``is_user_created``); at upload the server finds the version with that digest and records the run
as its user (wandb-core's ``ArtifactSaver.Save``: ``createArtifact``, then ``UseArtifact`` once committed).
``declare_used`` does exactly that, online or offline, so the offline run files carry the whole graph and
``make wandb-sync`` (which syncs runs in the order they started, producers first) puts it on the server.
"""

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path

from roar.store.experiment import image_set_folder, set_folder
from roar.store.io import read_json
from roar.store.keys import BaseKey, RunKey
from roar.store.manifest import MANIFEST, read_manifest
from roar.tracking import finishing_wandb, start_wandb_run

NAME_CHARS = re.compile(r"[^A-Za-z0-9._-]")
MAX_NAME = 128  # wandb's limit on an artifact's name


@dataclass(frozen=True)
class ArtifactSpec:
    """One artifact: its name and type, the small record files it holds by content, the data it holds by
    reference (name in the artifact, local path), and its metadata."""

    name: str
    type: str
    files: tuple = ()
    references: tuple = ()
    metadata: dict = field(default_factory=dict)

    def build(self):
        import wandb

        artifact = wandb.Artifact(self.name, type=self.type, metadata=self.metadata)
        for path in self.files:
            artifact.add_file(str(path), name=Path(path).name)
        for name, path in self.references:
            artifact.add_reference(Path(path).resolve().as_uri(), name=f"data/{name}", checksum=False)
        return artifact


def artifact_name(*parts) -> str:
    """``parts`` joined by "-" in the characters wandb allows, at most 128 of them (a longer name keeps its
    start and ends in a digest of the whole)."""
    name = NAME_CHARS.sub("_", "-".join(str(p) for p in parts))
    if len(name) <= MAX_NAME:
        return name
    return f"{name[: MAX_NAME - 17]}-{hashlib.sha256(name.encode()).hexdigest()[:16]}"


def folder_name(experiment_dir, folder) -> str:
    """An artifact's name from its folder: the experiment's name, then the folder's parts below it."""
    parts = Path(folder).resolve().relative_to(Path(experiment_dir).resolve()).parts
    return artifact_name(Path(experiment_dir).name, *parts)


def base_artifact(key: BaseKey) -> ArtifactSpec:
    """A finished base model: its identity and metrics by content, its last checkpoint by reference."""
    metrics = read_json(key.metrics) or {}
    return ArtifactSpec(
        artifact_name(Path(key.experiment_dir).name, "base", key.name),
        "model",
        files=(key.identity_file, key.metrics),
        references=((key.checkpoint.name, key.checkpoint),),
        metadata={**key.identity, "test_acc": metrics.get("test_acc"), "folder": str(key.folder)},
    )


def set_artifact(experiment_dir, folder, kind: str, made_from=()) -> ArtifactSpec | None:
    """A finished set of shards under the experiment (an estimator's maps, a shard set, an image or bucket
    set): its manifest by content, every file it lists by reference; None while it has no manifest.
    ``made_from``: the artifacts it was made from, named in its metadata."""
    folder = Path(folder)
    manifest = read_manifest(folder)
    if not manifest:
        return None
    return ArtifactSpec(
        folder_name(experiment_dir, folder),
        kind,
        files=(folder / MANIFEST,),
        references=tuple((name, folder / name) for name in sorted(manifest["files"])),
        metadata={
            "settings_hash": manifest.get("settings_hash"),
            "count": manifest.get("count"),
            "folder": str(folder),
            "made_from": [spec.name for spec in made_from],
        },
    )


def folder_artifact(experiment_dir, folder, kind: str, record: Path, names) -> ArtifactSpec:
    """Files ``names`` of ``folder`` (a report) by reference, its ``record`` of them by content."""
    folder = Path(folder)
    return ArtifactSpec(
        folder_name(experiment_dir, folder),
        kind,
        files=(record,),
        references=tuple((n, folder / n) for n in sorted(names) if (folder / n).is_file()),
        metadata={"folder": str(folder)},
    )


def declare_used(run, specs) -> None:
    """Declare that ``run`` used these artifacts (``use_artifact`` of a draft, which also works offline: see
    the module's docstring)."""
    for spec in specs:
        if spec is not None:
            run._log_artifact(spec.build(), is_user_created=True, use_after_commit=True)


def log_made(run, specs) -> None:
    """Log these artifacts as what ``run`` made."""
    for spec in specs:
        if spec is not None:
            run.log_artifact(spec.build())


def training_lineage(run, key: RunKey) -> None:
    """A finished training run's lineage: a base model logs itself; a retrain run declares the set it read
    (``set_folder``: its shard set, or its ranking's bucket set and the image set read beside it)."""
    if key.shards is None:
        log_made(run, [base_artifact(key.base)])
        return
    folder = set_folder(key.shards)
    images = image_set_folder(folder, read_manifest(folder) or {})
    declare_used(run, [set_artifact(key.base.experiment_dir, f, "shards") for f in (folder, images) if f])


def stage_lineage(cfg, stage: str, folder, used, made) -> None:
    """A stage that trains nothing (roar-attribute, roar-mask) as one wandb run of job_type ``stage`` in
    ``folder``, declaring ``used`` and logging ``made``; nothing when the logger is not wandb or nothing was
    made."""
    made = [spec for spec in made if spec is not None]
    if not made:
        return
    with finishing_wandb():
        run = start_wandb_run(cfg, folder, stage, f"{cfg.name}/{stage}/{Path(folder).name}")
        if run is not None:
            declare_used(run, used)
            log_made(run, made)
