"""ROAR's toy check (ROAR section 3, Fig. 2): least squares on data with a few informative features, an
inverted ranking without and with retraining (experiment=roar_toy; roar.evaluate.toy)."""

import numpy as np

from roar.evaluate.stats import mean_ci
from roar.evaluate.toy import mean_curves
from roar.report import html
from roar.report.plots import Palette, band, plt, save
from roar.report.sections.section import Section
from roar.store.names import fraction_name


def toy_table(toy) -> str:
    columns = {"ranking": "ranking", "kind": "model", **{fraction_name(t): f"{t:.2f}" for t in toy["fractions"]}}
    rows = [
        {
            "ranking": name,
            "kind": kind.replace("_", " "),
            **dict(zip((fraction_name(t) for t in toy["fractions"]), accs)),
        }
        for (name, kind), accs in mean_curves(toy).items()
    ]
    return html.table(columns, rows, {k: "{:.2f}" for k in columns})


def figures(data, out, palette) -> list:
    if not data["toy"]:
        return []
    caption = "ROAR Fig. 2: toy data, least squares: inverted ranking without and with retraining."
    return [(toy_curves(data["toy"], out / "toy.png"), caption)]


SECTION = Section(
    name="toy",
    title="ROAR toy check (ROAR section 3): test accuracy, mean over datasets, vs fraction of features removed",
    html=lambda data: toy_table(data["toy"]) if data["toy"] else "",
    figures=figures,
)


def toy_curves(toy: dict, path):
    """ROAR Fig. 2: the toy data's accuracy without (left) and with (right) retraining."""
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
