"""What the report concludes: curves with intervals, verdicts against random, agreement of methods.

- A ROAR (or KAR) curve is test accuracy over the fraction t masked, starting at the unmodified
  baseline (t = 0). Its area, divided by the span of t, is the mean accuracy over that span: lower
  is a better estimator under ROAR (removing what it ranks first hurts more), higher under KAR.
- Verdict: per seed, the area of an estimator's curve and of random's over the fractions both have;
  Welch's t-test over seeds says better than / no different from / worse than random (ROAR 4.3).
- Agreement: Spearman correlation of the estimators' orderings under each method (ROAR, KAR,
  no-retrain fidelity A, no-retrain deletion) over the estimators both methods rank.
- The leakage audit beside every verdict (roar.evaluate.leakage): the mask recoverability of its
  shard sets, the accuracy of a model trained on its masks alone above chance, and its fill's
  MoRF/LeRF consistency (ROAD section 4: the rankings' order when removing the most relevant first
  against the reverse of their order when removing the least relevant first, Spearman over roar-eval's
  MIF and LIF areas). A verdict whose sets' recoverability is above ``CONFOUNDED`` is marked.
- Sufficient input subsets (overinterpretation paper) of the backward-selection rankings, from
  roar-eval's ``sis`` results (roar.evaluate.sis): sizes, correct vs misclassified, confidence drop.
"""

import itertools
import math

import numpy as np

from roar.evaluate.leakage import CONFOUNDED
from roar.evaluate.stats import compare_with_random, curve_area, spearman
from roar.masking.fills import fill_named
from roar.store.keys import ranking_name


def curve(summary, baseline, estimator, reduce, mode, fill) -> list:
    """Summary rows of one curve in fraction order, the baseline first when the curve has no t = 0."""
    points = sorted(
        (
            s
            for s in summary
            if (s["estimator"], s["reduce"], s["mode"], s["fill"]) == (estimator, reduce, mode, fill) and s["n"]
        ),
        key=lambda s: s["fraction"],
    )
    if baseline is not None and (not points or points[0]["fraction"] != 0.0) and not fill_named(fill).leakage_control:
        points.insert(0, baseline)
    return points


def curves_of(summary) -> list:
    """(estimator, reduce, mode, fill) of every curve with at least one run at t > 0."""
    return sorted(
        {(s["estimator"], s["reduce"], s["mode"], s["fill"]) for s in summary if s["n"] and s["fraction"] > 0}
    )


def seed_areas(rows, estimator, reduce, mode, fill, fractions) -> dict:
    """{seed: mean accuracy over [0, max t]} for the seeds that have every fraction of ``fractions``;
    the t = 0 point is the seed's baseline run (or the baseline mean when that seed has none)."""
    base = {r["seed"]: r["test_acc"] for r in rows if r["fraction"] == 0.0 and r["fill"] == fill}
    base_mean = float(np.mean(list(base.values()))) if base else math.nan
    acc = {
        (r["seed"], r["fraction"]): r["test_acc"]
        for r in rows
        if (r["estimator"], r["reduce"], r["mode"], r["fill"]) == (estimator, reduce, mode, fill)
    }
    out = {}
    for seed in sorted({s for s, _ in acc}):
        if all((seed, t) in acc for t in fractions):
            values = [base.get(seed, base_mean)] + [acc[seed, t] for t in fractions]
            out[seed] = curve_area([0.0, *fractions], values) / max(fractions)
    return out


def fractions_of(rows, estimator, reduce, mode, fill) -> set:
    return {
        r["fraction"]
        for r in rows
        if (r["estimator"], r["reduce"], r["mode"], r["fill"]) == (estimator, reduce, mode, fill) and r["fraction"] > 0
    }


