"""Completeness and soundness of rankings (masking-explanations paper, appendices C and D), with the
intrinsic deletion and insertion metrics beside them (its Tables 3, 5, 7).

Our copy of the paper has its appendices only: the main text's Eq. (1) and definitions 3.3-3.7 are
missing, so the aggregates below are a reconstruction (docs/methods.md, "Completeness and soundness"). What
the appendices fix, and what is followed:

- M(p): the discrete mask of the top p fraction of the features of a map (roar's ranking and tie rule,
  ``feature_ranks``); the masked input M(p) * x + (1 - M(p)) * x' with x' from a replacement Gamma:
  ``grey`` (0.5 in raw pixel units) or ``random_image`` (``donors`` training images per image, seeded
  per (maps seed, sample id, donor)). Appendix D's AUC curve E_x E_x' f(M(p) x + (1 - M(p)) x', a) vs p.
- The score of (image, label, ranking, Gamma): that probability averaged over the donors and over p in
  ``score_range`` (appendix C's modified AUC, p from 0.2 to 0.6 of the pixels), on the grid of ``step``.
- Labels: the model's top prediction a (the ranking's maps) and its second most probable a' (the maps of
  ``attribute.target=second``); worst case over the two (appendix D: "we only evaluate the scores for the
  top model prediction a and the second most probable label a' and report the worst case").
- Reconstructed: completeness for a label = share of images whose score reaches the model's clean
  probability of it minus eps1; soundness = share whose score stays below the clean probability plus
  eps2 (a mask should not certify a label more than the model believes it). eps1 in {0, 0.01}, eps2 0.1.
- Deletion: probability of a with the top q of the features greyed, averaged over q in [0, 1] (trapezoid);
  insertion: with the top q kept on a grey canvas (the grey completeness curve of a over [0, 1]); insertion
  (blur): on RISE's blurred canvas (replacement ``blur``); the Saliency Metric of Dabkowski & Gal
  (roar.evaluate.saliency_metric).

Every image's raw curves, the class predicted at every p on every canvas, clean probabilities and label
ranks are stored, so any other aggregate (an indicator-based score among them; the
paper's exact definition once we have it) is recomputed from the file without learning a mask again
(``summarize``).
"""

import numpy as np
import torch

from roar.errors import RoarError, as_list, positive_int
from roar.evaluate.saliency_metric import rise_blur, saliency_metric, summarize_sm
from roar.evaluate.stats import curve_area
from roar.masking.donors import donor_images
from roar.masking.removal import feature_ranks, ranking_scores, top_count
from roar.store.io import atomic_write_json, read_json
from roar.store.keys import MapsKey
from roar.store.manifest import MANIFEST
from roar.store.maps import check_reduction, iter_maps
from roar.store.names import settings_hash
from roar.store.resolve import eval_key, ranking_patch
from roar.utils.log import get_logger
from roar.utils.patches import expand_patches
from roar.utils.plain import to_plain

log = get_logger(__name__)

REPLACEMENTS = ("grey", "random_image", "blur")
GREY = 0.5
REGION_AT = 0.3  # M(30%), the sparsity the paper's figures show


def check_soundness(cfg) -> dict:
    """``eval.soundness`` as plain values, checked."""
    s = to_plain(cfg)
    if int(s["images"]) < 0:
        raise RoarError(f"eval.soundness.images={s['images']}: give a count of test images (0: off).")
    bad = set(as_list(s["replacements"], "eval.soundness.replacements")) - set(REPLACEMENTS)
    if bad:
        raise RoarError(f"eval.soundness.replacements has {sorted(bad)}; valid: {', '.join(REPLACEMENTS)}.")
    positive_int(s["donors"], "eval.soundness.donors")
    positive_int(s["sm_holdout"], "eval.soundness.sm_holdout")
    grid = p_grid(s["step"])
    lo, hi = (float(v) for v in s["score_range"])
    if not (0 <= lo <= hi <= 1) or not any(lo - 1e-9 <= p <= hi + 1e-9 for p in grid):
        raise RoarError(
            f"eval.soundness.score_range={s['score_range']}: give [low, high] in [0, 1] holding a grid point."
        )
    return s


def p_grid(step) -> list:
    n = round(1 / float(step))
    if n < 1 or abs(n * float(step) - 1) > 1e-9:
        raise RoarError(f"eval.soundness.step={step} must divide 1 (e.g. 0.1).")
    return [round(i / n, 9) for i in range(n + 1)]


