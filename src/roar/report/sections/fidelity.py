"""Fidelity without retraining (FPA section 3, Table 1, Fig. 3): the area A between the LIF and MIF curves
of the normalized target logit, 95% CI over images, one row per base model and one column per ranking."""

import numpy as np

from roar.report import html
from roar.report.plots import CURVE_TITLES, band, plt, save
from roar.report.sections.section import Section, Table, keep


def fidelity_rows(evaluations, fill: str) -> list:
    """FPA Table 1: one row per base model (its augmentation), one column per ranking, A ± 95% CI."""
    rows = {}
    for e in evaluations:
        if e["fill"] == fill:
            row = rows.setdefault(e["base"], {"base": e["base"], "model": e["model"], "augment": e["augment"]})
            row[e["ranking"]] = f"{e['fidelity']['mean']:.1f} ± {e['fidelity']['ci']:.1f}"
    return sorted(rows.values(), key=lambda r: (r["model"], r["augment"] != "none", r["augment"], r["base"]))


def fidelity_columns(data) -> list:
    """The fidelity table's rankings: eval.rankings' order first, any others after."""
    present = {k for r in data["fidelity"] for k in r} - {"base", "model", "augment"}
    return [r for r in data["ranking_order"] if r in present] + sorted(present - set(data["ranking_order"]))


def render(data) -> str:
    columns = {"base": "base model", "model": "model", "augment": "augment", **{k: k for k in fidelity_columns(data)}}
    return html.table(columns, data["fidelity"]) if data["fidelity"] else ""


def figures(data, out, palette) -> list:
    drawn = []
    for fill in sorted({e["fill"] for e in data["evaluations"]}):
        keep(
            drawn,
            mif_lif_curves(data["evaluations"], fill, out / f"mif-lif-{fill}.png", palette),
            f"FPA Fig. 3: MIF and LIF curves of the normalized target logit (fill={fill}), 95% CI over images; "
            "A = area between them.",
        )
        keep(
            drawn,
            lif_scores(data["evaluations"], fill, out / f"lif-scores-{fill}.png", palette),
            f"FPA Fig. 4 and appendix C.3 (fill={fill}): top, the LIF curves of the normalized target logit; bottom, "
            "the importance scores of the features masked in LIF order (mean over images), position in the ranking "
            "on the x-axis. Masking features of negative score raising the logit is what a signed estimator claims.",
        )
        keep(
            drawn,
            sign_example(data["evaluations"], fill, out / f"sign-example-{fill}.png"),
            f"FPA Fig. 5 (fill={fill}), one test image (the first evaluated) per signed ranking: its map, the map "
            "truncated (scores within the 98th percentile of |score| set to zero, clipped at the 99th), its MIF and "
            "LIF curves, and the scores of the features each step masks in LIF and in MIF order. (The image itself "
            "is not stored with the results.)",
        )
    return drawn


SIGNED_ROWS = 3  # signed rankings drawn in FPA Fig. 5


def sign_example(evaluations, fill: str, path):
    """FPA Fig. 5 from roar-eval's stored example of each signed ranking (reduce=sum); None without one."""
    chosen = [
        e
        for e in evaluations
        if e["fill"] == fill and e.get("reduce") == "sum" and (e.get("example") or {}).get("heatmap")
    ][:SIGNED_ROWS]
    if not chosen:
        return None
    fig, axes = plt.subplots(len(chosen), 5, figsize=(17, 3.2 * len(chosen)), squeeze=False, layout="constrained")
    for row, e in zip(axes, chosen):
        ex, x = e["example"], np.asarray(e["fractions"]) * 100
        heat = np.asarray(ex["heatmap"])
        lim = float(np.percentile(np.abs(heat), 99)) or 1.0
        truncated = np.where(np.abs(heat) >= np.percentile(np.abs(heat), 98), np.clip(heat, -lim, lim), 0.0)
        for ax, image, title in (
            (row[0], heat, f"{e['ranking']}\n{e['base']}"),
            (row[1], truncated, "truncated (top 2% of |score|)"),
        ):
            ax.imshow(image, cmap="bwr", vmin=-lim, vmax=lim)
            ax.set_title(title, fontsize=8)
            ax.axis("off")
        row[2].plot(x, ex["mif"], label="MIF", color="C3")
        row[2].plot(x, ex["lif"], label="LIF", color="C0")
        row[2].set_ylabel("target logit / unmasked", fontsize=8)
        row[2].legend(fontsize=7)
        for ax, key, title in ((row[3], "lif_scores", "scores masked, LIF order"), (row[4], "mif_scores", "MIF order")):
            ax.plot(x, ex[key], color="0.2")
            ax.axhline(0, color="0.6", lw=0.8)
            ax.set_title(title, fontsize=8)
        for ax in row[2:]:
            ax.set_xlabel("% of features masked", fontsize=8)
            ax.grid(alpha=0.3)
    return save(fig, path)