def verdicts(rows) -> list:
    """One row per (estimator, mode, fill) with a random curve beside it: areas and the verdict.
    A leakage control (``mask_only``) is not judged here (see ``leakage``)."""
    out = []
    for est, red, mode, fill in sorted(
        {(r["estimator"], r["reduce"], r["mode"], r["fill"]) for r in rows if r["fraction"] > 0}
    ):
        if est == "random" or fill_named(fill).leakage_control:
            continue
        rand_red = (
            red if fractions_of(rows, "random", red, mode, fill) else "abs_sum"
        )  # random's ranking ignores the reduction
        common = sorted(fractions_of(rows, est, red, mode, fill) & fractions_of(rows, "random", rand_red, mode, fill))
        if not common:
            out.append(
                {
                    "estimator": ranking_name(est, red),
                    "mode": mode,
                    "fill": fill,
                    "verdict": "no random curve to compare with",
                    "fractions": [],
                }
            )
            continue
        if not any(r["fraction"] == 0.0 and r["fill"] == fill for r in rows):  # the curves' first point is missing
            out.append(
                {
                    "estimator": ranking_name(est, red),
                    "mode": mode,
                    "fill": fill,
                    "fractions": common,
                    "verdict": f"insufficient data: no t = 0 baseline run; run roar-train estimator=random fraction=0 "
                    f"mode={mode} fill={fill.partition('-')[0]} for each seed (or roar-train -m sweep=grid)",
                }
            )
            continue
        mine, rand = (
            seed_areas(rows, est, red, mode, fill, common),
            seed_areas(rows, "random", rand_red, mode, fill, common),
        )
        test = compare_with_random(list(mine.values()), list(rand.values()), lower_is_better=mode == "remove")
        out.append(
            {
                "estimator": ranking_name(est, red),
                "mode": mode,
                "fill": fill,
                "fractions": common,
                "area": float(np.mean(list(mine.values()))) if mine else math.nan,
                "area_random": float(np.mean(list(rand.values()))) if rand else math.nan,
                "seeds": len(mine),
                "seeds_random": len(rand),
                **test,
            }
        )
    return out


def method_scores(rows, evaluations, fill: str) -> dict:
    """{method: {ranking: score}}, higher = ranked better by that method, for the runs and
    evaluations of one base model."""
    scores = {}
    for mode, method, sign in (("remove", "ROAR", -1), ("keep", "KAR", 1)):
        per = {}
        for est, red, m, f in {(r["estimator"], r["reduce"], r["mode"], r["fill"]) for r in rows}:
            if m != mode or f != fill:
                continue
            fr = sorted(fractions_of(rows, est, red, mode, fill))
            areas = seed_areas(rows, est, red, mode, fill, fr) if fr else {}
            if areas:
                per[ranking_name(est, red)] = sign * float(np.mean(list(areas.values())))
        if per:
            scores[method] = per
    chosen = [e for e in evaluations if e["fill"] == fill]
    if chosen:
        scores["no-retrain fidelity A"] = {e["ranking"]: e["fidelity"]["mean"] for e in chosen}
        deletion = {}
        for e in chosen:
            d = e["deletion"].get("remove")
            if d and len(d["fractions"]) > 1:
                deletion[e["ranking"]] = -curve_area(d["fractions"], d["accuracy"]) / max(d["fractions"])
        if deletion:
            scores["no-retrain deletion"] = deletion
    return scores


def agreement(rows, evaluations, fill: str) -> list:
    """Spearman rho of every pair of methods' orderings, per base model (its runs and evaluations)."""
    out = []
    for base in sorted({r["base"] for r in rows} | {e["base"] for e in evaluations}):
        scores = method_scores(
            [r for r in rows if r["base"] == base], [e for e in evaluations if e["base"] == base], fill
        )
        out += [
            {"base": base, "a": a, "b": b, **spearman(scores[a], scores[b])}
            for a, b in itertools.combinations(scores, 2)
        ]
    return out


def leakage(summary, num_classes) -> list:
    """Accuracy of the leakage control (``mask_only``: images that are only the mask) next to chance."""
    chance = 1.0 / num_classes if num_classes else math.nan
    return [
        {
            **{k: s[k] for k in ("estimator", "reduce", "mode", "fraction", "n", "mean", "ci_low", "ci_high")},
            "chance": chance,
        }
        for s in summary
        if fill_named(s["fill"]).leakage_control and s["n"]
    ]


def consistency(evaluations) -> dict:
    """{(base, fill): MoRF/LeRF consistency}: Spearman rho between the rankings' order by MIF area
    (lower = better) and by LIF area (higher = better), over a base model's roar-eval rankings."""
    out = {}
    for base, fill in sorted({(e["base"], e["fill"]) for e in evaluations}):
        chosen = [e for e in evaluations if (e["base"], e["fill"]) == (base, fill)]
        morf = {e["ranking"]: -curve_area(e["fractions"], e["mif"]["mean"]) for e in chosen}
        lerf = {e["ranking"]: curve_area(e["fractions"], e["lif"]["mean"]) for e in chosen}
        out[base, fill] = spearman(morf, lerf)["rho"]
    return out


