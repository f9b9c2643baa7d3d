"""ROAR and KAR (ROAR sections 4.2, 4.3): test accuracy after retraining on masked images, per base model,
its verdict against random (roar.report.analysis, roar.report.verdict_tables), and the figures: the curves
laid out like ROAR Fig. 4, the same rankings with and without retraining (Fig. 3), one test image as each
ranking masks it (Fig. 1)."""

from roar.masking.at_load import first_test_image
from roar.masking.fills import fill_named
from roar.report import analysis
from roar.report.plots import FAMILIES, band, family, plt, save
from roar.report.sections.section import Section, Table, keep
from roar.report.verdict_tables import VERDICT_CSV, verdict_note, verdict_rows, verdict_section
from roar.store.experiment import set_folder
from roar.store.keys import ShardSetKey
from roar.store.names import fill_label, fraction_name, ranking_name, split_feature


def figures(data, out, palette) -> list:
    """One set of retrain figures per base model: curves of two base models never mix."""
    drawn, fill = [], data["fill"]
    bases = analysis.bases_of(data["summary"])
    for base in bases:
        summary = analysis.of_base(data["summary"], base)
        baselines = {f: row for (b, f), row in data["baselines"].items() if b == base}
        tag, of = (f"-{base}", f" (base model {base})") if len(bases) > 1 else ("", "")
        fills = sorted({s["fill"] for s in summary if s["n"] and not fill_named(s["fill"]).leakage_control})
        for mode, label in (("remove", "ROAR"), ("keep", "KAR")):
            for f in fills:
                path = accuracy_curves(summary, baselines, mode, f, out / f"{label.lower()}-{f}{tag}.png", palette)
                keep(
                    drawn,
                    path,
                    f"{label}{of}: test accuracy after retraining vs fraction masked (fill={f}); bands: 95% CI over "
                    "seeds; random and sobel dashed, oracle dotted.",
                )
        folder = analysis.base_folders(data["rows"]).get(base, base)
        evaluations = analysis.of_base(data["evaluations"], folder)
        path = retrain_vs_no_retrain(
            summary, baselines, evaluations, fill, out / f"retrain-vs-no-retrain{tag}.png", palette
        )
        keep(
            drawn,
            path,
            f"ROAR Fig. 3{of}: the same rankings with retraining (left) and without (right): without retraining, "
            "accuracy falls even for random.",
        )
        key = data["base_keys"].get(base)
        path = (
            image_grid(key, summary, baselines.get(fill), data["fill_cfg"], out / f"images{tag}.png") if key else None
        )
        keep(
            drawn,
            path,
            f"ROAR Fig. 1{of}: one test image as each ranking masks it at each fraction; above: mean test accuracy "
            "after retraining.",
        )
    return drawn


def tables(data) -> list:
    rows = [
        {
            **v,
            "fractions": " ".join(map(fraction_name, v["fractions"])),
            "per_t": " ".join(f"{fraction_name(p['t'])}:{p['diff']:+.4f}:{p['p']:.3g}" for p in v.get("per_t", [])),
        }
        for v in verdict_rows(data["verdicts"])
    ]
    comment = verdict_note(data) + "\nper_t: t:difference:p at each fraction."
    return [Table("verdict.csv", VERDICT_CSV, rows, comment, always=True)]


SECTION = Section(
    name="roar",
    title="Verdict: which estimators beat a random ranking",
    html=lambda data: verdict_section(data) if data["verdicts"] else "",
    figures=figures,
    tables=tables,
    table_names=("verdict.csv",),
)


def accuracy_curves(summary, baselines, mode: str, fill: str, path, palette):
    """ROAR (mode remove) or KAR (keep) test accuracy vs fraction masked, laid out like ROAR Fig. 4:
    one panel per estimator family, the controls in every panel. None when there is nothing to draw."""
    keys = [k for k in analysis.curves_of(summary) if k[2] == mode and k[3] == fill]
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
            pts = analysis.curve(summary, baselines.get(fill), *k)
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


def retrain_vs_no_retrain(summary, baselines, evaluations, fill: str, path, palette):
    """ROAR Fig. 3: the same rankings with retraining (left) and without (right, the base model)."""
    keys = [k for k in analysis.curves_of(summary) if k[2] == "remove" and k[3] == fill]
    chosen = [e for e in evaluations if e["fill"] == fill and "remove" in e["deletion"]]
    if not keys or not chosen:
        return None
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.6), sharey=True)
    for k in keys:
        pts = analysis.curve(summary, baselines.get(fill), *k)
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


def image_grid(base, summary, baseline, fill_cfg, path, mode: str = "remove"):
    """ROAR Fig. 1: the first test image masked by every ranking at every fraction (t = 0, the
    unmodified image, first), the mean test accuracy after retraining above each; each image read from the
    set a retrain run reads, in any ``mask.format`` (``first_test_image``). ``fill_cfg``: the report's fill."""
    fill = fill_label(fill_cfg)
    keys = [k for k in analysis.curves_of(summary) if k[2] == mode and k[3] == fill]
    fractions = [0.0] + sorted(
        {s["fraction"] for s in summary if s["n"] and s["mode"] == mode and s["fill"] == fill and s["fraction"] > 0}
    )
    cells = {}
    for k in keys:
        for t in fractions:
            reduce, patch = split_feature(k[1])
            folder = set_folder(ShardSetKey(base, k[0], reduce, mode, fill, t, patch))
            image = first_test_image(folder, fill_cfg, mode, t)
            if image is not None:
                cells[k, t] = image
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
