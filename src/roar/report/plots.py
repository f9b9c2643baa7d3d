"""The report's figures (PNG, matplotlib's Agg backend: no display needed).

Every ranking keeps one colour in every figure; the controls ``random`` and ``sobel`` are
dashed, the ground-truth ``oracle`` and ``shortcut`` dotted.
Missing points are left out of a line, never drawn as zeros.
"""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from roar.estimators import parse  # noqa: E402
from roar.report.analysis import curve, curves_of  # noqa: E402
from roar.store.keys import ShardSetKey  # noqa: E402
from roar.store.names import fraction_name, parse_ranking, ranking_name, split_feature

CONTROLS = {
    "random": ("0.35", "--"),
    "sobel": ("0.6", "--"),
    "oracle": ("black", ":"),
    "shortcut": ("0.2", ":"),
}  # grey dashed: no model; black dotted: the ground truth
FAMILIES = {
    "base": "Base estimators",
    "sq": "Base estimators",
    "sg": "SmoothGrad",
    "sg_sq": "SmoothGrad-squared and VarGrad",
    "vargrad": "SmoothGrad-squared and VarGrad",
    "sg_x_input": "SmoothGrad",
}  # ROAR Fig. 4
CURVE_TITLES = {"mif": "MIF: most important first", "lif": "LIF: least important first"}


class Palette:
    """One colour per ranking name, in first-seen order."""

    def __init__(self):
        tab10 = plt.get_cmap("tab10").colors
        self.colors, self.cycle = (
            {},
            [c for k, c in enumerate(tab10) if k != 7] + list(plt.get_cmap("Dark2").colors),
        )  # grey is the controls'

    def style(self, ranking: str) -> dict:
        est = parse_ranking(ranking)[0]
        if est in CONTROLS:
            color, ls = CONTROLS[est]
            return {"color": color, "linestyle": ls}
        if ranking not in self.colors:
            self.colors[ranking] = self.cycle[len(self.colors) % len(self.cycle)]
        return {"color": self.colors[ranking], "linestyle": "-"}


def family(ranking: str) -> str:
    kind, _ = parse(parse_ranking(ranking)[0])
    return FAMILIES.get(kind, "controls")


def save(fig, path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=110, bbox_inches="tight")
    plt.close(fig)
    tmp.replace(path)
    return path


def band(ax, xs, mean, low, high, label, style):
    ax.plot(xs, mean, marker="o", markersize=3, label=label, **style)
    low, high = np.asarray(low, dtype=float), np.asarray(high, dtype=float)
    if np.isfinite(low).any():
        ax.fill_between(xs, low, high, color=style["color"], alpha=0.15, linewidth=0)


def accuracy_curves(summary, baselines, mode: str, fill: str, path, palette: Palette):
    """ROAR (mode remove) or KAR (keep) test accuracy vs fraction masked, laid out like ROAR Fig. 4:
    one panel per estimator family, the controls in every panel. None when there is nothing to draw."""
    keys = [k for k in curves_of(summary) if k[2] == mode and k[3] == fill]
    if not keys:
        return None
    names = {k: ranking_name(k[0], k[1]) for k in keys}
    panels = sorted({family(n) for n in names.values()} - {"controls"}, key=list(FAMILIES.values()).index) or [
        "controls"
    ]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.6), sharey=True, squeeze=False)
    for ax, panel in zip(axes[0], panels):
        for k in keys:
            if family(names[k]) not in (panel, "controls"):
                continue
            pts = curve(summary, baselines.get(fill), *k)
            band(
                ax,
                [p["fraction"] for p in pts],
                [p["mean"] for p in pts],
                [p["ci_low"] for p in pts],
                [p["ci_high"] for p in pts],
                names[k],
                palette.style(names[k]),
            )
        ax.set_title(panel)
        ax.set_xlabel(
            "fraction of features masked (t)" if mode == "remove" else "fraction masked, least important first (t)"
        )
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    axes[0][0].set_ylabel("test accuracy after retraining")
    fig.suptitle(
        f"{'ROAR (remove)' if mode == 'remove' else 'KAR (keep)'}, fill={fill}: mean and 95% CI over seeds", fontsize=10
    )
    return save(fig, path)


