"""The leakage audit beside every verdict (roar.evaluate.leakage measures; this judges): mask-only
accuracy against random's, ROAD's MoRF/LeRF consistency of the no-retrain curves, and the label
"confounded by leakage", which needs recoverable masks *and* class information in them."""

import math

import numpy as np

from roar.evaluate.leakage import CONFOUNDED
from roar.evaluate.stats import ALPHA, curve_area, spearman_permutation, welch_p
from roar.masking.fills import fill_named
from roar.report.analysis import base_folders, of_base
from roar.store.names import ranking_name


def leakage(summary, num_classes) -> list:
    """Accuracy of the leakage control (``mask_only``: images that are only the mask) next to chance."""
    chance = 1.0 / num_classes if num_classes else math.nan
    return [
        {
            **{k: s[k] for k in ("base", "estimator", "reduce", "mode", "fraction", "n", "mean", "ci_low", "ci_high")},
            "chance": chance,
        }
        for s in summary
        if fill_named(s["fill"]).leakage_control and s["n"]
    ]


def consistency(evaluations) -> dict:
    """{(base, fill): {rho, n, p, estimators}}: ROAD's MoRF/LeRF consistency from roar-eval's no-retrain
    curves, Spearman rho between the rankings' order by MIF area (lower = better) and by LIF area
    (higher = better) over a base model's rankings, ``random`` excluded (a control, not a ranking to
    order); p: one-sided permutation p for rho > 0 (``spearman_permutation``)."""
    out = {}
    for base, fill in sorted({(e["base"], e["fill"]) for e in evaluations}):
        chosen = [e for e in evaluations if (e["base"], e["fill"]) == (base, fill) and e["ranking"] != "random"]
        morf = {e["ranking"]: -curve_area(e["fractions"], e["mif"]["mean"]) for e in chosen}
        lerf = {e["ranking"]: curve_area(e["fractions"], e["lif"]["mean"]) for e in chosen}
        out[base, fill] = spearman_permutation(morf, lerf)
    return out


def mask_only_test(rows, ranking: str, mode: str, alpha: float = ALPHA) -> dict | None:
    """Does the ranking's mask carry more class information than random's? Its ``fill=mask_only``
    retrains against random's at the fractions both ran (one base model's runs), per seed the mean
    accuracy over those fractions, Welch's two-sided t-test. None without two seeds on each side."""
    alone = [r for r in rows if fill_named(r["fill"]).leakage_control and r["mode"] == mode]
    mine = {
        (r["seed"], r["fraction"]): r["test_acc"] for r in alone if ranking_name(r["estimator"], r["reduce"]) == ranking
    }
    rand = {(r["seed"], r["fraction"]): r["test_acc"] for r in alone if r["estimator"] == "random"}
    common = sorted({t for _, t in mine} & {t for _, t in rand})
    if not common:
        return None

    def per_seed(acc):
        seeds = {s for s, _ in acc}
        return [
            float(np.mean([acc[s, t] for t in common])) for s in sorted(seeds) if all((s, t) in acc for t in common)
        ]

    a, b = per_seed(mine), per_seed(rand)
    if len(a) < 2 or len(b) < 2:
        return None
    diff, p = float(np.mean(a) - np.mean(b)), welch_p(a, b)
    return {
        "fractions": common,
        "mask_only": float(np.mean(a)),
        "mask_only_random": float(np.mean(b)),
        "diff": diff,
        "p": p,
        "carries_class": bool(p < alpha and diff > 0),
    }


def leakage_label(recoverability, test, ranking: str) -> str:
    """ "confounded by leakage" only when the masks are recoverable from the filled images (above
    ``CONFOUNDED``) *and* carry class information (their mask-only retrains beat random's); a
    recoverable mask whose class information was not measured says how to measure it."""
    if recoverability is None:
        return "recoverability not measured (mask.audit_steps=0 or no audited set)"
    if recoverability <= CONFOUNDED:
        return ""
    if test is None:
        est = ranking.split(".")[0]
        return (
            "masks recoverable; class information in the mask not measured: run the same roar-pipeline with "
            f"grid.estimators=[{est},random] fill=mask_only"
        )
    if test["carries_class"]:
        return "confounded by leakage"
    return "masks recoverable, but carry no more class information than random's"


def audit_verdicts(verdicts, audits, rows, evaluations, num_classes, alpha: float = ALPHA) -> list:
    """The verdicts with their leakage audit, per base model: ``recoverability`` (mean balanced accuracy
    of the mask classifier over the verdict's fractions), ``mask_only`` (accuracy of the same ranking's
    mask-only retrains above chance), ``mask_only_random`` (random's, at the same fractions),
    ``mask_only_p`` (Welch, ranking vs random), ``consistency`` with its ``consistency_n`` rankings and
    permutation ``consistency_p`` (no-retrain curves of the same base and fill) and ``leakage``
    (``leakage_label``)."""
    chance = 1.0 / num_classes if num_classes else math.nan
    rho, folders = consistency(evaluations), base_folders(rows)
    out = []
    for v in verdicts:
        fractions = set(v.get("fractions") or [])
        rec = [
            a["balanced_accuracy"]
            for a in audits
            if (a["base"], ranking_name(a["estimator"], a["reduce"]), a["mode"], a["fill"])
            == (folders.get(v["base"], v["base"]), v["estimator"], v["mode"], v["fill"])
            and a["fraction"] in fractions
        ]
        recoverability = float(np.mean(rec)) if rec else None
        mine = of_base(rows, v["base"])
        test = mask_only_test(mine, v["estimator"], v["mode"], alpha)
        alone = [  # every fraction it was retrained at: mask-only runs are few
            r["test_acc"]
            for r in mine
            if fill_named(r["fill"]).leakage_control
            and (ranking_name(r["estimator"], r["reduce"]), r["mode"]) == (v["estimator"], v["mode"])
        ]
        c = rho.get((folders.get(v["base"], v["base"]), v["fill"]), {})
        out.append(
            {
                **v,
                "recoverability": recoverability,
                "mask_only": float(np.mean(alone)) - chance if alone else None,
                "mask_only_random": test["mask_only_random"] - chance if test else None,
                "mask_only_p": test["p"] if test else None,
                "consistency": c.get("rho"),
                "consistency_n": c.get("n"),
                "consistency_p": c.get("p"),
                "leakage": leakage_label(recoverability, test, v["estimator"]),
            }
        )
    return out
