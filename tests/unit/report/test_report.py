"""roar-report on a synthetic experiment with gaps and bad files, rendered in headless Chromium."""

import json
import os
import shutil
import subprocess

import pytest

from conftest import REPO, dump_dom
from roar.config import compose_config
from roar.errors import RoarError
from roar.report.run import build_report

GRID = ["grid.estimators=[grad,sobel,random]", "grid.fractions=[0.3,0.6,0.9]", "grid.seeds=3"]
# Accuracy per (estimator, fraction), seed offsets added: grad falls far below random, sobel follows random.
ACC = {
    "random": {0.3: 0.90, 0.6: 0.80, 0.9: 0.60},
    "grad": {0.3: 0.70, 0.6: 0.50, 0.9: 0.30},
    "sobel": {0.3: 0.90, 0.6: 0.80, 0.9: 0.60},
}
OFFSET = {0: 0.004, 1: -0.006, 2: 0.002}
SOBEL_OFFSET = {0: -0.005, 1: 0.003, 2: 0.004}


def write_run(exp, est, t, seed, acc, dataset="digits", mode="remove", fill="channel_mean", **extra):  # noqa: PLR0913 (a synthetic run's fields)
    d = exp / "runs" / f"{dataset}-resnet8-none" / est / mode / fill / format(t, "g") / f"seed={seed}"
    d.mkdir(parents=True, exist_ok=True)
    metrics = {
        "test_acc": acc,
        "test_loss": 1.0,
        "estimator": est,
        "reduce": "abs_sum",
        "mode": mode,
        "fill": fill,
        "fraction": t,
        "seed": seed,
        "dataset": dataset,
        "model": "resnet8",
        "augment": "none",
        "num_classes": 10,
        **extra,
    }
    (d / "metrics.json").write_text(json.dumps({k: v for k, v in metrics.items() if v is not None}))
    return d / "metrics.json"


@pytest.fixture
def synthetic(tmp_path):
    """An experiment with gaps: grad at t=0.9 never ran, sobel t=0.6 seed 2 is unfinished (no test_acc),
    one metrics.json is cut off, one run is of another dataset; plus mask_only leakage runs."""
    exp = tmp_path / "synthetic"
    for seed in range(3):
        write_run(exp, "random", 0.0, seed, 0.98 + OFFSET[seed] / 2)
        for est, curve in ACC.items():
            for t, acc in curve.items():
                if (est, t) == ("grad", 0.9):
                    continue
                if (est, t, seed) == ("sobel", 0.6, 2):
                    bad = write_run(exp, est, t, seed, None)
                    continue
                write_run(exp, est, t, seed, acc + (SOBEL_OFFSET if est == "sobel" else OFFSET)[seed])
        write_run(exp, "grad", 0.5, seed, 0.4 + OFFSET[seed], fill="mask_only")
        write_run(exp, "random", 0.5, seed, 0.15 + OFFSET[seed], fill="mask_only")  # random's masks alone
        for est, acc in (("grad", 0.95), ("random", 0.85)):  # KAR: keeping grad's top half keeps more
            write_run(exp, est, 0.5, seed, acc + OFFSET[seed], mode="keep")
    for est, t, recovered in (("grad", 0.3, 0.9), ("grad", 0.6, 0.8), ("sobel", 0.3, 0.55), ("sobel", 0.6, 0.55)):
        audit = exp / "shards" / "digits-resnet8-none" / est / "remove" / "channel_mean" / format(t, "g") / "audit.json"
        audit.parent.mkdir(parents=True)
        record = {"estimator": est, "reduce": "abs_sum", "mode": "remove", "fill": "channel_mean", "fraction": t}
        audit.write_text(json.dumps({**record, "recoverability": {"balanced_accuracy": recovered}}))
    cut = write_run(exp, "random", 0.3, 7, 0.9)
    cut.write_text('{"test_acc": 0.9')
    foreign = write_run(exp, "grad", 0.3, 5, 0.2, dataset="shapes")
    return tmp_path, exp, {"unfinished": bad, "cut": cut, "foreign": foreign}


def report_cfg(root, *extra):
    return compose_config("report", [f"paths.output_root={root}", "name=synthetic", "logger=csv", *GRID, *extra])


def read_csv(path):
    from roar.report.files import read_csv as read_report_csv

    return read_report_csv(path)


