"""An experiment's answer as tables, figures, one HTML page and a wandb run (the roar-report stage).

Reads every ``metrics.json`` below ``runs/``, the base models, the roar-eval results and the toy
check of the experiment, and writes into ``<experiment>/report/``: ``results.csv`` (one row per run),
``summary.csv`` (mean, std, 95% CI over seeds per setting, the t = 0 baseline included, missing
settings marked missing), ``verdict.csv``, ``agreement.csv``, ``fidelity.csv``, the figures and
``index.html``. Works on a partly finished experiment; files it cannot use are listed with the
reason, and the report is built from the rest.
"""

import time
from pathlib import Path

from omegaconf import DictConfig

from roar.errors import RoarError
from roar.evaluate.stats import CORRECTIONS
from roar.evaluate.toy import mean_curves
from roar.masking.fills import fill_named
from roar.report import analysis, collect, html, leakage_audit, plots
from roar.report.files import TABLES, check_owned, record_owned, write_csv
from roar.report.verdict_tables import VERDICT_CSV, print_verdicts, verdict_note, verdict_rows, verdict_section
from roar.store.experiment import has_results, runs_dir
from roar.store.io import atomic_write_bytes, read_json
from roar.store.keys import METRICS, BaseKey
from roar.store.names import feature_label, fill_label, fraction_name
from roar.store.resolve import experiment_dir, ranking_patch, report_dir, toy_file
from roar.tracking import finishing_wandb, start_wandb_run


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


def gather(cfg) -> dict:
    """Everything the report shows, read from the experiment folder."""
    exp = experiment_dir(cfg)
    correction, alpha = str(cfg.report.correction), float(cfg.report.alpha)
    if correction not in CORRECTIONS or not 0 < alpha < 1:
        raise RoarError(
            f"report.correction={correction} report.alpha={alpha}: the correction is one of {', '.join(CORRECTIONS)} "
            f"and alpha lies in (0, 1)."
        )
    if not has_results(exp):
        raise RoarError(
            f"No experiment folder at {exp} (no runs/, base/, eval/ or toy/ in it). Check name= (and paths.output_root=), "
            f"or run roar-pipeline experiment=... first."
        )
    toy = read_json(toy_file(cfg))
    rows, problems, dataset = collect.read_runs(exp, cfg.data.name)
    if toy is not None:
        dataset = f"toy ({toy['features']} features)"
    found, eval_problems = collect.read_evaluations(exp)
    problems += eval_problems
    consistency = [e for e in found if e.get("kind") == "lime_consistency"]
    soundness = [e for e in found if e.get("kind") == "soundness"]
    reordered = [e for e in found if e.get("order_from")]  # in another model's order: the missingness section
    by_patch = [e for e in found if e.get("patch") and "predictions" in e]  # the missingness paper's setting
    evaluations = [e for e in found if e not in consistency + soundness + reordered]
    bases = collect.read_base_models(exp)
    notes = []
    if not rows and toy is None:
        notes.append(
            f"No finished retrain runs under {runs_dir(exp)} (no {METRICS} with test_acc): "
            f"{'a no-retrain experiment, or ' if evaluations else ''}run roar-pipeline with the same overrides. The report shows what there is."
        )
    no_retrain = toy is not None or (not rows and evaluations)  # nothing to retrain was asked of this experiment
    fill = fill_label(cfg.fill)
    expected_bases = analysis.bases_of(rows) or [b["base"] for b in bases] or ["(no base model)"]
    expected = (
        []
        if no_retrain
        else collect.expected_settings(cfg.grid, fill, feature_label(cfg.reduce, ranking_patch(cfg)), expected_bases)
    )
    summary = collect.summarize(rows, expected, int(cfg.grid.seeds))
    num_classes = next((r["num_classes"] for r in [*rows, *bases] if r.get("num_classes")), None)
    audits = collect.read_audits(exp)
    return {
        "exp": exp,
        "dataset": dataset,
        "rows": rows,
        "problems": problems,
        "notes": notes,
        "evaluations": evaluations,
        "bases": bases,
        "toy": toy,
        "summary": summary,
        "baselines": collect.baselines(summary),
        "verdicts": leakage_audit.audit_verdicts(
            analysis.verdicts(rows, correction, alpha), audits, rows, evaluations, num_classes, alpha
        ),
        "statement": analysis.test_statement(alpha, correction),
        "alpha": alpha,
        "audit_steps": sorted({a["steps"] for a in audits if a.get("steps") is not None}),
        "fill": fill,
        "agreement": analysis.agreement(rows, evaluations, fill),
        "leakage": leakage_audit.leakage(summary, num_classes),
        "base_keys": {r["base"]: key for r in rows if (key := base_of(exp, r))},
        "fidelity": fidelity_rows(evaluations, fill),
        "ranking_order": [str(r) for r in cfg.eval.rankings],
        "sis": analysis.sis_tables(evaluations),
        "missingness": analysis.missingness_rows(by_patch),
        "shift": by_patch,
        "consistency": consistency,
        "soundness": analysis.soundness_rows(soundness),
        "soundness_curves": soundness,
    }


