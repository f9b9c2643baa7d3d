"""Evaluating rankings on the base model without retraining (the roar-eval stage).

For every ranking of ``eval.rankings`` (``grad`` ranks by abs_sum, ``ig.sum`` by the signed sum),
on the test set or a seeded subset of ``eval.max_images``:
- MIF and LIF curves of the target logit normalized to the unmasked one, in ``eval.step`` steps,
  and the fidelity A (area between LIF and MIF) with its 95% interval over images (FPA section 3,
  Table 1);
- the deletion curve: test accuracy of the unchanged model at the ROAR grid's fractions and modes
  (ROAR Fig. 3, "no retraining").
The target is the class the maps explain (``attribute.target``); with ``eval.order_from`` (another
model's maps) this model's own class of that kind, recorded as ``target``. Ties and the subset are drawn
from ``maps_seed``. Writes each ranking's EvalKey file (``eval/<base>/<fill>/<ranking>.json``); a
file whose settings match is skipped.
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from omegaconf import DictConfig

from roar.augment import AUGMENTS
from roar.classifier.load import load_base_model
from roar.data import build_dataset
from roar.data.stats import channel_stats
from roar.errors import RoarError, as_list, positive_int
from roar.estimators import parse
from roar.estimators.reduce import REDUCTIONS
from roar.estimators.registry import stores_steps
from roar.evaluate.consistency import run_consistency
from roar.evaluate.context import EvalContext
from roar.evaluate.curves import CURVE_MODES, step_fractions
from roar.evaluate.rankings import RankingPass
from roar.evaluate.sis import check_sis
from roar.evaluate.soundness import check_soundness, run_soundness
from roar.lineage import base_artifact, declare_used, set_artifact
from roar.masking.fills import augment_fill_config, bind_fill, check_fill, fill_of, same_painting
from roar.masking.removal import MODES, check_fractions, check_granularity, check_patch
from roar.store.experiment import trained_bases
from roar.store.grid import check_grid
from roar.store.io import atomic_write_json, read_json
from roar.store.keys import MapsKey
from roar.store.manifest import MANIFEST, verify_manifest
from roar.store.maps import check_reduction
from roar.store.names import fill_label, parse_ranking, ranking_name, settings_hash
from roar.store.resolve import base_key, eval_key, ranking_patch
from roar.store.shards import sha256_file
from roar.tracking import finishing_wandb, start_wandb_run
from roar.utils.device import resolve_device
from roar.utils.log import get_logger
from roar.utils.plain import to_plain
from roar.utils.progress import progress

log = get_logger(__name__)

OWN_FILES = ("consistency", "soundness")  # eval sections with their own result files: not a ranking's settings


def check_config(cfg) -> list:
    """(ranking, estimator, reduce) of every ranking, after checking every eval.* value. The ranking's
    name carries the granularity (``grad.patch4`` with ``granularity=patch``)."""
    check_grid(cfg)
    rankings = []
    positive_int(cfg.eval.batch_size, "eval.batch_size")
    patch = ranking_patch(cfg)
    for name in as_list(cfg.eval.rankings, "eval.rankings"):
        est, red, named_patch = parse_ranking(name)
        if named_patch is not None:
            raise RoarError(
                f"eval.rankings has {name!r}: give the granularity once for all rankings, granularity=patch "
                f"patch_size={named_patch}."
            )
        parse(est)
        if red not in REDUCTIONS:
            raise RoarError(
                f"eval.rankings has {name!r}: {red!r} is not a reduction ({', '.join(REDUCTIONS)}); write e.g. ig.sum."
            )
        rankings.append((ranking_name(est, red, patch), est, red))
    step_fractions(cfg.eval.step)
    check_sis(cfg.eval.sis)
    check_soundness(cfg.eval.soundness)
    check_fractions(as_list(cfg.eval.fractions, "eval.fractions"))
    for mode in as_list(cfg.eval.modes, "eval.modes"):
        if mode not in MODES:
            raise RoarError(f"eval.modes has {mode!r}; valid modes: {', '.join(MODES)}.")
    if cfg.eval.max_images is not None and int(cfg.eval.max_images) < 1:
        raise RoarError(
            f"eval.max_images={cfg.eval.max_images}: give a positive count, or null for the whole test set."
        )
    return rankings


def training_fill_mismatch(cfg, fill, token_model: bool):
    """A line saying the base model was trained with another perturbation than roar-eval masks with,
    or None: FPA's premise is that the two are the same (FPA section 2), so a mismatch is worth a word.
    ``fill``: the BoundFill roar-eval masks with; both are fills of one registry, compared as configs."""
    augment = AUGMENTS[cfg.augment.name]
    if not augment.perturbs or fill.drops_tokens or (cfg.augment.name == "missingness" and token_model):
        return None
    trained = augment_fill_config(cfg.augment.get("fill", "channel_mean"))
    if same_painting(trained, to_plain(cfg.fill), len(fill.mean)):
        return None
    return (
        f"[roar-eval] warning: the base model was trained with augment={cfg.augment.name} filling with "
        f"{cfg.augment.get('fill', 'channel_mean')}, and is evaluated with fill={fill_label(cfg.fill)}: "
        f"FPA evaluates with the perturbation it trains with (set fill= or augment.fill= to match)."
    )


def subset(n: int, max_images, seed: int) -> list:
    """The evaluated test indices: all, or a seeded random subset in dataset order."""
    if max_images is None or int(max_images) >= n:
        return list(range(n))
    return sorted(np.random.default_rng(seed).choice(n, int(max_images), replace=False).tolist())


def order_source(cfg, key, ckpt_sha: str) -> dict:
    """Whose maps order the features: this base model's, or with ``eval.order_from`` another base model
    of the experiment (missingness paper A.3: the ResNet and the ViT are evaluated in one reference
    model's order). {"base", "folder" (its attributions), "sha256" (its checkpoint's)}."""
    other = cfg.eval.get("order_from")
    if not other or str(other) == key.name:
        return {"base": key.name, "folder": MapsKey(key, "").folder, "sha256": ckpt_sha}
    bases = trained_bases(key.experiment_dir)
    if str(other) not in bases:
        raise RoarError(
            f"eval.order_from={other}: no base model of that name under {key.folder.parent}; "
            f"there are: {', '.join(sorted(bases)) or 'none'}."
        )
    chosen = bases[str(other)]
    return {"base": chosen.name, "folder": MapsKey(chosen, "").folder, "sha256": sha256_file(chosen.checkpoint)}


def target_used(reordered: bool, manifest: dict) -> str:
    """The class MIF/LIF score, as recorded in each result: the maps' own target, or with another model's
    order (``eval.order_from``) this model's own class of the same kind (FPA section 3 scores the logit
    of the class the evaluated model's explanation is for)."""
    kind = str(manifest.get("target", "predicted"))
    return f"this model's own {kind} class (maps from another model)" if reordered else f"the maps' target ({kind})"


