"""``roar.run``: the whole pipeline of an experiment from Python, as ``roar-pipeline`` runs it."""

from dataclasses import dataclass, field
from pathlib import Path

from roar.config import compose_config, register_options, search_path
from roar.report.files import read_csv
from roar.stages.pipeline import run_pipeline
from roar.store.resolve import experiment_dir, report_dir


@dataclass(frozen=True)
class RunResult:
    """What ``roar.run`` leaves: the report's tables as rows and where everything is.

    Attributes:
        verdicts: rows of the report's verdict.csv (one per base model x ranking x fill: area, p, adjusted p,
            verdict).
        summary: rows of summary.csv (mean and sd of the retrained accuracy per setting).
        runs: the retrain runs' metrics, as each metrics file holds them.
        report: the report's index.html; ``folder``: the experiment's folder.
    """

    verdicts: list
    summary: list
    runs: list = field(repr=False)
    report: Path
    folder: Path


def run(experiment: str, overrides=(), progress: bool = False, config_dir=None) -> RunResult:
    """Run (or resume) the pipeline of ``experiment`` with Hydra's compose API: the same config, the same
    folders and the same skipping of finished work as ``roar-pipeline experiment=<experiment> overrides...``.

    Args:
        experiment: the experiment config's name (``roar_digits``, one of ``conf/experiment``; or your own,
            ``<config_dir>/experiment/<name>.yaml``).
        overrides: ``key=value`` strings, as on the command line (``["grid.seeds=3", "fill=linear"]``).
        progress: show the retraining sweep's progress bar.
        config_dir: a folder of your own configs, searched beside roar's (the commands' ``--config-dir``).

    Returns:
        A RunResult. Estimators, models, datasets and fills registered in Python before the call are options.
    """
    register_options()
    extra = [search_path(config_dir)] if config_dir is not None else []
    args = [*extra, f"experiment={experiment}", *overrides, "trainer.enable_progress_bar=false"]
    runs = run_pipeline(args, progress)
    cfg = compose_config("pipeline", args)
    out = report_dir(cfg)
    tables = {
        name: read_csv(out / f"{name}.csv") if (out / f"{name}.csv").exists() else [] for name in ("verdict", "summary")
    }
    return RunResult(
        tables["verdict"],
        tables["summary"],
        runs if isinstance(runs, list) else [runs],
        out / "index.html",
        experiment_dir(cfg),
    )
