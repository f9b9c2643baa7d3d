"""Reading a (finished or partly finished) experiment folder into rows, and what is wrong with it.

Nothing here raises on bad files: every unreadable, unfinished or foreign file becomes a problem
naming the file and what to do, and the report is built from the rest.
"""

from collections import Counter

from roar.evaluate.stats import mean_ci
from roar.masking.fills import fill_named
from roar.store.experiment import audit_files, base_metrics_files, eval_files, run_metrics_files
from roar.store.grid import retrain_settings
from roar.store.io import read_json
from roar.store.names import feature_label

RUN_COLUMNS = [
    "base",
    "estimator",
    "reduce",
    "mode",
    "fill",
    "fraction",
    "seed",
    "test_acc",
    "test_loss",
    "test_acc5",
    "train_acc",
    "epochs",
    "train_seconds",
    "dataset",
    "model",
    "augment",
    "num_classes",
    "num_train",
    "skipped_samples",
    "retrained_as",
    "path",
]
SETTING = ("base", "estimator", "reduce", "mode", "fill", "fraction")  # runs of two base models never pool
SUMMARY_COLUMNS = [*SETTING, "n", "mean", "std", "ci_low", "ci_high", "status", "skipped"]
SKIPPED_MARK = 0.01  # a setting whose runs skipped more than 1% of their samples (retrain.on_error=skip) is marked


def base_name(metrics: dict) -> str:
    """The base model a run belongs to, as its BaseKey names it (recorded in its metrics.json)."""
    return metrics.get("base") or f"{metrics.get('dataset')}-{metrics.get('model')}-{metrics.get('augment')}"


def read_runs(experiment_dir, preferred: str):
    """(rows, problems, dataset): one row per finished retrain run below ``runs/``. The experiment's
    dataset is ``preferred`` (the config's) when any run has it, else the most common; runs of other
    datasets are left out and named."""
    problems, found = [], []
    for path in run_metrics_files(experiment_dir):
        metrics = read_json(path)
        if not isinstance(metrics, dict):
            problems.append(
                f"{path} is not valid JSON (an interrupted write?): skipped. Rerun that roar-train command to redo it."
            )
            continue
        missing = [k for k in ("test_acc", *SETTING, "seed") if k != "base" and metrics.get(k) is None]
        if missing:
            problems.append(
                f"{path} has no {', '.join(missing)}: skipped. The run did not finish; rerun the same roar-train "
                f"command to resume it."
            )
            continue
        found.append((path, metrics))
    datasets = Counter(m.get("dataset") for _, m in found)
    dataset = preferred if preferred in datasets or not datasets else datasets.most_common(1)[0][0]
    foreign = [str(p) for p, m in found if m.get("dataset") != dataset]
    if foreign:
        problems.append(
            f"{len(foreign)} run(s) in {experiment_dir} are not of dataset {dataset!r} (found {dict(datasets)}) "
            f"and are left out: "
            + ", ".join(foreign[:5])
            + (" ..." if len(foreign) > 5 else "")
            + ". Give each dataset its own experiment name (name=...)."
        )
    rows = []
    for path, m in found:
        if m.get("dataset") == dataset:
            row = {k: m.get(k) for k in RUN_COLUMNS}
            row.update(
                fraction=float(m["fraction"]),
                reduce=feature_label(m["reduce"], m.get("patch")),  # patch rankings apart from pixel ones
                seed=int(m["seed"]),
                test_acc=float(m["test_acc"]),
                path=str(path),
                base_folder=base_name(m),
                # a retrain variant (its own model or augmentation) is its own group, never pooled with the base's
                base=base_name(m) + (f" retrained as {m['retrained_as']}" if m.get("retrained_as") else ""),
            )
            rows.append(row)
    return rows, problems, dataset


