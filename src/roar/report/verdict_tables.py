"""The verdict tables: their columns, the test stated beside them, the HTML per base model and the console."""

import math

from roar.evaluate.leakage import CONFOUNDED
from roar.report import analysis, html
from roar.utils.log import get_logger

log = get_logger(__name__)

VERDICT_COLUMNS = {
    "base": "base model",
    "estimator": "estimator",
    "mode": "mode",
    "fill": "fill",
    "area": "mean acc. (area / span)",
    "area_random": "random",
    "diff": "difference",
    "diff_ci": "95% CI",
    "p": "p (Welch)",
    "p_adjusted": "p adjusted",
    "seeds": "seeds",
    "seeds_random": "random's seeds",
    "verdict": "verdict",
    "crossing": "per-t: curves cross",
    "recoverability": "mask recoverability",
    "mask_only": "mask-only acc. above chance",
    "mask_only_random": "random's mask-only acc. above chance",
    "mask_only_p": "p (mask-only vs random)",
    "consistency": "MoRF/LeRF consistency (no retraining)",
    "consistency_n": "rankings",
    "consistency_p": "p (permutation)",
    "leakage": "leakage",
}
VERDICT_CSV = [*VERDICT_COLUMNS, "diff_ci_low", "diff_ci_high", "correction", "fractions", "per_t"]


def verdict_rows(verdicts) -> list:
    """Verdicts as the tables show them: the difference's interval as one cell."""
    return [
        {
            **v,
            "diff_ci": f"[{v['diff_ci_low']:+.4f}, {v['diff_ci_high']:+.4f}]"
            if isinstance(v.get("diff_ci_low"), float) and not math.isnan(v["diff_ci_low"])
            else None,
        }
        for v in verdicts
    ]


def verdict_note(data) -> str:
    """What every verdict table states beside it: the test, the correction, the leakage label's rule."""
    steps = ", ".join(map(str, data["audit_steps"])) or "none run"
    return (
        f"{data['statement']} Under ROAR lower is better; under KAR higher. Per-t: Welch's test at each fraction "
        f"(uncorrected), shown where the estimator is better at one t and worse at another. Leakage: 'confounded by "
        f"leakage' only when the masks are recoverable from the filled images (mask recoverability above {CONFOUNDED}, "
        f"a per-pixel classifier trained for mask.audit_steps = {steps} steps) and carry class information (the "
        f"ranking's fill=mask_only retrains beat random's, Welch, alpha {data['alpha']:g}). MoRF/LeRF consistency "
        "comes from the no-retrain curves (roar-eval), random excluded; p: one-sided permutation test for rho > 0."
    )


def verdict_section(data) -> str:
    """One verdict table per base model, the test stated under them."""
    formats = {
        "p": "{:.3g}",
        "p_adjusted": "{:.3g}",
        "mask_only_p": "{:.3g}",
        "consistency_p": "{:.3g}",
        "seeds": "{}",
        "seeds_random": "{}",
        "consistency_n": "{}",
        "diff": "{:+.4f}",
        "area": "{:.4f}",
        "area_random": "{:.4f}",
    }
    keys = list(VERDICT_COLUMNS)
    test = {k: VERDICT_COLUMNS[k] for k in keys[1 : keys.index("recoverability")]}  # the base is the heading
    audit = {k: VERDICT_COLUMNS[k] for k in ("estimator", "mode", "fill", *keys[keys.index("recoverability") :])}
    parts = []
    for base in analysis.bases_of(data["verdicts"]):
        rows = verdict_rows(analysis.of_base(data["verdicts"], base))
        parts.append(f"<h3>{html.escape(base)}</h3>{html.table(test, rows, formats)}")
        parts.append(f"<p>Leakage audit of the same verdicts:</p>{html.table(audit, rows, formats)}")
    return "".join(parts) + f'<p class="note">{html.escape(verdict_note(data))}</p>'


def print_verdicts(data) -> None:
    """Every verdict row on the console (those without a test too), per base model, the test stated."""
    if not data["verdicts"]:
        return
    log.info(f"Verdict: {data['statement']}")
    for base in analysis.bases_of(data["verdicts"]):
        log.info(f"  base model {base}")
        log.info(
            f"  {'estimator':22s} {'mode':6s} {'fill':14s} {'mean acc':>9s} {'random':>8s} {'p':>8s} "
            f"{'p adj.':>8s}  verdict"
        )
        for v in analysis.of_base(data["verdicts"], base):
            if "area" in v:
                log.info(
                    f"  {v['estimator']:22s} {v['mode']:6s} {v['fill']:14s} {v['area']:9.4f} {v['area_random']:8.4f} "
                    f"{v['p']:8.3g} {v.get('p_adjusted', math.nan):8.3g}  {v['verdict']}"
                    + (f" ({v['leakage']})" if v.get("leakage") else "")
                )
            else:
                log.info(f"  {v['estimator']:22s} {v['mode']:6s} {v['fill']:14s} {'':>36s}  {v['verdict']}")
