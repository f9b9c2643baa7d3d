"""``roar-eval``: evaluate rankings on the base model without retraining.

    roar-eval experiment=roar_digits
    roar-eval -m experiment=fpa_cifar10 data.root=/data/cifar augment=none,fpa,rectangle

For every ranking of ``eval.rankings`` (``grad`` ranks by abs_sum, ``ig.sum`` by the signed sum),
on the test set or a seeded subset of ``eval.max_images``:
- MIF and LIF curves of the target logit normalized to the unmasked one, in ``eval.step`` steps,
  and the fidelity A (area between LIF and MIF) with its 95% interval over images (FPA section 3,
  Table 1);
- the deletion curve: test accuracy of the unchanged model at the ROAR grid's fractions and modes
  (ROAR Fig. 3, "no retraining").
The target is the class the maps explain (roar-attribute's ``target``). Writes
``<paths.eval>/<fill>/<ranking>.json``; a file whose settings match is skipped.
"""

from pathlib import Path

import hydra
import numpy as np
import torch
from omegaconf import DictConfig
from tqdm import tqdm

from roar.artifacts import eval_file, parse_ranking
from roar.attribute import base_checkpoint, iter_maps
from roar.config import CONFIG_DIR, to_plain
from roar.data import build_dataset
from roar.data.manifest import MANIFEST, settings_hash, verify_manifest
from roar.data.shards import sha256_file
from roar.data.stats import channel_stats
from roar.errors import RoarError, reported
from roar.estimators import parse, reduce_maps
from roar.estimators.reduce import REDUCTIONS
from roar.evaluate.curves import CURVE_MODES, masked_logits, normalized_target_logits, step_fractions, summarize_curves
from roar.logging_setup import finishing_wandb, start_wandb_run
from roar.mask import donor_images
from roar.masking import MODES, check_fill, check_fractions, feature_ranks
from roar.models.checkpoint import load_classifier
from roar.utils.device import resolve_device
from roar.utils.io import atomic_write_json, read_json


def check_config(cfg) -> list:
    """(ranking, estimator, reduce) of every ranking, after checking every eval.* value."""
    rankings = []
    for name in cfg.eval.rankings:
        est, red = parse_ranking(name)
        parse(est)
        if red not in REDUCTIONS:
            raise RoarError(f"eval.rankings has {name!r}: {red!r} is not a reduction ({', '.join(REDUCTIONS)}); write e.g. ig.sum.")
        rankings.append((str(name), est, red))
    step_fractions(cfg.eval.step)
    check_fractions(cfg.eval.fractions)
    for mode in cfg.eval.modes:
        if mode not in MODES:
            raise RoarError(f"eval.modes has {mode!r}; valid modes: {', '.join(MODES)}.")
    if cfg.eval.max_images is not None and int(cfg.eval.max_images) < 1:
        raise RoarError(f"eval.max_images={cfg.eval.max_images}: give a positive count, or null for the whole test set.")
    return rankings


def subset(n: int, max_images, seed: int) -> list:
    """The evaluated test indices: all, or a seeded random subset in dataset order."""
    if max_images is None or int(max_images) >= n:
        return list(range(n))
    return sorted(np.random.default_rng(seed).choice(n, int(max_images), replace=False).tolist())


def checked_maps(folder: Path, test_set, ckpt_sha: str) -> dict:
    """The verified manifest of an estimator's maps, made from this base model and this test set."""
    if not (folder / MANIFEST).exists():
        raise RoarError(f"No maps at {folder}. Run roar-attribute with the same overrides and estimators=[{folder.name}] first.")
    manifest = verify_manifest(folder)
    if manifest.get("base_checkpoint_sha256") != ckpt_sha:
        raise RoarError(f"{folder / MANIFEST} was computed from another base checkpoint. Rerun roar-attribute (overwrite=true).")
    if manifest["dataset_fingerprints"].get("test") != test_set.fingerprint():
        raise RoarError(f"{folder / MANIFEST} was made from other test data than data={test_set.name} gives now. Rerun roar-attribute.")
    return manifest


def evaluate_rankings(model, test_set, train_set, indices, attributions: Path, rankings, cfg, mean, device, bar) -> dict:
    """{ranking: curves and deletion accuracies} over the test images ``indices``. Each image is
    loaded once for every ranking; the maps of every estimator are streamed side by side (their
    shards hold the test split in dataset order)."""
    steps = step_fractions(cfg.eval.step)
    deletion = sorted(set(check_fractions(cfg.eval.fractions)))
    fractions = sorted(set(steps) | set(deletion))
    step_at, del_at = [fractions.index(t) for t in steps], [fractions.index(t) for t in deletion]
    modes = list(CURVE_MODES.values())  # remove, keep: MIF/LIF and both deletion modes from one pass
    wanted, seed, bs = set(indices), int(cfg.seed), int(cfg.eval.batch_size)
    estimators = sorted({est for _, est, _ in rankings})
    normalized, correct, chunk = {name: [] for name, _, _ in rankings}, {name: [] for name, _, _ in rankings}, []

    def flush():
        ids = [test_set.ids[i] for i, _ in chunk]
        samples = [test_set[i] for i, _ in chunk]
        images = torch.stack([x["image"] for x in samples]).to(device)
        labels = torch.tensor([int(x["label"]) for x in samples], device=device)
        donors = donor_images(train_set, ids, seed).to(device) if cfg.fill.name == "random_image" else None
        for name, est, red in rankings:
            maps = torch.from_numpy(np.stack([entry[est][1] for _, entry in chunk])).to(device)
            target = torch.tensor([entry[est][2]["target"] for _, entry in chunk], device=device)  # the class the maps explain
            ranks = feature_ranks(reduce_maps(maps, red).flatten(1), ids, seed)
            logits = masked_logits(model, images, ranks, fractions, modes, cfg.fill, mean, donors, int(cfg.eval.max_rows))
            normalized[name].append(normalized_target_logits(logits[:, :, step_at], target).cpu().numpy())
            correct[name].append((logits[:, :, del_at].argmax(-1) == labels.view(-1, 1, 1)).cpu().numpy())
        bar.update(len(chunk))
        chunk.clear()

    streams = {est: iter_maps(attributions / est, "test") for est in estimators}
    for i, sid in enumerate(test_set.ids):
        entry = {est: next(stream, (None, None, None)) for est, stream in streams.items()}
        for est, (found, _, _) in entry.items():
            if found != sid:
                raise RoarError(f"{attributions / est}: test sample {i} is {found}, the dataset has {sid} there. Rerun roar-attribute.")
        if i in wanted:
            chunk.append((i, entry))
            if len(chunk) == bs:
                flush()
    if chunk:
        flush()
    results = {}
    for name, _, _ in rankings:
        result = summarize_curves(steps, np.concatenate(normalized[name]))
        acc = np.concatenate(correct[name]).mean(0)  # (2 modes, deletion fractions)
        result["deletion"] = {mode: {"fractions": deletion, "accuracy": acc[modes.index(mode)].tolist()} for mode in cfg.eval.modes}
        result["accuracy_unmasked"] = float(acc[0, deletion.index(0.0)]) if 0.0 in deletion else None
        results[name] = result
    return results