@torch.no_grad()
def label_curves(model, images, ranks, labels, canvases, grid, max_rows: int, patch=None, remove=False):  # noqa: PLR0913 (a batch, its ranks and labels, and the curve's grid)
    """((B, len(grid)) probability of ``labels`` with the top p of the features kept (``remove``: replaced)
    and the rest taken from each canvas (a list of (B, C, H, W)), averaged over the canvases;
    (B, len(grid), canvases) the class the model predicts on each), so an indicator-based score can be
    recomputed from the stored records."""
    b, _, h, w = images.shape
    side = None if patch is None else (h // patch, w // patch)
    rows = []
    for p in grid:
        top = ranks < top_count(p, ranks.shape[1])
        shown = ~top if remove else top
        shown = shown.view(b, 1, h, w) if side is None else expand_patches(shown.view(b, 1, *side), patch)
        rows += [(shown, canvas) for canvas in canvases]
    out, predicted = [], []
    per = max(1, max_rows // b)
    for lo in range(0, len(rows), per):
        part = rows[lo : lo + per]
        batch = torch.cat([torch.where(shown, images, canvas) for shown, canvas in part])
        probs = torch.softmax(model(batch).float(), 1).view(len(part), b, -1)
        out.append(probs.gather(2, labels.view(1, b, 1).expand(len(part), b, 1))[..., 0])
        predicted.append(probs.argmax(2))
    shape = (len(grid), len(canvases), b)
    return torch.cat(out).view(shape).mean(1).T, torch.cat(predicted).view(shape).permute(2, 0, 1)


def summarize(images: list, grid, score_range, eps1: float, eps2: float, sm_holdout: int = 100) -> dict:  # noqa: PLR0913 (the records, the curve's grid and eval.soundness's aggregate settings)
    """The aggregates of the per-image records: per replacement, the score's completeness and soundness
    for a and a' and their worst case, the mean curves; deletion and insertion AUC (grey, label a; blur when
    scored); the Saliency Metric, its threshold chosen on the first ``sm_holdout`` images."""
    lo, hi = (float(v) for v in score_range)
    cols = [i for i, p in enumerate(grid) if lo - 1e-9 <= p <= hi + 1e-9]
    out = {"images": len(images), "eps1": eps1, "eps2": eps2, "score_range": [lo, hi], "replacements": {}}
    labels = ["a"] + (["a2"] if images and "a2" in images[0]["clean"] else [])
    for gamma in images[0]["curves"] if images else []:
        per = {}
        for lab in labels:
            curves = np.array([r["curves"][gamma][lab] for r in images])
            clean = np.array([r["clean"][lab] for r in images])
            score = curves[:, cols].mean(1)
            per[lab] = {
                "completeness": float((score >= clean - eps1).mean()),
                "soundness": float((score < clean + eps2).mean()),
                "score": float(score.mean()),
                "clean": float(clean.mean()),
                "curve": curves.mean(0).tolist(),
            }
        worst = {
            k: (min(per[lab][k] for lab in labels) if len(labels) == 2 else None) for k in ("completeness", "soundness")
        }
        out["replacements"][gamma] = {**per, "worst": worst}
    if images:
        out["deletion"] = float(np.mean([curve_area(grid, r["deletion"]) for r in images]))
        out["insertion"] = float(np.mean([curve_area(grid, r["curves"]["grey"]["a"]) for r in images]))
        blurred = [curve_area(grid, r["curves"]["blur"]["a"]) for r in images if "blur" in r["curves"]]
        out["insertion_blur"] = float(np.mean(blurred)) if blurred else None
        out["saliency_metric"] = summarize_sm([r["sm"] for r in images if "sm" in r], sm_holdout)
        for k in ("object_iou", "marker_held"):
            vals = [r[k] for r in images if r.get(k) is not None]
            out[k] = float(np.mean(vals)) if vals else None
    return out


def maps_of(folder, wanted: set) -> dict:
    """{sample id: (map, meta)} of the test samples ``wanted`` in a verified maps folder."""
    return {sid: (m, meta) for sid, m, meta in iter_maps(folder, "test") if sid in wanted}


def chosen_images(model, test_set, indices, n: int, correct_only: bool, device) -> list:
    """The first ``n`` evaluated test indices (correctly classified ones with ``correct_only``, as the paper)."""
    chosen = []
    for lo in range(0, len(indices), 64):
        part = indices[lo : lo + 64]
        if correct_only:
            with torch.no_grad():
                x = torch.stack([test_set[i]["image"] for i in part]).to(device)
                pred = model(x).argmax(1).cpu().tolist()
            part = [i for i, c in zip(part, pred) if c == int(test_set[i]["label"])]
        chosen += part
        if len(chosen) >= n:
            break
    return chosen[:n]


def run_soundness(ctx, rankings, checked_maps) -> dict:
    """roar-eval's completeness and soundness of every ranking (``eval.soundness.images`` > 0), written to
    ``eval/<base>/soundness/<ranking>.json`` and skipped when done with the same settings. ``ctx``: an
    EvalContext; ``checked_maps(folder)`` verifies a maps folder against the base model and test data."""
    cfg, test_set, key = ctx.cfg, ctx.test_set, ctx.key
    s = check_soundness(cfg.eval.soundness)
    if int(s["images"]) == 0:
        return {}
    patch, seed, grid = ranking_patch(cfg), int(cfg.maps_seed), p_grid(s["step"])
    chosen = chosen_images(ctx.model, test_set, ctx.indices, int(s["images"]), bool(s["correct_only"]), ctx.device)
    ids = [test_set.ids[i] for i in chosen]
    results, samples = {}, None  # the chosen samples, read once for every ranking that needs computing
    for name, est, red in rankings:
        folders = {"a": MapsKey(key, est).folder, "a2": MapsKey(key, est, "second").folder}
        if not (folders["a2"] / MANIFEST).is_file():
            log.info(
                f"[roar-eval] soundness of {name}: no maps of the runner-up class at {folders['a2']}; completeness "
                f"only. For soundness: roar-attribute attribute.target=second attribute.estimators=[{est}] "
                f"attribute.splits=[test]"
            )
            folders.pop("a2")
        found = {lab: checked_maps(f) for lab, f in folders.items()}
        for lab, m in found.items():
            check_reduction(m, red, folders[lab])
        hashes = {lab: m["settings_hash"] for lab, m in found.items()}
        settings = {
            "kind": "soundness",
            "ranking": name,
            "estimator": est,
            "reduce": red,
            "patch": patch,
            "base": key.name,
            "base_checkpoint_sha256": ctx.ckpt_sha,
            "maps_settings_hash": hashes,
            "dataset_fingerprint": test_set.fingerprint(),
            "soundness": s,
            "maps_seed": seed,
            "test_ids": ids,
            "records": ["curves", "predicted", "sm"],  # files from before a record was stored are redone
        }
        out = eval_key(cfg, name).soundness_file
        done = read_json(out)
        if not cfg.overwrite and isinstance(done, dict) and done.get("settings_hash") == settings_hash(settings):
            results[name] = done
            continue
        samples = samples or [test_set[i] for i in chosen]
        records = score_images(ctx, samples, ids, folders, red, s)
        result = {**settings, "settings_hash": settings_hash(settings), "grid": grid, "per_image": records}
        result["summary"] = summarize(
            records, grid, s["score_range"], float(s["eps1"]), float(s["eps2"]), int(s["sm_holdout"])
        )
        atomic_write_json(out, result)
        results[name] = result
        print_line(name, result["summary"])
    return results


def score_images(ctx, chosen, ids, folders, red, s) -> list:
    """Per-image records of the ``chosen`` test samples (their ``ids``): labels, clean probabilities and
    ranks, curves per replacement and label, deletion. ``folders``: {label: maps folder}; ``red``: the
    ranking's reduction; ``s``: eval.soundness."""
    model, cfg, device, seed = ctx.model, ctx.cfg, ctx.device, int(ctx.cfg.maps_seed)
    patch, grid = ranking_patch(cfg), p_grid(s["step"])
    maps = {lab: maps_of(f, set(ids)) for lab, f in folders.items()}
    records, bs, rows = [], int(cfg.eval.batch_size), int(cfg.eval.max_rows)
    for lo in range(0, len(chosen), bs):
        samples, pid = chosen[lo : lo + bs], ids[lo : lo + bs]
        x = torch.stack([t["image"] for t in samples]).to(device)
        with torch.no_grad():
            clean = torch.softmax(model(x).float(), 1)
        canvases = canvases_of(ctx, x, pid, s)
        batch = [
            {
                "id": sid,
                "label": int(t["label"]),
                "curves": {g: {} for g in canvases},
                "predicted": {g: {} for g in canvases},  # per p, the class predicted on each canvas (donor)
                "clean": {},
                "rank": {},
            }
            for sid, t in zip(pid, samples)
        ]
        order = clean.argsort(1, descending=True)  # the classes by clean probability: a label's rank
        for lab in folders:
            m = torch.from_numpy(np.stack([maps[lab][sid][0] for sid in pid])).to(device)
            labels = torch.tensor([int(maps[lab][sid][1]["target"]) for sid in pid], device=device)
            scores = ranking_scores(m, red, patch)
            ranks = feature_ranks(scores, pid, seed)
            label_rank = (order == labels[:, None]).float().argmax(1)
            for g in canvases:  # grey always: insertion is its curve of a
                curves, predicted = label_curves(model, x, ranks, labels, canvases[g], grid, rows, patch)
                for r, c, k in zip(batch, curves.cpu().tolist(), predicted.cpu().tolist()):
                    r["curves"][g][lab] = [round(v, 6) for v in c]
                    r["predicted"][g][lab] = k
            for k, r in enumerate(batch):
                r["clean"][lab] = round(float(clean[k, labels[k]]), 6)
                r["rank"][lab] = int(label_rank[k])
                r[f"class_{lab}"] = int(labels[k])
            if lab == "a":
                ranks_a, labels_a = ranks, labels
                side = (x.shape[2], x.shape[3]) if patch is None else (x.shape[2] // patch, x.shape[3] // patch)
                sm = saliency_metric(model, x, scores.view(len(pid), *side), labels, rows)
                for r, v in zip(batch, sm.tolist()):
                    r["sm"] = [round(e, 6) for e in v]
        deletion, _ = label_curves(model, x, ranks_a, labels_a, canvases["grey"], grid, rows, patch, remove=True)
        deletion = deletion.cpu()
        regions = region_shares(ranks_a, samples, x.shape, patch)
        for k, r in enumerate(batch):
            r["deletion"] = [round(v, 6) for v in deletion[k].tolist()]
            r.update({name: vals[k] for name, vals in regions.items()})
        records += batch
    return records


def canvases_of(ctx, x, ids, s) -> dict:
    """{replacement: [canvases]} for a batch ``x`` of samples ``ids``: grey always (insertion is its curve),
    RISE's blur, and ``eval.soundness.donors`` random training images per image (seeded per sample id)."""
    canvases = {"grey": [torch.full_like(x, GREY)]}
    if "blur" in s["replacements"]:
        canvases["blur"] = [rise_blur(x)]
    if "random_image" in s["replacements"]:
        canvases["random_image"] = [
            donor_images(ctx.train_set, [f"{sid}|soundness-donor-{r}" for sid in ids], int(ctx.cfg.maps_seed)).to(
                x.device
            )
            for r in range(int(s["donors"]))
        ]
    return canvases


def region_shares(ranks, samples, shape, patch) -> dict:
    """At M(30%) of label a: the IoU with the object and the share of the shortcut marker's pixels held,
    where the dataset has them (shapes)."""
    b, _, h, w = shape
    top = ranks < top_count(REGION_AT, ranks.shape[1])
    kept = top.view(b, h, w) if patch is None else expand_patches(top.view(b, 1, h // patch, w // patch), patch)[:, 0]
    kept = kept.cpu()
    out = {}
    if "object_mask" in samples[0]:
        obj = torch.stack([torch.as_tensor(t["object_mask"]).bool() for t in samples])
        out["object_iou"] = ((kept & obj).flatten(1).sum(1) / (kept | obj).flatten(1).sum(1).clamp(min=1)).tolist()
    if "shortcut_mask" in samples[0]:
        mark = torch.stack([torch.as_tensor(t["shortcut_mask"]).bool() for t in samples])
        area = mark.flatten(1).sum(1)
        held = ((kept & mark).flatten(1).sum(1) / area.clamp(min=1)).tolist()
        out["marker_held"] = [v if a > 0 else None for v, a in zip(held, area.tolist())]
    return out


def print_line(name: str, summary: dict) -> None:
    if not summary["images"]:
        log.info(f"  {name}: no test image to score (the base model classifies none of those drawn correctly)")
        return
    parts = []
    for g, r in summary["replacements"].items():
        w = r["worst"]
        sound = "" if w["soundness"] is None else f", worst soundness {w['soundness']:.2f}"
        parts.append(f"{g}: completeness {r['a']['completeness']:.2f}{sound}")
    blur = "" if summary.get("insertion_blur") is None else f", insertion (blur) {summary['insertion_blur']:.3f}"
    sm = summary.get("saliency_metric")
    sm = "" if sm is None else f", saliency metric {sm['score']:.3f} (delta {sm['delta']})"
    log.info(
        f"  {name}: {summary['images']} images; " + "; ".join(parts) + f"; deletion {summary['deletion']:.3f}, "
        f"insertion {summary['insertion']:.3f}" + blur + sm
    )
