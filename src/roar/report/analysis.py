"""What the report concludes: curves with intervals, verdicts against random, agreement of methods.

- A ROAR (or KAR) curve is test accuracy over the fraction t masked, starting at the unmodified
  baseline (t = 0). Its area, divided by the span of t, is the mean accuracy over that span: lower
  is a better estimator under ROAR (removing what it ranks first hurts more), higher under KAR.
- Every table is per base model: runs of two base models (two base seeds, FPA and plain) are never
  pooled into one curve or one verdict.
- Verdict: per seed, the area of an estimator's curve and of random's over the fractions both have;
  Welch's two-sided t-test over seeds (ROAR 4.3 compares with random), its p adjusted for the number
  of verdicts of the base model (``report.correction``, Holm by default); the adjusted p decides
  better than / no different from / worse than random. Beside it: the difference with its 95% Welch
  interval, and a per-t Welch test, since curves can cross where an area cannot show it.
- Agreement: Spearman correlation of the estimators' orderings under each method (ROAR, KAR,
  no-retrain fidelity A, no-retrain deletion) over the estimators both methods rank.
- The leakage audit beside every verdict (roar.report.leakage_audit, from roar.evaluate.leakage): the mask
  recoverability of its shard sets, the accuracy of a model trained on its masks alone (``fill=mask_only``) against
  random's masks alone, and its fill's MoRF/LeRF consistency (ROAD section 4: the rankings' order
  when removing the most relevant first against their order when removing the least relevant first,
  Spearman over roar-eval's no-retrain MIF and LIF areas, random excluded, permutation p). A verdict
  is "confounded by leakage" only when its masks are recoverable (above ``CONFOUNDED``) and carry
  class information (mask-only accuracy above random's mask-only accuracy, Welch, same seeds).
- Sufficient input subsets (overinterpretation paper) of the backward-selection rankings, from
  roar-eval's ``sis`` results (roar.evaluate.sis): sizes, correct vs misclassified, confidence drop.
"""

import math

import numpy as np

from roar.evaluate.stats import (
    ALPHA,
    adjust_p,
    compare_with_random,
    curve_area,
    verdict_of,
    welch_diff_ci,
    welch_p,
)
from roar.masking.fills import fill_named
from roar.store.names import fraction_name, ranking_name


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


def bases_of(rows) -> list:
    """The base models of rows (runs, summary rows, evaluations), sorted: every table is per base model."""
    return sorted({r["base"] for r in rows})


def of_base(rows, base) -> list:
    return [r for r in rows if r["base"] == base]


def base_folders(rows) -> dict:
    """{group label: the base model's folder name} of the runs (a retrain variant's group, ``<base> retrained
    as <variant>``, reads the base model's shard sets' audits and no-retrain curves); each run records both."""
    return {r["base"]: r.get("base_folder", r["base"]) for r in rows}


def seed_areas(rows, estimator, reduce, mode, fill, fractions) -> dict:
    """{seed: mean accuracy over [0, max t]} for the seeds that have every fraction of ``fractions``;
    the t = 0 point is the seed's baseline run (or the baseline mean when that seed has none). ``rows``
    are one base model's runs."""
    base = {r["seed"]: r["test_acc"] for r in rows if r["fraction"] == 0.0 and r["fill"] == fill}
    base_mean = float(np.mean(list(base.values()))) if base else math.nan
    acc = seed_accuracies(rows, estimator, reduce, mode, fill)
    out = {}
    for seed in sorted({s for s, _ in acc}):
        if all((seed, t) in acc for t in fractions):
            values = [base.get(seed, base_mean)] + [acc[seed, t] for t in fractions]
            out[seed] = curve_area([0.0, *fractions], values) / max(fractions)
    return out


def seed_accuracies(rows, estimator, reduce, mode, fill) -> dict:
    """{(seed, t): test accuracy} of one setting's runs (``reduce=None``: any reduction, as for random)."""
    return {
        (r["seed"], r["fraction"]): r["test_acc"]
        for r in rows
        if (r["estimator"], r["mode"], r["fill"]) == (estimator, mode, fill) and reduce in (None, r["reduce"])
    }


def fractions_of(rows, estimator, reduce, mode, fill) -> set:
    return {
        r["fraction"]
        for r in rows
        if (r["estimator"], r["reduce"], r["mode"], r["fill"]) == (estimator, reduce, mode, fill) and r["fraction"] > 0
    }