def evaluate(cfg: DictConfig) -> dict:
    """Evaluate every ranking of ``eval.rankings``; returns {ranking: result dict}."""
    rankings = check_config(cfg)
    ckpt = base_checkpoint(cfg)
    device = resolve_device(cfg.trainer.accelerator)
    train_set, test_set = build_dataset(cfg.data, "train"), build_dataset(cfg.data, "test")
    check_fill(cfg.fill, test_set[0]["image"].shape[0])
    mean = channel_stats(train_set, cfg.data, cfg.paths.cache_dir)["mean"]
    ckpt_sha = sha256_file(ckpt)
    indices = subset(len(test_set), cfg.eval.max_images, int(cfg.seed))
    attributions = Path(cfg.paths.attributions)
    plan, results, manifests = [], {}, {}
    for name, est, red in rankings:
        if est not in manifests:  # ig and ig.sum share one set of maps: verified once
            manifests[est] = checked_maps(attributions / est, test_set, ckpt_sha)
        manifest = manifests[est]
        settings = {
            "ranking": name, "estimator": est, "reduce": red, "fill": to_plain(cfg.fill), "dataset": cfg.data.name,
            "model": cfg.model.name, "augment": cfg.augment.name, "base_checkpoint_sha256": ckpt_sha,
            "maps_settings_hash": manifest["settings_hash"], "eval": to_plain(cfg.eval), "seed": int(cfg.seed),
            "test_ids": len(indices),
        }
        out = eval_file(cfg.paths.eval, name, cfg.fill.name)
        done = read_json(out)
        if not cfg.overwrite and isinstance(done, dict) and done.get("settings_hash") == settings_hash(settings):
            results[name] = done
        else:
            plan.append((name, red, settings, out))
    model = load_classifier(ckpt, num_classes=test_set.num_classes, image_shape=list(test_set[0]["image"].shape)).to(device) if plan else None
    print(f"[roar-eval] {cfg.model.name}-{cfg.augment.name}: {len(rankings)} rankings ({len(results)} already done), "
          f"{len(indices)} test images, fill={cfg.fill.name}, step={cfg.eval.step}, on {device}")
    with tqdm(total=len(indices) if plan else 0, unit="img", desc="eval", dynamic_ncols=True, disable=not plan) as bar:
        computed = evaluate_rankings(model, test_set, train_set, indices, attributions, [(n, s["estimator"], red) for n, red, s, _ in plan], cfg, mean, device, bar)
    for name, red, settings, out in plan:
        results[name] = {**settings, "settings_hash": settings_hash(settings), **computed[name]}
        atomic_write_json(out, results[name])
    print_fidelity(results)
    if plan:  # a rerun that computed nothing adds no wandb run
        log_to_wandb(cfg, results)
    return results


def print_fidelity(results: dict) -> None:
    print(f"  {'ranking':24s} {'fidelity A (95% CI)':>22s}  deletion accuracy (no retraining)")
    for name, r in results.items():
        f = r["fidelity"]
        curve = "  ".join(f"{m}: " + " ".join(f"{a:.3f}" for a in d["accuracy"]) for m, d in r["deletion"].items())
        print(f"  {name:24s} {f['mean']:>12.2f} ± {f['ci']:<7.2f}  {curve}")


def log_to_wandb(cfg, results: dict) -> None:
    """One wandb run (job_type eval) per base model: fidelity per ranking and the curves as a table."""
    with finishing_wandb():
        run = start_wandb_run(cfg, cfg.paths.eval, "eval", f"{cfg.name}/eval/{cfg.model.name}-{cfg.augment.name}/{cfg.fill.name}")
        if run is None:
            return
        import wandb

        rows = [[name, curve, t, v] for name, r in results.items() for curve in CURVE_MODES for t, v in zip(r["fractions"], r[curve]["mean"])]
        run.log({"curves": wandb.Table(columns=["ranking", "curve", "fraction", "normalized_logit"], data=rows)})
        run.summary.update({f"fidelity/{name}": r["fidelity"]["mean"] for name, r in results.items()})


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="eval")
def main(cfg: DictConfig):
    with reported("roar-eval"):
        evaluate(cfg)
    print(f"[roar-eval] complete -> {cfg.paths.eval}")


if __name__ == "__main__":
    main()
