"""Do the evaluation methods agree? Spearman correlation of the estimators' orderings under each method
(ROAR, KAR, no-retrain fidelity A, no-retrain deletion) over the estimators both rank, per base model."""

import itertools

import numpy as np

from roar.evaluate.stats import curve_area, spearman
from roar.report import html
from roar.report.analysis import fractions_of, seed_areas
from roar.report.sections.section import Section, Table
from roar.store.names import ranking_name

COLUMNS = {
    "base": "base model",
    "a": "method",
    "b": "method",
    "rho": "Spearman rho",
    "n": "estimators",
    "estimators": "compared",
}


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


def render(data) -> str:
    rows = [{**a, "estimators": ", ".join(a["estimators"])} for a in data["agreement"]]
    return html.table(COLUMNS, rows, {"n": "{}"}) if rows else ""


def tables(data) -> list:
    rows = [{**a, "estimators": " ".join(a["estimators"])} for a in data["agreement"]]
    return [Table("agreement.csv", list(COLUMNS), rows, always=True)]


SECTION = Section(
    name="agreement",
    title="Do the evaluation methods agree? (per base model)",
    gather=lambda data: agreement(data["rows"], data["evaluations"], data["fill"]),
    html=render,
    tables=tables,
    table_names=("agreement.csv",),
)
