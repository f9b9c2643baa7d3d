"""An experiment's answer as tables, figures, one HTML page and a wandb run (the roar-report stage).

Reads every finished run below ``runs/``, the base models, the roar-eval results and the toy check of
the experiment (roar.store.experiment), and writes into ``<experiment>/report/``: ``results.csv`` (one
row per run), ``summary.csv`` (mean, std, 95% CI over seeds per setting, the t = 0 baseline included,
missing settings marked missing), each section's tables and figures (roar.report.sections: verdicts,
agreement, fidelity, leakage, SIS, missingness, soundness, the toy) and ``index.html``. Works on a partly
finished experiment; files it cannot use are listed with the reason, and the report is built from the rest.
"""

import time
from pathlib import Path

from omegaconf import DictConfig

from roar.errors import RoarError
from roar.evaluate.stats import CORRECTIONS
from roar.lineage import base_artifact, declare_used, folder_artifact, log_made
from roar.report import analysis, collect, html, leakage_audit, plots
from roar.report.files import OWNED, check_owned, owned_files, record_owned, write_csv
from roar.report.sections import SECTIONS
from roar.report.sections.section import Table
from roar.report.verdict_tables import print_verdicts
from roar.store.experiment import has_results, runs_dir
from roar.store.io import atomic_write_bytes, read_json
from roar.store.keys import METRICS, BaseKey
from roar.store.names import feature_label, fill_label, fraction_name
from roar.store.resolve import experiment_dir, ranking_patch, report_dir, toy_file
from roar.tracking import finishing_wandb, start_wandb_run
from roar.utils.log import get_logger

log = get_logger(__name__)

CORE_TABLES = ("results.csv", "summary.csv")
TABLES = (*CORE_TABLES, *(name for s in SECTIONS for name in s.table_names))
SUMMARY_COLUMNS = {
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
}


def check_test(cfg) -> tuple:
    """(correction, alpha) of ``report.*``, checked before anything is read."""
    correction, alpha = str(cfg.report.correction), float(cfg.report.alpha)
    if correction not in CORRECTIONS or not 0 < alpha < 1:
        raise RoarError(
            f"report.correction={correction} report.alpha={alpha}: the correction is one of {', '.join(CORRECTIONS)} "
            f"and alpha lies in (0, 1)."
        )
    return correction, alpha


def read_evaluations(exp) -> dict:
    """roar-eval's results, split by what reads them: rankings (fidelity, deletion, SIS), LIME's consistency,
    soundness, the patch-granular prediction shift (missingness); and the files left out."""
    found, problems = collect.read_evaluations(exp)
    consistency = [e for e in found if e.get("kind") == "lime_consistency"]
    soundness = [e for e in found if e.get("kind") == "soundness"]
    reordered = [e for e in found if e.get("order_from")]  # in another model's order: the missingness section
    return {
        "evaluations": [e for e in found if e not in consistency + soundness + reordered],
        "consistency": consistency,
        "soundness_results": soundness,
        "by_patch": [e for e in found if e.get("patch") and "predictions" in e],  # the missingness paper's setting
        "eval_problems": problems,
    }


def gather(cfg) -> dict:
    """Everything the report shows, read from the experiment folder; each section's rows under its name."""
    exp = experiment_dir(cfg)
    correction, alpha = check_test(cfg)
    if not has_results(exp):
        raise RoarError(
            f"No experiment folder at {exp} (no runs/, base/, eval/ or toy/ in it). Check name= (and "
            f"paths.output_root=), "
            f"or run roar-pipeline experiment=... first."
        )
    toy = read_json(toy_file(cfg))
    rows, problems, dataset = collect.read_runs(exp, cfg.data.name)
    data = {"exp": exp, "rows": rows, "toy": toy, "fill": fill_label(cfg.fill), **read_evaluations(exp)}
    data["dataset"] = f"toy ({toy['features']} features)" if toy is not None else dataset
    data["problems"] = problems + data.pop("eval_problems")
    data["notes"] = []
    if not rows and toy is None:
        data["notes"].append(
            f"No finished retrain runs under {runs_dir(exp)} (no {METRICS} with test_acc): "
            f"{'a no-retrain experiment, or ' if data['evaluations'] else ''}run roar-pipeline with the same "
            "overrides. The report shows what there is."
        )
    data["bases"] = bases = collect.read_base_models(exp)
    data["summary"] = summary = collect.summarize(rows, expected_settings(cfg, data), int(cfg.grid.seeds))
    data["baselines"] = collect.baselines(summary)
    data["num_classes"] = next((r["num_classes"] for r in [*rows, *bases] if r.get("num_classes")), None)
    audits = collect.read_audits(exp)
    verdicts = analysis.verdicts(rows, correction, alpha)
    data["verdicts"] = leakage_audit.audit_verdicts(
        verdicts, audits, rows, data["evaluations"], data["num_classes"], alpha
    )
    data["statement"], data["alpha"] = analysis.test_statement(alpha, correction), alpha
    data["audit_steps"] = sorted({a["steps"] for a in audits if a.get("steps") is not None})
    data["base_keys"] = {r["base"]: key for r in rows if (key := base_of(exp, r))}
    data["ranking_order"] = [str(r) for r in cfg.eval.rankings]
    data["fill_cfg"] = cfg.fill
    for section in SECTIONS:
        if section.gather is not None:
            data[section.name] = section.gather(data)
    return data