def checked_maps(folder: Path, test_set, ckpt_sha: str) -> dict:
    """The verified manifest of an estimator's maps, made from this base model and this test set."""
    if not (folder / MANIFEST).exists():
        raise RoarError(
            f"No maps at {folder}. Run roar-attribute with the same overrides and "
            f"attribute.estimators=[{folder.name}] first."
        )
    manifest = verify_manifest(folder)
    if manifest.get("base_checkpoint_sha256") != ckpt_sha:
        raise RoarError(
            f"{folder / MANIFEST} was computed from another base checkpoint. Rerun roar-attribute (overwrite=true)."
        )
    if manifest["dataset_fingerprints"].get("test") != test_set.fingerprint():
        raise RoarError(
            f"{folder / MANIFEST} was made from other test data than data={test_set.name} gives now. Rerun "
            f"roar-attribute."
        )
    return manifest


@dataclass(frozen=True)
class Job:
    """One ranking roar-eval computes: its name, estimator and reduction, the settings its result records, and
    the file it is written to."""

    name: str
    estimator: str
    reduce: str
    settings: dict
    out: Path


def plan_rankings(ctx: EvalContext, rankings, order: dict) -> tuple:
    """(jobs, results already done, manifests by estimator, maps folders by estimator): every ranking's
    maps verified once, its settings, and whether a finished result with these settings exists."""
    cfg, key, ckpt_sha, test_set = ctx.cfg, ctx.key, ctx.ckpt_sha, ctx.test_set
    jobs, results, manifests, folders = [], {}, {}, {}
    for name, est, red in rankings:
        if est not in manifests:  # ig and ig.sum share one set of maps: verified once
            folders[est] = order["folder"] / est
            manifests[est] = checked_maps(folders[est], test_set, order["sha256"])
        manifest = manifests[est]
        check_reduction(manifest, red, folders[est])
        if stores_steps(est) and manifest.get("fill") != to_plain(cfg.fill):
            raise RoarError(
                f"{folders[est]}: {est} selected its pixels with fill={manifest.get('fill')}; roar-eval fill="
                f"{to_plain(cfg.fill)} would re-check its sufficient input subsets with another filling. Evaluate with "
                f"the fill the maps were made with, or rerun roar-attribute with this fill."
            )
        settings = {
            "ranking": name,
            "estimator": est,
            "reduce": red,
            "patch": ranking_patch(cfg),
            "fill": to_plain(cfg.fill),
            "base": key.name,
            "dataset": cfg.data.name,
            "model": cfg.model.name,
            "augment": cfg.augment.name,
            "base_checkpoint_sha256": ckpt_sha,
            "maps_settings_hash": manifest["settings_hash"],
            "eval": {k: v for k, v in to_plain(cfg.eval).items() if k not in OWN_FILES},
            "maps_seed": int(cfg.maps_seed),
            "test_ids": len(ctx.indices),
            **({"order_from": order["base"]} if order["base"] != key.name else {}),
            "target": target_used(order["base"] != key.name, manifest),
        }
        out = eval_key(cfg, name, order["base"]).file
        done = read_json(out)
        if not cfg.overwrite and isinstance(done, dict) and done.get("settings_hash") == settings_hash(settings):
            results[name] = done
        else:
            jobs.append(Job(name, est, red, settings, out))
    return jobs, results, manifests, folders