def base_of(exp, row) -> BaseKey | None:
    """The BaseKey of a run's row (its metrics record the base model's name); None for a run that does not
    record it (the report shows its numbers, not its images)."""
    try:
        return BaseKey.named(exp, row["base_folder"])
    except RoarError:
        return None


def draw(cfg, data, out: Path) -> list:
    """(path, caption) of every figure there is data for."""
    palette, figures = plots.Palette(), []

    def add(path, caption):  # a figure is drawn only where there is data for it
        if path:
            figures.append((path, caption))

    fill = data["fill"]
    bases = analysis.bases_of(data["summary"])
    for base in bases:  # one set of retrain figures per base model: curves of two base models never mix
        summary = analysis.of_base(data["summary"], base)
        baselines = {f: row for (b, f), row in data["baselines"].items() if b == base}
        tag, of = (f"-{base}", f" (base model {base})") if len(bases) > 1 else ("", "")
        fills = sorted({s["fill"] for s in summary if s["n"] and not fill_named(s["fill"]).leakage_control})
        for mode, label in (("remove", "ROAR"), ("keep", "KAR")):
            for f in fills:
                path = plots.accuracy_curves(
                    summary, baselines, mode, f, out / f"{label.lower()}-{f}{tag}.png", palette
                )
                add(
                    path,
                    f"{label}{of}: test accuracy after retraining vs fraction masked (fill={f}); bands: 95% CI over "
                    "seeds; random and sobel dashed, oracle dotted.",
                )
        path = plots.retrain_vs_no_retrain(
            summary,
            baselines,
            analysis.of_base(data["evaluations"], analysis.folder_of(base)),
            fill,
            out / f"retrain-vs-no-retrain{tag}.png",
            palette,
        )
        add(
            path,
            f"ROAR Fig. 3{of}: the same rankings with retraining (left) and without (right): without retraining, "
            "accuracy falls even for random.",
        )
        key = data["base_keys"].get(base)
        path = (
            plots.image_grid(key, summary, baselines.get(fill), "remove", fill, out / f"images{tag}.png")
            if key
            else None
        )
        add(
            path,
            f"ROAR Fig. 1{of}: one test image as each ranking masks it at each fraction; above: mean test accuracy "
            "after retraining.",
        )
    for fill in sorted({e["fill"] for e in data["evaluations"]}):
        path = plots.mif_lif_curves(data["evaluations"], fill, out / f"mif-lif-{fill}.png", palette)
        add(
            path,
            f"FPA Fig. 3: MIF and LIF curves of the normalized target logit (fill={fill}), 95% CI over images; A = area between them.",
        )
    for fill in sorted({e["fill"] for e in data["shift"] if "predictions" in e}):
        for key, what in (
            ("unchanged", "fraction of predictions unchanged"),
            ("entropy_norm", "class entropy / log C"),
        ):
            path = plots.prediction_shift(data["shift"], fill, key, out / f"{key.replace('_', '-')}-{fill}.png")
            add(
                path,
                f"Missingness paper Figs. 3-5 (fill={fill}): {what} as patches are removed, most (MIF, solid) or "
                "least (LIF, dashed) important first; 'from' names the model whose maps set the order.",
            )
    path = plots.consistency_curves(data["consistency"], out / "lime-consistency.png")
    add(
        path,
        "Missingness paper Fig. 8: Jaccard similarity of LIME's top-k patches across the 28 pairs of baseline "
        "colours (95% CI over pairs); dotted: two random orders.",
    )
    path = plots.soundness_curves(data["soundness_curves"], out / "soundness-curves.png")
    add(
        path,
        "Masking-explanations paper Figs. 9, 12: the probability of the label as the top p of the map is kept and "
        "the rest replaced, for the prediction a and the runner-up a' (mean over images); the score averages p "
        "in the shaded range.",
    )
    path = plots.sis_heatmaps(data["evaluations"], out / "sis-heatmap.png")
    add(
        path,
        "Overinterpretation paper: where the sufficient input subsets lie, the share of images whose SIS holds each pixel.",
    )
    if data["toy"]:
        figures.append(
            (
                plots.toy_curves(data["toy"], out / "toy.png"),
                "ROAR Fig. 2: toy data, least squares: inverted ranking without and with retraining.",
            )
        )
    return figures


