"""Statistics of the report: confidence intervals, curve areas, comparisons with random, rank agreement.

Every function takes plain sequences and returns plain floats, so tests can check them by hand.
"""

import math

import numpy as np
from scipy import stats as sps

LEVEL = 0.95
ALPHA = 0.05  # the verdicts' significance level (report.alpha)


def mean_ci(values, level: float = LEVEL) -> dict:
    """Mean, sample std (ddof 1) and the two-sided Student-t confidence interval of the mean.

    One value gives std 0 and no interval (ci_low = ci_high = NaN): one seed says nothing about spread.
    """
    x = np.asarray([v for v in values if v is not None and not math.isnan(v)], dtype=float)
    n = len(x)
    if n == 0:
        return {"n": 0, "mean": math.nan, "std": math.nan, "ci_low": math.nan, "ci_high": math.nan}
    mean = float(x.mean())
    if n == 1:
        return {"n": 1, "mean": mean, "std": 0.0, "ci_low": math.nan, "ci_high": math.nan}
    std = float(x.std(ddof=1))
    half = float(sps.t.ppf(0.5 + level / 2, n - 1)) * std / math.sqrt(n)
    return {"n": n, "mean": mean, "std": std, "ci_low": mean - half, "ci_high": mean + half}


def normal_ci_half_width(values, level: float = LEVEL) -> float:
    """z x sd / sqrt(n): the +- of a mean over many images (FPA Table 1's 95% intervals)."""
    x = np.asarray(values, dtype=float)
    if len(x) < 2:
        return math.nan
    return float(sps.norm.ppf(0.5 + level / 2) * x.std(ddof=1) / math.sqrt(len(x)))