def evaluate(cfg: DictConfig) -> dict:
    """Evaluate every ranking of ``eval.rankings``; returns {ranking: result dict}."""
    rankings = check_config(cfg)
    device = resolve_device(cfg.trainer.accelerator)
    train_set, test_set = build_dataset(cfg.data, "train"), build_dataset(cfg.data, "test")
    key = base_key(cfg)
    model = load_base_model(key, cfg.model, test_set.num_classes, list(test_set[0]["image"].shape))
    check_fill(cfg.fill, test_set[0]["image"].shape[0])  # before the channel statistics
    check_patch(ranking_patch(cfg), test_set[0]["image"].shape, "abs_sum")
    check_granularity(fill_of(cfg.fill), ranking_patch(cfg), getattr(model.net, "patch_size", None))
    mean = channel_stats(train_set, cfg.data, cfg.paths.cache_dir)["mean"]
    fill = bind_fill(cfg.fill, test_set[0]["image"].shape[0], mean, int(cfg.maps_seed))
    mismatch = training_fill_mismatch(cfg, fill, model.accepts_keep)
    if mismatch:
        log.info(mismatch)
    ckpt_sha = sha256_file(key.checkpoint)
    indices = subset(len(test_set), cfg.eval.max_images, int(cfg.maps_seed))
    ctx = EvalContext(cfg, model.to(device), key, ckpt_sha, test_set, train_set, indices, fill, device)
    order = order_source(cfg, key, ckpt_sha)
    jobs, results, manifests, folders = plan_rankings(ctx, rankings, order)
    log.info(
        f"[roar-eval] {key.name}: {len(rankings)} rankings ({len(results)} already done), "
        f"{len(indices)} test images, fill={cfg.fill.name}, step={cfg.eval.step}, on {device}"
    )
    reordered = order["base"] != key.name and manifests
    own_target = str(next(iter(manifests.values())).get("target", "predicted")) if reordered else None
    with progress(len(indices) if jobs else 0, "eval", "img", disable=not jobs) as bar:
        computed = RankingPass(ctx, own_target).run([(j.name, j.estimator, j.reduce) for j in jobs], folders, bar)
    for job in jobs:
        results[job.name] = {**job.settings, "settings_hash": settings_hash(job.settings), **computed[job.name]}
        atomic_write_json(job.out, results[job.name])
    print_fidelity(results)
    consistency = run_consistency(ctx)
    if consistency:
        at = [r for r in consistency["curve"] if r["k"] in (1, consistency["patches"] // 4)]
        log.info(
            "  LIME consistency (mean Jaccard of top-k over 28 colour pairs, random): "
            + ", ".join(f"k={r['k']} {r['mean']:.3f} ({r['random']:.3f})" for r in at)
        )
    run_soundness(ctx, rankings, lambda folder: checked_maps(folder, test_set, ckpt_sha))
    if jobs:  # a rerun that computed nothing adds no wandb run
        log_to_wandb(cfg, results, folders.values())
    return results


def print_fidelity(results: dict) -> None:
    log.info(f"  {'ranking':24s} {'fidelity A (95% CI)':>22s}  deletion accuracy (no retraining)")
    for name, r in results.items():
        f = r["fidelity"]
        curve = "  ".join(f"{m}: " + " ".join(f"{a:.3f}" for a in d["accuracy"]) for m, d in r["deletion"].items())
        log.info(f"  {name:24s} {f['mean']:>12.2f} ± {f['ci']:<7.2f}  {curve}")
    for name, r in results.items():
        if "sis" in r:
            s = r["sis"]
            at = next(row for row in s["size"] if row["tau"] == s["tau_map"]) if s["tau_map"] in s["taus"] else None
            size = f"mean {at['mean']:.0f} px ({at['percent']:.1f}%), median {at['median']:.0f}; " if at else ""
            verified = "" if s["verified"] is None else f"; {s['verified']:.0%} re-evaluate >= tau"
            log.info(
                f"  {name}: SIS at tau {s['tau_map']}: {s['with_sis']} of {s['images']} images, {size}confidence "
                f"{s['confidence']['full']:.3f} on the full image, {s['confidence']['subset']:.3f} on its top "
                f"{s['subset']:.0%}{verified}"
            )


def log_to_wandb(cfg, results: dict, maps_folders) -> None:
    """One wandb run (job_type eval) per base model: fidelity per ranking and the curves as a table; it
    declares the base model and the maps it used (roar.lineage)."""
    with finishing_wandb():
        key = eval_key(cfg, "")
        run = start_wandb_run(cfg, key.file.parent, "eval", key.group)
        if run is None:
            return
        exp = key.base.experiment_dir
        declare_used(run, [base_artifact(key.base), *(set_artifact(exp, f, "maps") for f in maps_folders)])
        import wandb

        rows = [
            [name, curve, t, v]
            for name, r in results.items()
            for curve in CURVE_MODES
            for t, v in zip(r["fractions"], r[curve]["mean"])
        ]
        run.log({"curves": wandb.Table(columns=["ranking", "curve", "fraction", "normalized_logit"], data=rows)})
        run.summary.update({f"fidelity/{name}": r["fidelity"]["mean"] for name, r in results.items()})