def summary_table_rows(summary) -> list:
    return [
        {
            **s,
            "fraction": fraction_name(s["fraction"]),
            "ci": f"[{s['ci_low']:.3f}, {s['ci_high']:.3f}]" if s["n"] > 1 else None,
            "mean": s["mean"] if s["n"] else "missing",
        }
        for s in summary
    ]


def render(cfg, data, figures, out: Path) -> Path:
    exp = data["exp"]
    bases = html.table(
        {"base": "base model", "model": "model", "augment": "augment", "test_acc": "test accuracy"}, data["bases"]
    )
    problems = (
        (
            '<div class="problems"><p>Files left out of this report:</p><ul>'
            + "".join(f"<li>{html.escape(p)}</li>" for p in data["problems"])
            + "</ul></div>"
        )
        if data["problems"]
        else ""
    )
    runs = len(data["rows"])
    intro = (
        f"<p>Experiment <b>{html.escape(cfg.name)}</b> ({html.escape(str(exp))}), dataset <b>{html.escape(str(data['dataset']))}</b>: "
        f"{runs} finished retrain run(s), {sum(1 for s in data['summary'] if s['status'] == 'missing')} missing setting(s), "
        f"{len(data['evaluations'])} no-retrain evaluation(s). Built {time.strftime('%Y-%m-%d %H:%M:%S')}.</p>"
        + "".join(f'<p class="note">{html.escape(n)}</p>' for n in data["notes"])
    )
    agree = [{**a, "estimators": ", ".join(a["estimators"])} for a in data["agreement"]]
    fid_cols = {"base": "base model", "model": "model", "augment": "augment", **{k: k for k in fidelity_columns(data)}}
    toy = toy_table(data["toy"]) if data["toy"] else ""
    leak = (
        html.table(
            ["base", "estimator", "mode", "fraction", "n", "mean", "ci_low", "ci_high", "chance"], data["leakage"]
        )
        if data["leakage"]
        else ""
    )
    sections = [
        ("", intro + problems),
        ("Base models", bases if data["bases"] else ""),
        (
            "Verdict: which estimators beat a random ranking",
            verdict_section(data) if data["verdicts"] else "",
        ),
        (
            "Do the evaluation methods agree? (per base model)",
            html.table(
                {
                    "base": "base model",
                    "a": "method",
                    "b": "method",
                    "rho": "Spearman rho",
                    "n": "estimators",
                    "estimators": "compared",
                },
                agree,
                {"n": "{}"},
            )
            if agree
            else "",
        ),
        (
            "Fidelity without retraining (FPA Table 1: area between LIF and MIF, 95% CI over images)",
            html.table(fid_cols, data["fidelity"]) if data["fidelity"] else "",
        ),
        ("Leakage: the mask alone (fill=mask_only) vs chance", leak),
        ("Sufficient input subsets (overinterpretation paper, backward-selection rankings)", sis_section(data["sis"])),
        (
            "Missingness bias: where predictions go as patches are removed (missingness paper)",
            html.table(MISSINGNESS_COLUMNS, data["missingness"], {"k": "{}"}) + MISSINGNESS_NOTE
            if data["missingness"]
            else "",
        ),
        (
            "Completeness and soundness of masks (masking-explanations paper, appendices C, D)",
            html.table(SOUNDNESS_COLUMNS, data["soundness"], {"images": "{}"}) + SOUNDNESS_NOTE
            if data["soundness"]
            else "",
        ),
        ("ROAR toy check (ROAR section 3): test accuracy, mean over datasets, vs fraction of features removed", toy),
        ("Figures", "".join(html.figure(p, c) for p, c in figures)),
        (
            "Test accuracy per setting (mean, std and 95% CI over seeds)",
            html.table(
                {
                    "base": "base model",
                    "estimator": "estimator",
                    "reduce": "reduce",
                    "mode": "mode",
                    "fill": "fill",
                    "fraction": "t",
                    "n": "seeds",
                    "mean": "mean",
                    "std": "std",
                    "ci": "95% CI",
                    "status": "status",
                },
                summary_table_rows(data["summary"]),
                {"n": "{}"},
            )
            if data["summary"]
            else "",
        ),
        (
            "Files",
            "<p>"
            + " · ".join(
                f'<a href="{n}">{n}</a>'
                for n in (
                    "results.csv",
                    "summary.csv",
                    "verdict.csv",
                    "agreement.csv",
                    "fidelity.csv",
                    "sis.csv",
                    "soundness.csv",
                )
                if (n != "sis.csv" or data["sis"]["size"]) and (n != "soundness.csv" or data["soundness"])
            )
            + "</p>",
        ),
    ]
    path = out / "index.html"
    atomic_write_bytes(path, html.page(f"roar report: {cfg.name}", sections).encode())
    return path


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
    "object_iou": "IoU M(30%), object",
    "marker_held": "marker held by M(30%)",
}
SOUNDNESS_NOTE = (
    '<p class="note">Score: the probability of the label with the top p of the map kept and the rest replaced, mean '
    "over p in the score range (appendix C: 0.2 to 0.6) and over donors. Reconstructed (our copy lacks the main text's "
    "Eq. 1): completeness = share of images whose score reaches the clean probability minus eps1; soundness = share "
    "whose score stays below the clean probability plus eps2; worst = the lower of a (the prediction) and a' (the "
    "runner-up). Empty soundness: no maps of the runner-up (roar-attribute attribute.target=second).</p>"
)
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


