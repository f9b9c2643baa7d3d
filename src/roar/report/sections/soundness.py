"""Completeness and soundness of masks (masking-explanations paper, appendices C, D; Tables 2-8, Figs. 9, 12):
the probability of the label as the top p of a map is kept and the rest replaced, for the prediction a and
the runner-up a' (roar.evaluate.soundness)."""

from roar.report import html
from roar.report.plots import plt, save
from roar.report.sections.section import Section, Table, drawn_if

SOUNDNESS_COLUMNS = {
    "base": "base model",
    "ranking": "ranking",
    "replacement": "replacement",
    "images": "images",
    "completeness_a": "completeness (a)",
    "worst_completeness": "worst completeness",
    "soundness_a2": "soundness (a')",
    "worst_soundness": "worst soundness",
    "score_a": "score a",
    "score_a2": "score a'",
    "deletion": "deletion (lower better)",
    "insertion": "insertion (grey)",
    "insertion_blur": "insertion (blur)",
    "saliency_metric": "saliency metric (lower better)",
    "sm_delta": "SM threshold delta",
    "object_iou": "IoU M(30%), object",
    "marker_held": "marker held by M(30%)",
}
SOUNDNESS_NOTE = (
    '<p class="note">Score: the probability of the label with the top p of the map kept and the rest replaced, mean '
    "over p in the score range (appendix C: 0.2 to 0.6) and over donors. Reconstructed (our copy lacks the main text's "
    "Eq. 1): completeness = share of images whose score reaches the clean probability minus eps1; soundness = share "
    "whose score stays below the clean probability plus eps2; worst = the lower of a (the prediction) and a' (the "
    "runner-up). Empty soundness: no maps of the runner-up (roar-attribute attribute.target=second). Insertion (blur): "
    "on RISE's blurred canvas (replacement blur). Saliency metric (Dabkowski and Gal): log(max(box area, 0.05)) - "
    "log(p) of the crop around the map's values above delta standard deviations, delta chosen on the first "
    "eval.soundness.sm_holdout images and the metric averaged over the others.</p>"
)


def soundness_rows(results) -> list:
    """Masking-explanations paper Tables 2-8 as one table: per base model, ranking and replacement, the
    completeness of a and soundness of a' with their worst case over a and a' (roar.evaluate.soundness),
    deletion and insertion (grey), and the IoU of M(30%) with the object / the marker's pixels held."""
    rows = []
    for e in results:
        s = e["summary"]
        for gamma, r in s["replacements"].items():
            rows.append(
                {
                    "base": e["base"],
                    "ranking": e["ranking"],
                    "replacement": gamma,
                    "images": s["images"],
                    "completeness_a": r["a"]["completeness"],
                    "worst_completeness": r["worst"]["completeness"],
                    "soundness_a2": r["a2"]["soundness"] if "a2" in r else None,
                    "worst_soundness": r["worst"]["soundness"],
                    "score_a": r["a"]["score"],
                    "score_a2": r["a2"]["score"] if "a2" in r else None,
                    "deletion": s["deletion"],
                    "insertion": s["insertion"],
                    "insertion_blur": s.get("insertion_blur"),
                    "saliency_metric": (s.get("saliency_metric") or {}).get("score"),
                    "sm_delta": (s.get("saliency_metric") or {}).get("delta"),
                    "object_iou": s.get("object_iou"),
                    "marker_held": s.get("marker_held"),
                }
            )
    return rows


def figures(data, out, palette) -> list:
    return drawn_if(
        soundness_curves(data["soundness_results"], out / "soundness-curves.png"),
        "Masking-explanations paper Figs. 9, 12: the probability of the label as the top p of the map is kept and "
        "the rest replaced, for the prediction a and the runner-up a' (mean over images); the score averages p "
        "in the shaded range.",
    )


SECTION = Section(
    name="soundness",
    title="Completeness and soundness of masks (masking-explanations paper, appendices C, D)",
    gather=lambda data: soundness_rows(data["soundness_results"]),
    html=lambda data: (
        html.table(SOUNDNESS_COLUMNS, data["soundness"], {"images": "{}"}) + SOUNDNESS_NOTE if data["soundness"] else ""
    ),
    figures=figures,
    tables=lambda data: [Table("soundness.csv", SOUNDNESS_COLUMNS, data["soundness"])],
    table_names=("soundness.csv",),
)


def soundness_curves(results, path):
    """Masking-explanations paper Figs. 9, 12: the mean probability of a (prediction) and a' (runner-up)
    vs the share p of the map kept, one panel per (replacement, label), one line per base model and ranking."""
    panels = sorted(
        {(g, lab) for e in results for g, r in e["summary"]["replacements"].items() for lab in ("a", "a2") if lab in r}
    )
    if not panels:  # no results, or none with a scored image
        return None
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