def test_report_from_a_folder_with_gaps(synthetic, capsys):
    root, exp, bad = synthetic
    index = build_report(report_cfg(root))
    out = capsys.readouterr().out
    rows = read_csv(exp / "report" / "results.csv")
    assert len(rows) == 3 + 3 * 3 * 3 - 3 - 1 + 6 + 6  # baseline + grid - grad@0.9 - unfinished + mask_only + keep
    assert {r["dataset"] for r in rows} == {"digits"}
    summary = {(r["estimator"], r["fill"], float(r["fraction"])): r for r in read_csv(exp / "report" / "summary.csv")}
    assert (
        summary["grad", "channel_mean", 0.9]["status"] == "missing"
        and summary["grad", "channel_mean", 0.9]["mean"] == ""
    )  # missing, not zero
    assert (
        summary["sobel", "channel_mean", 0.6]["status"] == "partial"
        and summary["sobel", "channel_mean", 0.6]["n"] == "2"
    )
    base = summary["random", "channel_mean", 0.0]
    assert base["status"] == "complete" and float(base["mean"]) == pytest.approx(0.98)
    grad = summary["grad", "channel_mean", 0.3]
    assert float(grad["mean"]) == pytest.approx(0.70) and float(grad["ci_low"]) < 0.70 < float(grad["ci_high"])
    verdict = {(r["estimator"], r["mode"]): r for r in read_csv(exp / "report" / "verdict.csv")}
    assert len(verdict) == 3  # mask_only is a leakage control, not judged against random
    assert (
        verdict["grad", "remove"]["verdict"] == "better than random"
        and verdict["grad", "remove"]["fractions"] == "0.3 0.6"
    )
    assert verdict["sobel", "remove"]["verdict"] == "no different"
    assert verdict["grad", "keep"]["verdict"] == "better than random"  # under KAR higher is better
    # the leakage audit beside each verdict: recoverability of its shard sets, its masks alone above chance
    grad, sobel = verdict["grad", "remove"], verdict["sobel", "remove"]
    assert float(grad["recoverability"]) == pytest.approx(0.85) and grad["leakage"] == "confounded by leakage"
    assert float(grad["mask_only"]) == pytest.approx(0.4 - 0.1)  # chance is 1/10
    assert float(grad["mask_only_random"]) == pytest.approx(0.15 - 0.1) and float(grad["mask_only_p"]) < 1e-4
    assert float(sobel["recoverability"]) == pytest.approx(0.55) and sobel["leakage"] == "" and sobel["mask_only"] == ""
    # the test behind every verdict is stated in the CSV's header comment, and p is corrected (Holm)
    head = (exp / "report" / "verdict.csv").read_text().splitlines()[0]
    assert head.startswith("# Welch's two-sided t-test") and "Holm correction" in head
    assert float(grad["p_adjusted"]) >= float(grad["p"]) and grad["correction"] == "holm"
    assert verdict["grad", "remove"]["base"] == "digits-resnet8-none"
    for path in bad.values():  # every file left out is named, with what to do
        assert str(path) in out
    assert "rerun the same roar-train command" in out and "name=..." in out
    page = index.read_text()
    assert "missing" in page and "Leakage" in page and page.count("<img") >= 2 and str(bad["foreign"]) in page
    assert "Welch&#x27;s two-sided t-test" in page and "Holm correction" in page
    leak = {r["estimator"]: r for r in read_csv(exp / "report" / "summary.csv") if r["fill"] == "mask_only"}
    assert len(leak) == 2 and float(leak["grad"]["mean"]) == pytest.approx(0.4)
    assert "Verdict: Welch's two-sided t-test" in out and "base model digits-resnet8-none" in out


def test_a_grid_without_its_t0_baseline_gets_no_verdict_but_says_what_would_complete_it(synthetic):
    root, exp, _ = synthetic
    shutil.rmtree(exp / "runs" / "digits-resnet8-none" / "random" / "remove" / "channel_mean" / "0")
    build_report(report_cfg(root))
    verdict = {(r["estimator"], r["mode"]): r for r in read_csv(exp / "report" / "verdict.csv")}
    assert verdict["grad", "remove"]["verdict"].startswith("insufficient data: no t = 0 baseline run")
    assert "estimator=random fraction=0 mode=remove" in verdict["grad", "remove"]["verdict"]
    assert "worse than random" not in (exp / "report" / "index.html").read_text()


def test_report_of_an_experiment_without_runs_says_so_and_still_builds(tmp_path, capsys):
    (tmp_path / "synthetic" / "base" / "digits-resnet8-none-0123abcd").mkdir(parents=True)
    (tmp_path / "synthetic" / "base" / "digits-resnet8-none-0123abcd" / "metrics.json").write_text(
        json.dumps({"test_acc": 0.97, "model": "resnet8", "augment": "none"})
    )
    index = build_report(report_cfg(tmp_path))
    assert "No finished retrain runs under" in capsys.readouterr().out
    assert index.is_file() and "0.970" in index.read_text()
    summary = read_csv(tmp_path / "synthetic" / "report" / "summary.csv")
    assert summary and all(r["status"] == "missing" for r in summary)
    with pytest.raises(RoarError, match=r"report.correction=sidak report.alpha=0.05: the correction is one of holm"):
        build_report(report_cfg(tmp_path, "report.correction=sidak"))
    with pytest.raises(RoarError, match="No experiment folder at .*nowhere"):
        build_report(compose_config("report", [f"paths.output_root={tmp_path}", "name=nowhere", "logger=csv"]))