def retrain_vs_no_retrain(summary, baselines, evaluations, fill: str, path, palette: Palette):
    """ROAR Fig. 3: the same rankings with retraining (left) and without (right, the base model)."""
    keys = [k for k in curves_of(summary) if k[2] == "remove" and k[3] == fill]
    chosen = [e for e in evaluations if e["fill"] == fill and "remove" in e["deletion"]]
    if not keys or not chosen:
        return None
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.6), sharey=True)
    for k in keys:
        pts = curve(summary, baselines.get(fill), *k)
        name = ranking_name(k[0], k[1])
        band(
            left,
            [p["fraction"] for p in pts],
            [p["mean"] for p in pts],
            [p["ci_low"] for p in pts],
            [p["ci_high"] for p in pts],
            name,
            palette.style(name),
        )
    base = chosen[0]["model"], chosen[0]["augment"]
    for e in chosen:
        if (e["model"], e["augment"]) == base:
            d = e["deletion"]["remove"]
            right.plot(
                d["fractions"],
                d["accuracy"],
                marker="o",
                markersize=3,
                label=e["ranking"],
                **palette.style(e["ranking"]),
            )
    left.set_title("retrained (ROAR)")
    right.set_title(f"not retrained ({base[0]}-{base[1]} base model)")
    left.set_ylabel("test accuracy")
    for ax in (left, right):
        ax.set_xlabel("fraction of features removed (t)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    return save(fig, path)


def mif_lif_curves(evaluations, fill: str, path, palette: Palette):
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


def soundness_curves(results, path):
    """Masking-explanations paper Figs. 9, 12: the mean probability of a (prediction) and a' (runner-up)
    vs the share p of the map kept, one panel per (replacement, label), one line per base model and ranking."""
    if not results:
        return None
    panels = sorted(
        {(g, lab) for e in results for g, r in e["summary"]["replacements"].items() for lab in ("a", "a2") if lab in r}
    )
    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 3.2), squeeze=False, layout="constrained")
    for ax, (gamma, lab) in zip(axes[0], panels):
        for e in results:
            r = e["summary"]["replacements"].get(gamma, {})
            if lab in r:
                ax.plot(
                    e["grid"],
                    r[lab]["curve"],
                    label=f"{e['ranking']} ({e['base']})" if len(results) > 1 else e["ranking"],
                )
        lo, hi = results[0]["summary"]["score_range"]
        ax.axvspan(lo, hi, color="0.85", zorder=0)
        ax.set_title(("a (prediction)" if lab == "a" else "a' (runner-up)") + f", {gamma}", fontsize=8)
        ax.set_xlabel("share of pixels kept (p)")
        ax.set_ylim(0, 1)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("probability of the label")
    axes[0][-1].legend(fontsize=6)
    return save(fig, path)


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


def image_grid(base, summary, baseline, mode: str, fill: str, path):
    """ROAR Fig. 1: the first test image masked by every ranking at every fraction (t = 0, the
    unmodified image, first), the mean test accuracy after retraining above each."""
    from roar.store.manifest import shard_name
    from roar.store.masked import decode_masked_sample
    from roar.store.shards import read_shard

    keys = [k for k in curves_of(summary) if k[2] == mode and k[3] == fill]
    fractions = [0.0] + sorted(
        {s["fraction"] for s in summary if s["n"] and s["mode"] == mode and s["fill"] == fill and s["fraction"] > 0}
    )
    cells = {}
    for k in keys:
        for t in fractions:
            reduce, patch = split_feature(k[1])
            tar = ShardSetKey(base, k[0], reduce, mode, fill, t, patch).folder / shard_name("test", 0)
            if tar.is_file():
                cells[k, t] = decode_masked_sample(next(iter(read_shard(tar))), with_mask=False)["image"]
    if not cells:
        return None
    acc = {
        (s["estimator"], s["reduce"], s["fraction"]): s["mean"]
        for s in summary
        if s["mode"] == mode and s["fill"] == fill and s["n"]
    }
    if baseline is not None:  # one t = 0 run serves every ranking
        acc.update({(k[0], k[1], 0.0): baseline["mean"] for k in keys})
    fig, axes = plt.subplots(
        len(keys), len(fractions), figsize=(1.5 * len(fractions) + 1.2, 1.6 * len(keys)), squeeze=False
    )
    for i, k in enumerate(keys):
        for j, t in enumerate(fractions):
            ax = axes[i][j]
            ax.set_xticks([])
            ax.set_yticks([])
            image = cells.get((k, t))
            if image is not None:
                ax.imshow(
                    image[0] if image.shape[0] == 1 else image.permute(1, 2, 0),
                    cmap="gray" if image.shape[0] == 1 else None,
                    vmin=0,
                    vmax=1,
                )
            a = acc.get((k[0], k[1], t))
            ax.set_title(
                f"t={fraction_name(t)}: {a:.3f}" if a is not None else f"t={fraction_name(t)}: missing", fontsize=7
            )
            if j == 0:
                ax.set_ylabel(ranking_name(k[0], k[1]), fontsize=8)
    fig.suptitle(f"One test image, {mode} mode, fill={fill}; above: mean test accuracy after retraining", fontsize=9)
    return save(fig, path)


def toy_curves(toy: dict, path):
    """ROAR Fig. 2: the toy data's accuracy without (left) and with (right) retraining."""
    from roar.evaluate.stats import mean_ci

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6), sharey=True)
    palette = Palette()
    x = np.asarray(toy["fractions"])
    for ax, kind, title in zip(axes, ("no_retrain", "retrain"), ("no retraining", "retraining (ROAR)")):
        for name, curves in toy["accuracy"].items():
            stats = [mean_ci(col) for col in np.asarray(curves[kind]).T]
            band(
                ax,
                x,
                [s["mean"] for s in stats],
                [s["ci_low"] for s in stats],
                [s["ci_high"] for s in stats],
                name,
                palette.style(name),
            )
        ax.set_title(title)
        ax.set_xlabel("fraction of features removed")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    axes[0].set_ylabel("test accuracy")
    fig.suptitle(
        f"ROAR toy data: {toy['features']} features, {toy['informative']} informative; {len(toy['seeds'])} datasets",
        fontsize=10,
    )
    return save(fig, path)