def expected_settings(cfg, data) -> list:
    """The settings a complete experiment has (none for a no-retrain one: the toy, or evaluations only)."""
    if data["toy"] is not None or (not data["rows"] and data["evaluations"]):
        return []
    bases = analysis.bases_of(data["rows"]) or [b["base"] for b in data["bases"]] or ["(no base model)"]
    reduce = feature_label(cfg.reduce, ranking_patch(cfg))
    return collect.expected_settings(cfg.grid, data["fill"], reduce, bases)


def base_of(exp, row) -> BaseKey | None:
    """The BaseKey of a run's row (its metrics record the base model's name); None for a run that does not
    record it (the report shows its numbers, not its images)."""
    try:
        return BaseKey.named(exp, row["base_folder"])
    except RoarError:
        return None


def draw(data, out: Path) -> list:
    """(path, caption) of every figure there is data for, section by section."""
    palette = plots.Palette()  # one colour per ranking across every figure
    return [figure for section in SECTIONS for figure in section.figures(data, out, palette)]


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


def intro(cfg, data) -> str:
    """What the page is of, the notes, and the files left out."""
    runs, missing = len(data["rows"]), sum(1 for s in data["summary"] if s["status"] == "missing")
    text = (
        f"<p>Experiment <b>{html.escape(cfg.name)}</b> ({html.escape(str(data['exp']))}), dataset "
        f"<b>{html.escape(str(data['dataset']))}</b>: {runs} finished retrain run(s), {missing} missing setting(s), "
        f"{len(data['evaluations'])} no-retrain evaluation(s). Built {time.strftime('%Y-%m-%d %H:%M:%S')}.</p>"
        + "".join(f'<p class="note">{html.escape(n)}</p>' for n in data["notes"])
    )
    if data["problems"]:
        text += (
            '<div class="problems"><p>Files left out of this report:</p><ul>'
            + "".join(f"<li>{html.escape(p)}</li>" for p in data["problems"])
            + "</ul></div>"
        )
    return text


def render(cfg, data, figures, tables, out: Path) -> Path:
    """index.html: the intro, the base models, every section, the figures, the summary and the files."""
    base_columns = {"base": "base model", "model": "model", "augment": "augment", "test_acc": "test accuracy"}
    summary = summary_table_rows(data["summary"])
    sections = [
        ("", intro(cfg, data)),
        ("Base models", html.table(base_columns, data["bases"]) if data["bases"] else ""),
        *((section.title, section.html(data)) for section in SECTIONS),
        ("Figures", "".join(html.figure(p, c) for p, c in figures)),
        (
            "Test accuracy per setting (mean, std and 95% CI over seeds)",
            html.table(SUMMARY_COLUMNS, summary, {"n": "{}"}) if summary else "",
        ),
        ("Files", "<p>" + " · ".join(f'<a href="{t.name}">{t.name}</a>' for t in tables) + "</p>"),
    ]
    path = out / "index.html"
    atomic_write_bytes(path, html.page(f"roar report: {cfg.name}", sections).encode())
    return path


def write_tables(data, out: Path) -> list:
    """Every CSV: the runs, the summary and each section's; a section's table without rows is removed unless it
    is always written. Returns the tables written."""
    tables = [
        Table("results.csv", collect.RUN_COLUMNS, data["rows"], always=True),
        Table("summary.csv", collect.SUMMARY_COLUMNS, data["summary"], always=True),
        *(table for section in SECTIONS for table in section.tables(data)),
    ]
    written = []
    for table in tables:
        if table.rows or table.always:
            write_csv(out / table.name, table.columns, table.rows, comment=table.comment)
            written.append(table)
        else:
            (out / table.name).unlink(missing_ok=True)
    return written


def log_to_wandb(cfg, data, tables, figures) -> None:
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

        payload = {Path(t.name).stem: as_table(t.rows) for t in tables if t.rows}
        payload.update({Path(p).stem: wandb.Image(str(p), caption=c) for p, c in figures})
        run.log(payload)
        exp, out = experiment_dir(cfg), report_dir(cfg)
        declare_used(run, [base_artifact(BaseKey.named(exp, b["base"])) for b in data["bases"]])
        log_made(run, [folder_artifact(exp, out, "report", out / OWNED, owned_files(out, TABLES))])


def build_report(cfg: DictConfig) -> Path:
    """Write the report; returns the path of index.html. Only files it wrote before are replaced or deleted."""
    data = gather(cfg)
    out = report_dir(cfg)
    before = check_owned(out, TABLES)
    tables = write_tables(data, out)
    figures = draw(data, out)
    for stale in {out / n for n in before if n.endswith(".png")} - {Path(p) for p, _ in figures}:
        stale.unlink(missing_ok=True)  # a figure this report no longer has (only ones a report wrote)
    path = render(cfg, data, figures, tables, out)
    record_owned(out, [*(t.name for t in tables), "index.html", *(Path(p).name for p, _ in figures)])
    log_to_wandb(cfg, data, tables, figures)
    print_verdicts(data)
    for n in data["notes"]:
        log.info(f"[roar-report] note: {n}")
    for p in data["problems"]:
        log.info(f"[roar-report] warning: {p}")
    log.info(f"[roar-report] {len(data['rows'])} runs, {len(figures)} figures -> {path.resolve()}")
    return path