def test_report_goes_to_an_offline_wandb_run(synthetic):
    root, exp, _ = synthetic
    build_report(report_cfg(root, "logger=wandb", "logger.mode=offline"))
    runs = list((exp / "report" / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(runs) == 1 and runs[0].stat().st_size > 1000
    media = runs[0].parent / "files" / "media"  # what the run logged, as wandb wrote it for upload
    tables = {p.name.split("_")[0]: json.loads(p.read_text()) for p in media.glob("table/*.table.json")}
    assert {"results", "summary", "verdict"} <= set(tables)
    verdict = tables["verdict"]
    rows = [dict(zip(verdict["columns"], row)) for row in verdict["data"]]
    assert {(r["estimator"], r["mode"], r["verdict"]) for r in rows} >= {
        ("grad", "remove", "better than random"),
        ("sobel", "remove", "no different"),
    }
    assert {p.name.split("_")[0] for p in media.glob("images/*.png")} == {"roar-channel", "kar-channel"}
    import time

    time.sleep(1.1)  # wandb names offline folders by the second
    build_report(report_cfg(root, "logger=wandb", "logger.mode=offline"))  # a repeat resumes the same wandb run
    again = sorted((exp / "report" / "wandb").glob("offline-run-*"))
    assert len(again) == 2 and len({p.name.rsplit("-", 1)[1] for p in again}) == 1  # one run id: one run once synced


def test_report_renders_in_headless_chromium_with_every_figure_loaded(synthetic):
    root, exp, _ = synthetic
    index = build_report(report_cfg(root))
    images = index.read_text().count("<img")
    dom = dump_dom(index)
    assert images >= 2 and f'data-images-loaded="{images}/{images}"' in dom
    assert "better than random" in dom


def test_cli_errors_are_one_paragraph_and_exit_2(tmp_path):
    from conftest import roar_cli

    env = {**os.environ, "ROAR_OUTPUTS": str(tmp_path)}
    report = roar_cli("roar-report", "name=nowhere", "logger=csv", env=env)
    assert (
        report.returncode == 2
        and "roar-report: error: No experiment folder at" in report.stderr
        and "Traceback" not in report.stderr
    )
    evaluate = roar_cli("roar-eval", "eval.rankings=[ig.bogus]", "logger=csv", env=env)
    assert evaluate.returncode == 2 and "roar-eval: error: eval.rankings has 'ig.bogus'" in evaluate.stderr


def test_roar_curve_panels_follow_roar_figure_4():
    from roar.report.plots import family

    assert family("grad") == family("ig.sum") == family("gb") == "Base estimators"
    assert family("sg-ig") == "SmoothGrad"
    assert family("sg_sq-grad") == family("vargrad-gb") == "SmoothGrad-squared and VarGrad"
    assert family("random") == family("sobel") == "controls"  # drawn dashed in every panel


def test_the_report_replaces_and_deletes_only_files_it_wrote(synthetic):
    root, exp, _ = synthetic
    out = exp / "report"
    out.mkdir()
    (out / "summary.csv").write_text("my,own,table\n")
    with pytest.raises(RoarError, match=r"holds files roar-report did not write \(summary.csv\)"):
        build_report(report_cfg(root))
    assert (out / "summary.csv").read_text() == "my,own,table\n"  # refused before writing anything
    (out / "summary.csv").unlink()
    build_report(report_cfg(root))
    (out / "my-figure.png").write_bytes(b"\x89PNG mine")  # the user's, dropped in after the report
    stale = out / "kar-channel_mean.png"
    assert stale.is_file()
    shutil.rmtree(exp / "runs" / "digits-resnet8-none" / "grad" / "keep")  # the KAR figure is no longer drawn...
    shutil.rmtree(exp / "runs" / "digits-resnet8-none" / "random" / "keep")
    with pytest.raises(RoarError, match=r"did not write \(my-figure.png\)"):
        build_report(report_cfg(root))
    (out / "my-figure.png").rename(out / "my-figure.txt")
    build_report(report_cfg(root))
    assert not stale.exists() and (out / "my-figure.txt").is_file()  # ...so its file goes; the user's stays


def test_wandb_sync_without_an_answering_server_gives_up_with_a_message(synthetic):
    """`make wandb-sync` used to hang silently when the network does not answer: a real local server that
    accepts connections and never replies stands in for it."""
    import socket
    import threading
    import time

    root, exp, _ = synthetic
    build_report(report_cfg(root, "logger=wandb", "logger.mode=offline"))  # one real offline run to upload
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    held = []

    def hold():  # accept and say nothing
        while True:
            try:
                held.append(server.accept()[0])
            except OSError:
                return

    threading.Thread(target=hold, daemon=True).start()
    repo = REPO
    env = {**os.environ, "WANDB_BASE_URL": f"http://127.0.0.1:{server.getsockname()[1]}", "WANDB_API_KEY": "x" * 40}
    env.pop("WANDB_MODE", None)
    started = time.time()
    out = subprocess.run(
        ["make", "-s", "-C", str(repo), "wandb-sync", f"OUTPUTS={exp}", "WANDB_SYNC_TIMEOUT=8"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    server.close()
    assert out.returncode != 0 and time.time() - started < 90
    assert "did not finish within 8 s" in out.stderr and "check the network and 'wandb login'" in out.stderr