def test_statement(alpha: float, correction: str) -> str:
    """The test behind every verdict, as the report states it beside each verdict table."""
    named = {"holm": "Holm", "bonferroni": "Bonferroni", "bh": "Benjamini-Hochberg", "none": "no"}[correction]
    return (
        f"Welch's two-sided t-test on the per-seed mean accuracy over t in [0, max t] (the curve's area / span), "
        f"estimator vs random, n seeds per side as shown; alpha {alpha:g}; {named} correction over the verdicts "
        f"of each base model (p_adjusted decides the verdict)."
    )


def verdicts(rows, correction: str = "holm", alpha: float = ALPHA) -> list:
    """One row per (base model, estimator, mode, fill) with a random curve beside it: areas, the
    difference with its 95% interval, Welch's p and its ``correction`` over the base model's verdicts,
    a per-t test (curves can cross), and the verdict from the adjusted p. A leakage control
    (``mask_only``) is not judged here (see ``audit_verdicts``)."""
    out = []
    for base in bases_of(rows):
        judged = [{"base": base, **v} for v in base_verdicts(of_base(rows, base), alpha)]
        tested = [v for v in judged if "p" in v]
        for v, p in zip(tested, adjust_p([v["p"] for v in tested], correction)):
            v["p_adjusted"], v["correction"] = p, correction
            if not math.isnan(p):
                v["verdict"] = verdict_of(v["diff"], p, v["mode"] == "remove", alpha)
        out += judged
    return out


def base_verdicts(rows, alpha: float) -> list:
    """``verdicts`` of one base model's runs, before correction."""
    out = []
    for est, red, mode, fill in sorted(
        {(r["estimator"], r["reduce"], r["mode"], r["fill"]) for r in rows if r["fraction"] > 0}
    ):
        if est == "random" or fill_named(fill).leakage_control:
            continue
        rand_red = red if fractions_of(rows, "random", red, mode, fill) else "abs_sum"  # random ignores the reduction
        common = sorted(fractions_of(rows, est, red, mode, fill) & fractions_of(rows, "random", rand_red, mode, fill))
        head = {"estimator": ranking_name(est, red), "mode": mode, "fill": fill, "fractions": common}
        if not common:
            out.append({**head, "verdict": "no random curve to compare with"})
            continue
        if not any(r["fraction"] == 0.0 and r["fill"] == fill for r in rows):  # the curves' first point is missing
            out.append(
                {
                    **head,
                    "verdict": f"insufficient data: no t = 0 baseline run; run roar-train estimator=random fraction=0 "
                    f"mode={mode} fill={fill.partition('-')[0]} for each seed (or roar-train -m sweep=grid)",
                }
            )
            continue
        mine = seed_areas(rows, est, red, mode, fill, common)
        rand = seed_areas(rows, "random", rand_red, mode, fill, common)
        test = compare_with_random(list(mine.values()), list(rand.values()), mode == "remove", alpha)
        interval = welch_diff_ci(list(mine.values()), list(rand.values()))
        out.append(
            {
                **head,
                "area": float(np.mean(list(mine.values()))) if mine else math.nan,
                "area_random": float(np.mean(list(rand.values()))) if rand else math.nan,
                "diff_ci_low": interval["ci_low"],
                "diff_ci_high": interval["ci_high"],
                "seeds": len(mine),
                "seeds_random": len(rand),
                "per_t": per_t_tests(rows, (est, red), rand_red, mode, fill, common),
                **test,
            }
        )
        out[-1]["crossing"] = crossing(out[-1]["per_t"], mode == "remove", alpha)
    return out


def per_t_tests(rows, ranking, rand_red, mode, fill, fractions) -> list:
    """At each fraction: the difference of mean retrained accuracy (estimator - random) and Welch's p
    over seeds (uncorrected: it shows where the curves part or cross, the verdict stands on the area)."""
    mine = seed_accuracies(rows, *ranking, mode, fill)
    rand = seed_accuracies(rows, "random", rand_red, mode, fill)
    out = []
    for t in fractions:
        a = [v for (_, f), v in mine.items() if f == t]
        b = [v for (_, f), v in rand.items() if f == t]
        out.append({"t": t, "diff": float(np.mean(a) - np.mean(b)), "p": welch_p(a, b)})
    return out


def crossing(per_t: list, lower_is_better: bool, alpha: float) -> str:
    """ "" unless the estimator is significantly better than random at some t and worse at another (per-t
    Welch, uncorrected): then the fractions of each, since the area hides such a crossing."""
    better = [p["t"] for p in per_t if p["p"] < alpha and (p["diff"] < 0) == lower_is_better and p["diff"] != 0]
    worse = [p["t"] for p in per_t if p["p"] < alpha and (p["diff"] > 0) == lower_is_better and p["diff"] != 0]
    if not (better and worse):
        return ""
    return f"better at t={', '.join(map(fraction_name, better))}; worse at t={', '.join(map(fraction_name, worse))}"