def tables(data) -> list:
    return [Table("fidelity.csv", ["base", "model", "augment", *fidelity_columns(data)], data["fidelity"], always=True)]


SECTION = Section(
    name="fidelity",
    title="Fidelity without retraining (FPA Table 1: area between LIF and MIF, 95% CI over images)",
    gather=lambda data: fidelity_rows(data["evaluations"], data["fill"]),
    html=render,
    figures=figures,
    tables=tables,
    table_names=("fidelity.csv",),
)


def mif_lif_curves(evaluations, fill: str, path, palette):
    """FPA Fig. 3: normalized target logit under MIF (left) and LIF (right), one row per base model."""
    chosen = [e for e in evaluations if e["fill"] == fill]
    if not chosen:
        return None
    bases = sorted({(e["model"], e["augment"]) for e in chosen}, key=lambda b: (b[0], b[1] != "none", b[1]))
    fig, axes = plt.subplots(
        len(bases), 2, figsize=(11, 3.4 * len(bases)), sharey=True, squeeze=False, layout="constrained"
    )
    for row, base in zip(axes, bases):
        for e in chosen:
            if (e["model"], e["augment"]) != base:
                continue
            for ax, key in zip(row, CURVE_TITLES):
                mean, ci = np.asarray(e[key]["mean"]), np.asarray(e[key]["ci"], dtype=float)
                band(
                    ax,
                    np.asarray(e["fractions"]) * 100,
                    mean,
                    mean - ci,
                    mean + ci,
                    f"{e['ranking']} (A={e['fidelity']['mean']:.1f})",
                    palette.style(e["ranking"]),
                )
        for ax, key in zip(row, CURVE_TITLES):
            ax.set_title(f"{CURVE_TITLES[key]}: {base[0]}-{base[1]}", fontsize=9)
            ax.set_xlabel("% of features masked")
            ax.grid(alpha=0.3)
        row[0].set_ylabel("target logit / unmasked logit")
        row[1].legend(fontsize=7, loc="center left", bbox_to_anchor=(1.02, 0.5))
    return save(fig, path)


def lif_scores(evaluations, fill: str, path, palette):
    """FPA Fig. 4 / C.3: per base model a column, the LIF curve of the normalized target logit (top) over the mean
    importance score of the features in LIF order (bottom), one line per ranking; None without the scores (roar-eval
    results written before they were recorded)."""
    chosen = [e for e in evaluations if e["fill"] == fill and e.get("lif_scores")]
    if not chosen:
        return None
    bases = sorted({(e["model"], e["augment"]) for e in chosen}, key=lambda b: (b[0], b[1] != "none", b[1]))
    fig, axes = plt.subplots(
        2, len(bases), figsize=(4.6 * len(bases), 6.4), sharex=True, squeeze=False, layout="constrained"
    )
    for col, base in enumerate(bases):
        top, bottom = axes[0][col], axes[1][col]
        for e in chosen:
            if (e["model"], e["augment"]) == base:
                x = np.asarray(e["fractions"]) * 100
                style = palette.style(e["ranking"])
                top.plot(x, e["lif"]["mean"], label=e["ranking"], **style)
                bottom.plot(x, e["lif_scores"], label=e["ranking"], **style)
        top.set_title(f"LIF: {base[0]}-{base[1]}", fontsize=9)
        bottom.axhline(0, color="0.6", lw=0.8)
        bottom.set_xlabel("% of features masked (LIF order)")
        for ax in (top, bottom):
            ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("target logit / unmasked logit")
    axes[1][0].set_ylabel("importance score (mean over images)")
    axes[0][-1].legend(fontsize=7, loc="center left", bbox_to_anchor=(1.02, 0.5))
    return save(fig, path)