def read_base_models(experiment_dir) -> list:
    """The base models' metrics (model, augment, test_acc), one per ``base/<model>-<augment>/``."""
    out = []
    for path in base_metrics_files(experiment_dir):
        m = read_json(path)
        if isinstance(m, dict) and "test_acc" in m:
            out.append(
                {
                    "base": base_name(m),
                    "model": m.get("model"),
                    "augment": m.get("augment"),
                    "test_acc": m["test_acc"],
                    "dataset": m.get("dataset"),
                    "num_classes": m.get("num_classes"),
                    "path": str(path),
                }
            )
    return out


def read_evaluations(experiment_dir) -> tuple:
    """(results, problems): every roar-eval result below ``eval/<model>-<augment>/<fill>/`` (rankings,
    rankings in another model's order with ``order_from``, ``kind: lime_consistency`` results, and
    ``kind: soundness`` results under ``eval/<base>/soundness/``)."""
    results, problems = [], []
    for base, fill, path in eval_files(experiment_dir):
        r = read_json(path)
        if not isinstance(r, dict) or ("fidelity" not in r and r.get("kind") not in ("lime_consistency", "soundness")):
            problems.append(
                f"{path} is not a complete roar-eval result: skipped. Rerun roar-eval with the same overrides."
            )
            continue
        results.append({**r, "fill": fill, "base": base, "path": str(path)})
    return results, problems


def read_audits(experiment_dir) -> list:
    """Every shard set's leakage audit (roar-mask's ``audit.json``): its setting and mask recoverability."""
    out = []
    for base, path in audit_files(experiment_dir):
        a = read_json(path)
        if isinstance(a, dict) and isinstance(a.get("recoverability"), dict):
            out.append(
                {
                    "base": base,
                    "steps": a.get("steps"),
                    "estimator": a["estimator"],
                    "reduce": feature_label(a["reduce"], a.get("patch")),
                    "mode": a["mode"],
                    "fill": a["fill"],
                    "fraction": float(a["fraction"]),
                    "balanced_accuracy": float(a["recoverability"]["balanced_accuracy"]),
                }
            )
    return out


def expected_settings(grid, fill: str, reduce: str = "abs_sum", bases=()) -> list:
    """The settings a complete experiment of ``grid`` has (what roar-pipeline retrains), for each base
    model of ``bases``; ``reduce`` a ``feature_label`` (``abs_sum.patch4`` for patch rankings)."""
    return [(base, est, reduce, mode, fill, t) for base in bases for est, mode, t in retrain_settings(grid)]


def summarize(rows, expected=(), seeds: int = 1) -> list:
    """Mean, std and 95% CI over seeds per setting; expected settings without runs appear as
    missing, those with fewer than ``seeds`` runs as partial."""
    groups, skipped = {}, {}
    for r in rows:
        key = tuple(r[k] for k in SETTING)
        groups.setdefault(key, []).append(r["test_acc"])
        if r.get("skipped_samples"):  # broken samples a run left out (retrain.on_error=skip): shown, never hidden
            done, total = skipped.get(key, (0, 0))
            skipped[key] = (done + int(r["skipped_samples"]), total + int(r.get("num_train") or 0))
    out = []
    for key in sorted(set(groups) | set(expected), key=lambda k: (k[0], k[3], k[4], k[2], k[1], k[5])):
        accs = groups.get(key, [])
        status = "missing" if not accs else ("partial" if len(accs) < seeds else "complete")
        lost, total = skipped.get(key, (0, 0))
        if total and lost / total > SKIPPED_MARK:
            status += f" ({100 * lost / total:.1f}% of samples skipped)"
        out.append({**dict(zip(SETTING, key)), **mean_ci(accs), "status": status, "skipped": lost or None})
    return out


def baselines(summary) -> dict:
    """{(base, fill): the t = 0 summary row}: the unmodified data, the first point of every curve."""
    return {
        (s["base"], s["fill"]): s
        for s in summary
        if s["fraction"] == 0.0 and s["n"] and not fill_named(s["fill"]).leakage_control
    }
