"""LIME's consistency across baseline colours (missingness paper, section 4, Fig. 8, appendix A).

LIME (roar.estimators.lime) of the base model is computed with each of the 8 baseline colours
RGB in {0, 1}^3 painted over the off patches (a ViT with ``fill=token_drop`` drops their tokens instead,
so its 8 explanations are one: consistency 1 by construction). For each of the 28 colour pairs and each
k, the Jaccard similarity of the two top-k patch sets, averaged over images; reported as the mean over
the pairs with its 95% t-interval, beside the expected Jaccard of two independent random top-k sets of
P patches (the paper's random line): E[i / (2k - i)] with i ~ Hypergeometric(P, k, k).
"""

import itertools

import numpy as np
import torch
from scipy import stats as sps

from roar.errors import RoarError
from roar.estimators import DEFAULT_PARAMS
from roar.estimators.lime import lime, lime_patch
from roar.evaluate.stats import mean_ci
from roar.store.io import atomic_write_json, read_json
from roar.store.names import settings_hash
from roar.store.resolve import eval_key, ranking_patch
from roar.utils.log import get_logger
from roar.utils.plain import to_plain

log = get_logger(__name__)

COLOURS = [tuple(float(v) for v in c) for c in itertools.product((0, 1), repeat=3)]  # the paper's 8 colours


def random_jaccard(patches: int, k: int) -> float:
    """Expected Jaccard similarity of two independent uniformly random k-subsets of ``patches``."""
    overlap = sps.hypergeom(patches, k, k)
    i = np.arange(0, k + 1)
    return float(np.sum(overlap.pmf(i) * i / (2 * k - i)))


def top_sets(scores: torch.Tensor, k: int) -> torch.Tensor:
    """(B, P) bool: each image's k highest-scoring patches (ties by index, as ``torch.topk``)."""
    top = torch.zeros_like(scores, dtype=torch.bool)
    return top.scatter_(1, scores.topk(k, 1).indices, True)


def jaccard(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a & b).sum(1).float() / (a | b).sum(1).clamp(min=1).float()


def lime_consistency(model, images, ids, params, drop_tokens: bool, ks=None) -> dict:
    """Mean Jaccard of top-k LIME patches over the 28 colour pairs, per k, with the random line."""
    if images.shape[1] != 3:
        raise RoarError(
            "LIME consistency paints RGB baseline colours: it needs 3-channel images (data=shapes, cifar10)."
        )
    scores = []
    for colour in COLOURS:
        fill = None if drop_tokens else torch.tensor(colour, dtype=images.dtype, device=images.device)
        maps, _ = lime(model, images, None if fill is None else fill.view(1, 3, 1, 1).expand_as(images), ids, params)
        scores.append(patch_scores(maps, params, model))
    patches = scores[0].shape[1]
    ks = list(ks or range(1, patches + 1))
    rows = []
    for k in ks:
        tops = [top_sets(s, k) for s in scores]
        pairs = [jaccard(tops[i], tops[j]).mean().item() for i, j in itertools.combinations(range(len(COLOURS)), 2)]
        ci = mean_ci(pairs)
        rows.append(
            {
                "k": k,
                "mean": ci["mean"],
                "ci_low": ci["ci_low"],
                "ci_high": ci["ci_high"],
                "random": random_jaccard(patches, k),
            }
        )
    return {"patches": patches, "images": int(images.shape[0]), "pairs": 28, "drop_tokens": drop_tokens, "curve": rows}


def patch_scores(maps: torch.Tensor, params, model) -> torch.Tensor:
    """(B, P) one LIME coefficient per patch, read off the patch-constant maps."""
    p = lime_patch(params, maps.shape[-1], model)
    return maps[:, 0, ::p, ::p].flatten(1)


def run_consistency(ctx):
    """roar-eval's LIME consistency of the base model on the first ``eval.consistency.images`` evaluated
    test images (0: off); written to ``eval/<base>/<fill>/lime-consistency.json``, skipped when done
    with the same settings. Returns the result or None. ``ctx``: an EvalContext."""
    cfg, test_set = ctx.cfg, ctx.test_set
    n = int(cfg.eval.consistency.images)
    if n <= 0:
        return None
    drop_tokens = bool(ctx.fill.drops_tokens)
    params = {
        **DEFAULT_PARAMS,
        "lime_samples": int(cfg.eval.consistency.lime_samples),
        "lime_patch": ranking_patch(cfg),
        "seed": int(cfg.maps_seed),
    }
    chosen = ctx.indices[:n]
    settings = {
        "kind": "lime_consistency",
        "base": ctx.key.name,
        "base_checkpoint_sha256": ctx.ckpt_sha,
        "dataset_fingerprint": test_set.fingerprint(),
        "fill": to_plain(cfg.fill),
        "params": params,
        "test_ids": len(chosen),
    }
    out = eval_key(cfg, "random").consistency_file
    done = read_json(out)
    if not cfg.overwrite and isinstance(done, dict) and done.get("settings_hash") == settings_hash(settings):
        return done
    images = torch.stack([test_set[i]["image"] for i in chosen]).to(ctx.device)
    ids = [test_set.ids[i] for i in chosen]
    how = "token drop" if drop_tokens else "8 baseline colours"
    log.info(
        f"[roar-eval] LIME consistency: {len(chosen)} images x 8 colours ({how}), {params['lime_samples']} "
        f"perturbations"
    )
    result = {
        **settings,
        "settings_hash": settings_hash(settings),
        **lime_consistency(ctx.model, images, ids, params, drop_tokens),
    }
    atomic_write_json(out, result)
    return result
