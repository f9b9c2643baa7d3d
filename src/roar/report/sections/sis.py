"""Sufficient input subsets (overinterpretation paper sections 4.1, 4.2, 4.4) of the backward-selection
rankings, from roar-eval's ``sis`` results (roar.evaluate.sis): their sizes, correct vs misclassified
images, the confidence on the top pixels alone, and where the subsets lie."""

import numpy as np

from roar.report import html
from roar.report.plots import plt, save
from roar.report.sections.section import Section, Table, drawn_if

SIS_SIZE = {
    "base": "base model",
    "ranking": "ranking",
    "tau": "tau",
    "n": "images with an SIS",
    "mean": "mean size (px)",
    "median": "median (px)",
    "percent": "mean, % of image",
}
SIS_VERSUS = {
    "base": "base model",
    "ranking": "ranking",
    "tau": "tau",
    "n_correct": "correct",
    "n_wrong": "misclassified",
    "mean_correct": "mean SIS, correct",
    "mean_wrong": "mean SIS, misclassified",
    "increase_pct": "increase %",
    "ci_low": "95% CI low",
    "ci_high": "95% CI high",
}


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


def render(data) -> str:
    """The SIS tables (overinterpretation paper sections 4.1, 4.2, 4.4); empty without gbs/bs results."""
    tables = data["sis"]
    if not tables["overview"]:
        return ""
    over = {
        "base": "base model",
        "ranking": "ranking",
        "fill": "fill",
        "images": "images",
        "accuracy": "accuracy",
        "full": "confidence, full image",
        "subset_share": "kept share",
        "subset": "confidence, top pixels",
        "drop": "drop",
        "drop_ci": "± 95%",
        "tau_map": "tau",
        "with_sis": "with SIS",
        "verified": "SIS re-evaluated >= tau",
    }
    regions = sorted({k[len("on_") :] for r in tables["overview"] for k in r if k.startswith("on_")})
    for name in regions:
        over[f"on_{name}"], over[f"area_{name}"] = f"SIS pixels on {name}", f"{name}'s share of image"
        over[f"held_{name}"] = f"{name} pixels in the SIS"
    note = (
        '<p class="note">The SIS at tau: the pixels backward selection removed last, as few as keep the confidence '
        "of the class predicted on the clean image at or above tau; images predicted below tau have none. "
        "Increase %: mean SIS size of correctly over misclassified images (paper Fig. 4: positive), interval of the "
        "difference in means (Welch). On shapes, a model that reads the planted marker puts its SIS on it.</p>"
    )
    formats = {
        "images": "{}",
        "with_sis": "{}",
        "n": "{}",
        "n_correct": "{}",
        "n_wrong": "{}",
        "tau": "{}",
        "mean": "{:.1f}",
        "median": "{:.0f}",
        "percent": "{:.1f}",
        "increase_pct": "{:.1f}",
        "ci_low": "{:.1f}",
        "ci_high": "{:.1f}",
        "mean_correct": "{:.1f}",
        "mean_wrong": "{:.1f}",
        "subset_share": "{}",
        "tau_map": "{}",
    }
    return (
        html.table(over, tables["overview"], formats)
        + html.table(SIS_SIZE, tables["size"], formats)
        + html.table(SIS_VERSUS, tables["versus"], formats)
        + note
    )


def figures(data, out, palette) -> list:
    return drawn_if(
        sis_heatmaps(data["evaluations"], out / "sis-heatmap.png"),
        "Overinterpretation paper: where the sufficient input subsets lie, the share of images whose SIS holds "
        "each pixel.",
    ) + drawn_if(
        sis_traces(data["evaluations"], out / "sis-traces.png"),
        "Overinterpretation paper Fig. S10: the confidence in the predicted class on the remaining pixels at each "
        "step of backward selection, for the first 32 evaluated images (grey) and their mean (black).",
    )


def tables(data) -> list:
    rows = [{**r, **v} for r, v in zip(data["sis"]["size"], data["sis"]["versus"])]
    return [Table("sis.csv", SIS_VERSUS | SIS_SIZE, rows)]


SECTION = Section(
    name="sis",
    title="Sufficient input subsets (overinterpretation paper, backward-selection rankings)",
    gather=lambda data: sis_tables(data["evaluations"]),
    html=render,
    figures=figures,
    tables=tables,
    table_names=("sis.csv",),
)


def sis_heatmaps(evaluations, path):
    """Where SIS pixels fall (overinterpretation paper, Fig. 2's maps pooled over images): per base model
    and backward-selection ranking, the share of images whose SIS at tau_map holds each pixel."""
    chosen = [e for e in evaluations if e.get("sis")]
    if not chosen:
        return None
    fig, axes = plt.subplots(1, len(chosen), figsize=(3.2 * len(chosen), 3.3), squeeze=False, layout="constrained")
    for ax, e in zip(axes[0], chosen):
        s = e["sis"]
        im = ax.imshow(np.asarray(s["heatmap"]), cmap="magma", vmin=0, vmax=1)
        ax.set_title(
            f"{e['ranking']}, tau={s['tau_map']}: {e['base']}\n{s['with_sis']} images, fill={e['fill']}", fontsize=7
        )
        ax.set_xticks([])
        ax.set_yticks([])
    fig.colorbar(im, ax=axes[0].tolist(), shrink=0.8, label="share of SIS holding the pixel")
    return save(fig, path)


def sis_traces(evaluations, path):
    """Overinterpretation Fig. S10: per base model and backward-selection ranking, each stored image's confidence
    trace (before any removal, then after every step) and their mean; None when no result holds traces."""
    chosen = [e for e in evaluations if (e.get("sis") or {}).get("traces")]
    if not chosen:
        return None
    fig, axes = plt.subplots(1, len(chosen), figsize=(3.6 * len(chosen), 3.2), squeeze=False, layout="constrained")
    for ax, e in zip(axes[0], chosen):
        traces = np.asarray(e["sis"]["traces"], dtype=float)
        steps = np.arange(traces.shape[1])
        for trace in traces:
            ax.plot(steps, trace, color="0.7", lw=0.6)
        ax.plot(steps, traces.mean(0), color="black", lw=1.6, label="mean")
        ax.set_title(f"{e['ranking']}: {e['base']}\n{len(traces)} images, fill={e['fill']}", fontsize=7)
        ax.set_xlabel("backward selection step")
        ax.set_ylim(0, 1)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("confidence on the remaining pixels")
    return save(fig, path)