def audit_verdicts(verdicts, audits, summary, evaluations, num_classes) -> list:
    """The verdicts with their leakage audit: ``recoverability`` (mean balanced accuracy of the mask
    classifier over the verdict's fractions), ``mask_only`` (accuracy of the same ranking's mask-only
    retrains above chance, mean over the fractions it ran at), ``consistency`` (the fill's MoRF/LeRF rho, mean over
    base models) and ``leakage`` ("confounded by leakage" above ``CONFOUNDED``)."""
    chance = 1.0 / num_classes if num_classes else math.nan
    rho = consistency(evaluations)
    out = []
    for v in verdicts:
        fractions = set(v.get("fractions") or [])
        rec = [
            a["balanced_accuracy"]
            for a in audits
            if (ranking_name(a["estimator"], a["reduce"]), a["mode"], a["fill"])
            == (v["estimator"], v["mode"], v["fill"])
            and a["fraction"] in fractions
        ]
        alone = [
            s["mean"] - chance
            for s in summary
            if fill_named(s["fill"]).leakage_control
            and s["n"]
            and (ranking_name(s["estimator"], s["reduce"]), s["mode"]) == (v["estimator"], v["mode"])
        ]  # every fraction it was retrained at: mask-only runs are few
        fill_rho = [r for (_, fill), r in rho.items() if fill == v["fill"] and not math.isnan(r)]
        recoverability = float(np.mean(rec)) if rec else None
        out.append(
            {
                **v,
                "recoverability": recoverability,
                "mask_only": float(np.mean(alone)) if alone else None,
                "consistency": float(np.mean(fill_rho)) if fill_rho else None,
                "leakage": "confounded by leakage"
                if recoverability is not None and recoverability > CONFOUNDED
                else "",
            }
        )
    return out


def sis_tables(evaluations) -> dict:
    """The report's SIS tables from every roar-eval result with an ``sis`` section: ``size`` (one row
    per base, ranking, tau), ``versus`` (correct vs misclassified per tau) and ``overview`` (one row per
    base and ranking: confidence on the clean image and its top-subset pixels, the re-evaluation, and
    the share of SIS pixels on each ground-truth region beside the region's share of the image)."""
    size, versus, overview = [], [], []
    for e in evaluations:
        s = e.get("sis")
        if not s:
            continue
        key = {"base": e["base"], "ranking": e["ranking"], "fill": e["fill"]}
        size += [{**key, **r} for r in s["size"]]
        versus += [{**key, **r} for r in s["correct_vs_wrong"]]
        row = {
            **key,
            "images": s["images"],
            "accuracy": s["accuracy"],
            "full": s["confidence"]["full"],
            "subset_share": s["subset"],
            "subset": s["confidence"]["subset"],
            "drop": s["confidence"]["drop"],
            "drop_ci": s["confidence"]["drop_ci"],
            "tau_map": s["tau_map"],
            "with_sis": s["with_sis"],
            "verified": s["verified"],
        }
        for name, r in s["regions"].items():
            row[f"on_{name}"], row[f"area_{name}"], row[f"held_{name}"] = r["sis_share"], r["area_share"], r["held"]
        overview.append(row)
    return {"size": size, "versus": versus, "overview": overview}


def missingness_rows(evaluations, at=(0.25, 0.5, 0.75)) -> list:
    """Missingness paper section 3 as a table: per patch-granular evaluation (roar-eval), the
    share of unchanged predictions and the normalized class entropy at the removed shares ``at``, for
    least-important-first (LIF) and most-important-first (MIF) removal."""
    rows = []
    for e in evaluations:
        shift = e.get("predictions")
        if not shift:
            continue
        for t in at:
            if t not in e["fractions"]:
                continue
            s = e["fractions"].index(t)
            rows.append(
                {
                    "base": e["base"],
                    "fill": e["fill"],
                    "ranking": e["ranking"],
                    "order": e.get("order_from") or "own maps",
                    "t": t,
                    "lif_unchanged": shift["lif"]["unchanged"][s],
                    "mif_unchanged": shift["mif"]["unchanged"][s],
                    "lif_entropy": shift["lif"]["entropy_norm"][s],
                    "mif_entropy": shift["mif"]["entropy_norm"][s],
                }
            )
    return rows


def soundness_rows(results) -> list:
    """Masking-explanations paper Tables 2-8 as one table: per base model, ranking and replacement, the
    completeness of a and soundness of a' with their worst case over a and a' (roar.evaluate.soundness),
    deletion and insertion (grey), and the IoU of M(30%) with the object / the marker's pixels held."""
    rows = []
    for e in results:
        s = e["summary"]
        for gamma, r in s["replacements"].items():
            rows.append(
                {
                    "base": e["base"],
                    "ranking": e["ranking"],
                    "replacement": gamma,
                    "images": s["images"],
                    "completeness_a": r["a"]["completeness"],
                    "worst_completeness": r["worst"]["completeness"],
                    "soundness_a2": r["a2"]["soundness"] if "a2" in r else None,
                    "worst_soundness": r["worst"]["soundness"],
                    "score_a": r["a"]["score"],
                    "score_a2": r["a2"]["score"] if "a2" in r else None,
                    "deletion": s["deletion"],
                    "insertion": s["insertion"],
                    "object_iou": s.get("object_iou"),
                    "marker_held": s.get("marker_held"),
                }
            )
    return rows
