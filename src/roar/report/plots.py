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
from roar.store.names import parse_ranking

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
    "imported": "Imported maps",
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


def band(ax, xs, mean, low, high, label, style):  # noqa: PLR0913 (a band's coordinates and style)
    ax.plot(xs, mean, marker="o", markersize=3, label=label, **style)
    low, high = np.asarray(low, dtype=float), np.asarray(high, dtype=float)
    if np.isfinite(low).any():
        ax.fill_between(xs, low, high, color=style["color"], alpha=0.15, linewidth=0)