def welch_diff_ci(a, b, level: float = LEVEL) -> dict:
    """mean(a) - mean(b) and its Welch-Satterthwaite t interval (unequal variances); NaN where either
    side has fewer than two values."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if len(a) < 2 or len(b) < 2:
        d = float(a.mean() - b.mean()) if len(a) and len(b) else math.nan
        return {"diff": d, "ci_low": math.nan, "ci_high": math.nan}
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    d, se = float(a.mean() - b.mean()), math.sqrt(va + vb)
    if se == 0:
        return {"diff": d, "ci_low": d, "ci_high": d}
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    half = float(sps.t.ppf(0.5 + level / 2, df)) * se
    return {"diff": d, "ci_low": d - half, "ci_high": d + half}


def curve_area(fractions, values):
    """Trapezoid area under ``values`` (..., S) over the S ``fractions`` (increasing): a float for one
    curve, an array for a stack of them."""
    f, v = np.asarray(fractions, dtype=float), np.asarray(values, dtype=float)
    area = np.sum((f[1:] - f[:-1]) * (v[..., 1:] + v[..., :-1]) / 2, axis=-1)
    return float(area) if area.ndim == 0 else area


def fidelity_area(fractions, mif, lif):
    """FPA section 3's A: the area between the LIF and the MIF curve, x in percent of features masked.

    ``mif``/``lif`` are (..., S) curves over the S ``fractions``; returns (...) areas, larger = more
    faithful. Percent on x gives FPA Table 1's scale (an ideal estimator of normalized logits: ~100).
    """
    return curve_area(
        np.asarray(fractions, dtype=float) * 100, np.asarray(lif, dtype=float) - np.asarray(mif, dtype=float)
    )


def compare_with_random(values, random_values, lower_is_better: bool, alpha: float = ALPHA) -> dict:
    """Welch's t-test of one estimator's per-seed curve areas against random's.

    verdict: "better than random" / "no different" / "worse than random" (two-sided, ``alpha``,
    uncorrected: the report adjusts p for the number of verdicts and decides again, ``verdict_of``);
    "too few seeds" when either side has fewer than two; "insufficient data" when an area is undefined
    (NaN: a curve without its t = 0 point), never a verdict drawn from NaN.
    """
    a = np.asarray(values, dtype=float)
    b = np.asarray(random_values, dtype=float)
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        return {"diff": math.nan, "p": math.nan, "verdict": "insufficient data"}
    out = {"diff": float(a.mean() - b.mean()) if len(a) and len(b) else math.nan, "p": math.nan}
    if len(a) < 2 or len(b) < 2:
        return {**out, "verdict": "too few seeds"}
    p = welch_p(a, b)
    return {**out, "p": p, "verdict": verdict_of(out["diff"], p, lower_is_better, alpha)}


def verdict_of(diff: float, p: float, lower_is_better: bool, alpha: float = ALPHA) -> str:
    """The verdict a (possibly adjusted) p gives: no different at p >= alpha, else by the sign of diff."""
    if p >= alpha:
        return "no different"
    return "better than random" if (diff < 0 if lower_is_better else diff > 0) else "worse than random"


def spearman(scores_a: dict, scores_b: dict) -> dict:
    """Spearman rank correlation of two {estimator: score} orderings over their common estimators
    (higher score = ranked better in both). Needs three estimators in common, and neither ordering all ties; else
    rho is NaN (undefined, as scipy says with a warning this spares the console)."""
    common = sorted(set(scores_a) & set(scores_b))
    constant = any(len({d[k] for k in common}) < 2 for d in (scores_a, scores_b))
    if len(common) < 3 or constant:
        return {"rho": math.nan, "n": len(common), "estimators": common}
    rho = sps.spearmanr([scores_a[k] for k in common], [scores_b[k] for k in common]).statistic
    return {"rho": float(rho), "n": len(common), "estimators": common}


CORRECTIONS = ("holm", "bonferroni", "bh", "none")


def adjust_p(p_values, method: str = "holm") -> list:
    """p-values adjusted for the number of tests, in the input's order; NaN stays NaN and is not counted.

    holm: Holm's step-down (1979), controls the family-wise error rate, never less powerful than
    bonferroni (p x m); bh: Benjamini-Hochberg step-up (1995), controls the false discovery rate;
    none: unchanged. Adjusted values are capped at 1.
    """
    if method not in CORRECTIONS:
        raise ValueError(f"unknown correction {method!r}; one of {', '.join(CORRECTIONS)}")
    p = np.asarray(p_values, dtype=float)
    out = p.copy()
    ok = np.flatnonzero(np.isfinite(p))
    m = len(ok)
    if m == 0 or method == "none":
        return out.tolist()
    q = p[ok]
    if method == "bonferroni":
        adj = np.minimum(q * m, 1.0)
    elif method == "holm":
        order = np.argsort(q, kind="stable")
        steps = np.maximum.accumulate(q[order] * (m - np.arange(m)))
        adj = np.empty(m)
        adj[order] = np.minimum(steps, 1.0)
    else:  # bh
        order = np.argsort(q, kind="stable")
        ranked = q[order] * m / np.arange(1, m + 1)
        steps = np.minimum.accumulate(ranked[::-1])[::-1]
        adj = np.empty(m)
        adj[order] = np.minimum(steps, 1.0)
    out[ok] = adj
    return out.tolist()


def welch_p(a, b) -> float:
    """Two-sided Welch's t-test p of two samples; NaN with fewer than two values on a side; 0 or 1 when
    neither side has spread (the statistic is undefined: equal means give 1, different means 0)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if len(a) < 2 or len(b) < 2 or not (np.isfinite(a).all() and np.isfinite(b).all()):
        return math.nan
    if np.all(a == a[0]) and np.all(b == b[0]):
        return 0.0 if a[0] != b[0] else 1.0
    return float(sps.ttest_ind(a, b, equal_var=False).pvalue)


def spearman_permutation(scores_a: dict, scores_b: dict, draws: int = 20000, seed: int = 0) -> dict:
    """``spearman`` plus a one-sided permutation p-value for rho > 0: the share of orderings of one side
    whose rho reaches the observed one (all n! orderings when n <= 8, else ``draws`` seeded ones)."""
    out = spearman(scores_a, scores_b)
    n = out["n"]
    if math.isnan(out["rho"]):
        return {**out, "p": math.nan}
    a = sps.rankdata([scores_a[k] for k in out["estimators"]])
    b = sps.rankdata([scores_b[k] for k in out["estimators"]])
    if n <= 8:
        import itertools

        perms = np.array(list(itertools.permutations(range(n))))
    else:
        rng = np.random.default_rng(seed)
        perms = np.array([rng.permutation(n) for _ in range(draws)])
    a_c, b_c = a - a.mean(), b - b.mean()
    denom = math.sqrt(float((a_c**2).sum() * (b_c**2).sum()))
    if denom == 0:
        return {**out, "p": math.nan}
    rhos = (a_c[perms] * b_c).sum(1) / denom
    return {**out, "p": float(np.mean(rhos >= out["rho"] - 1e-12))}