def sis_section(tables) -> str:
    """The SIS tables (overinterpretation paper sections 4.1, 4.2, 4.4); empty without gbs/bs results."""
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


def log_to_wandb(cfg, data, figures) -> None:
    """The report's tables and figures as one wandb run of job_type report."""
    with finishing_wandb():
        run = start_wandb_run(cfg, report_dir(cfg), "report", f"{cfg.name}/report")
        if run is None:
            return
        import wandb

        def as_table(rows):
            cols = sorted({k for r in rows for k in r})
            return wandb.Table(
                columns=cols,
                data=[[str(r.get(c, "")) if isinstance(r.get(c), list) else r.get(c) for c in cols] for r in rows],
            )

        payload = {
            name: as_table(rows)
            for name, rows in (
                ("results", data["rows"]),
                ("summary", data["summary"]),
                ("verdict", data["verdicts"]),
                ("agreement", data["agreement"]),
                ("fidelity", data["fidelity"]),
            )
            if rows
        }
        payload.update({Path(p).stem: wandb.Image(str(p), caption=c) for p, c in figures})
        run.log(payload)


def build_report(cfg: DictConfig) -> Path:
    """Write the report; returns the path of index.html. Only files it wrote before are replaced or deleted."""
    data = gather(cfg)
    out = report_dir(cfg)
    before = check_owned(out)
    write_csv(out / "results.csv", collect.RUN_COLUMNS, data["rows"])
    write_csv(out / "summary.csv", collect.SUMMARY_COLUMNS, data["summary"])
    write_csv(
        out / "verdict.csv",
        VERDICT_CSV,
        [
            {
                **v,
                "fractions": " ".join(map(fraction_name, v["fractions"])),
                "per_t": " ".join(f"{fraction_name(p['t'])}:{p['diff']:+.4f}:{p['p']:.3g}" for p in v.get("per_t", [])),
            }
            for v in verdict_rows(data["verdicts"])
        ],
        comment=verdict_note(data) + "\nper_t: t:difference:p at each fraction.",
    )
    write_csv(
        out / "agreement.csv",
        ["base", "a", "b", "rho", "n", "estimators"],
        [{**a, "estimators": " ".join(a["estimators"])} for a in data["agreement"]],
    )
    write_csv(out / "fidelity.csv", ["base", "model", "augment", *fidelity_columns(data)], data["fidelity"])
    if data["sis"]["size"]:
        write_csv(
            out / "sis.csv",
            SIS_VERSUS | SIS_SIZE,
            [{**r, **v} for r, v in zip(data["sis"]["size"], data["sis"]["versus"])],
        )
    else:
        (out / "sis.csv").unlink(missing_ok=True)
    if data["soundness"]:
        write_csv(out / "soundness.csv", SOUNDNESS_COLUMNS, data["soundness"])
    else:
        (out / "soundness.csv").unlink(missing_ok=True)
    figures = draw(cfg, data, out)
    for stale in {out / n for n in before if n.endswith(".png")} - {Path(p) for p, _ in figures}:
        stale.unlink(missing_ok=True)  # a figure this report no longer has (only ones a report wrote)
    path = render(cfg, data, figures, out)
    written = [n for n in (*TABLES, "index.html") if (out / n).is_file()] + [Path(p).name for p, _ in figures]
    record_owned(out, written)
    log_to_wandb(cfg, data, figures)
    print_verdicts(data)
    for n in data["notes"]:
        print(f"[roar-report] note: {n}")
    for p in data["problems"]:
        print(f"[roar-report] warning: {p}")
    print(f"[roar-report] {len(data['rows'])} runs, {len(figures)} figures -> {path.resolve()}")
    return path
