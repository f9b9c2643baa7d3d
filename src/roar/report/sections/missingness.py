"""Missingness bias (missingness paper, Jain et al. 2022): where predictions go as patches are removed, least
or most important first (sections 3, 5; Figs. 3-5), and LIME's consistency across baseline colours (Fig. 8)."""

import numpy as np

from roar.report import html
from roar.report.plots import plt, save
from roar.report.sections.section import Section, keep

MISSINGNESS_COLUMNS = {
    "base": "model",
    "fill": "fill",
    "ranking": "ranking",
    "order": "order from",
    "t": "share removed",
    "lif_unchanged": "unchanged, least important first",
    "mif_unchanged": "unchanged, most important first",
    "lif_entropy": "class entropy / log C (LIF)",
    "mif_entropy": "class entropy / log C (MIF)",
}
MISSINGNESS_NOTE = (
    '<p class="note">Unchanged: the share of test images whose prediction equals the clean image\'s. A model biased by '
    "missingness changes its prediction (and collapses onto few classes: low entropy) even when the least important "
    "patches go (paper Figs. 3, 4); with the top-K patches of an explanation removed first, a faster drop is a better "
    "explanation for that model (the top-K ablation test, Figs. 9, 10).</p>"
)


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


def figures(data, out, palette) -> list:
    drawn = []
    for fill in sorted({e["fill"] for e in data["by_patch"] if "predictions" in e}):
        for key, what in (
            ("unchanged", "fraction of predictions unchanged"),
            ("entropy_norm", "class entropy / log C"),
        ):
            keep(
                drawn,
                prediction_shift(data["by_patch"], fill, key, out / f"{key.replace('_', '-')}-{fill}.png"),
                f"Missingness paper Figs. 3-5 (fill={fill}): {what} as patches are removed, most (MIF, solid) or "
                "least (LIF, dashed) important first; 'from' names the model whose maps set the order.",
            )
    keep(
        drawn,
        consistency_curves(data["consistency"], out / "lime-consistency.png"),
        "Missingness paper Fig. 8: Jaccard similarity of LIME's top-k patches across the 28 pairs of baseline "
        "colours (95% CI over pairs); dotted: two random orders.",
    )
    return drawn


SECTION = Section(
    name="missingness",
    title="Missingness bias: where predictions go as patches are removed (missingness paper)",
    gather=lambda data: missingness_rows(data["by_patch"]),
    html=lambda data: (
        html.table(MISSINGNESS_COLUMNS, data["missingness"], {"k": "{}"}) + MISSINGNESS_NOTE
        if data["missingness"]
        else ""
    ),
    figures=figures,
)


def prediction_shift(evaluations, fill: str, key: str, path):
    """Missingness paper Figs. 3-5: ``key`` (unchanged share or normalized class entropy) vs the share of
    features removed, one panel per model, one colour per ranking and order source, MIF solid, LIF dashed."""
    chosen = [e for e in evaluations if e["fill"] == fill and e.get("predictions")]
    if not chosen:
        return None
    bases = sorted({e["base"] for e in chosen})
    fig, axes = plt.subplots(
        1, len(bases), figsize=(4.2 * len(bases), 3.4), squeeze=False, sharey=True, layout="constrained"
    )
    colours = {}
    for ax, base in zip(axes[0], bases):
        for e in (e for e in chosen if e["base"] == base):
            label = e["ranking"] + (f" from {e['order_from']}" if e.get("order_from") else "")
            colour = colours.setdefault(label, plt.get_cmap("tab10")(len(colours) % 10))
            x = np.asarray(e["fractions"]) * 100
            for name, style in (("mif", "-"), ("lif", "--")):
                ax.plot(x, e["predictions"][name][key], style, color=colour, label=f"{label} ({name.upper()})")
        ax.set_title(base, fontsize=8)
        ax.set_xlabel("% of features removed")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel(key.replace("_", " "))
    handles = {}
    for ax in axes[0]:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(label, handle)
    fig.legend(list(handles.values()), list(handles), fontsize=6, loc="outside right center")
    return save(fig, path)


def consistency_curves(results, path):
    """Missingness paper Fig. 8: mean Jaccard of top-k LIME patches over colour pairs, per model."""
    if not results:
        return None
    fig, ax = plt.subplots(figsize=(5.5, 3.6), layout="constrained")
    for r in results:
        k = np.asarray([row["k"] for row in r["curve"]])
        mean = np.asarray([row["mean"] for row in r["curve"]])
        low = np.asarray([row["ci_low"] for row in r["curve"]], dtype=float)
        high = np.asarray([row["ci_high"] for row in r["curve"]], dtype=float)
        label = f"{r['base']} ({'token drop' if r['drop_tokens'] else 'painted'})"
        line = ax.plot(k, mean, label=label)[0]
        ax.fill_between(
            k,
            np.where(np.isnan(low), mean, low),
            np.where(np.isnan(high), mean, high),
            color=line.get_color(),
            alpha=0.2,
        )
    first = results[0]["curve"]
    ax.plot([row["k"] for row in first], [row["random"] for row in first], ":", color="0.3", label="random orders")
    ax.set_xlabel("k (top patches)")
    ax.set_ylabel("Jaccard similarity")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6)
    return save(fig, path)
