"""Local multi-process DDP inside a sweep or a pipeline: each run's ranks are spawned (roar.training.ranks), so
the command line, which is the whole sweep or chain, never runs again once per rank (the Hydra + Lightning trap:
Lightning's default launcher re-executes the command line for every extra device)."""

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from conftest import TESTS, TINY

pytestmark = pytest.mark.slow
BIN = Path(sys.executable).parent
DDP = ["trainer=ddp", "trainer.devices=2", "trainer.accelerator=cpu", "logger=csv"]


def record(folder) -> list:
    return ["+callbacks.ranks._target_=hold.RecordRank", f"+callbacks.ranks.folder={folder}"]


def run(*cmd, timeout=900):
    env = {**os.environ, "PYTHONPATH": str(TESTS)}  # the jobs import the test-only callback (hold.py)
    out = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, env=env, timeout=timeout)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return out


def fits(folder: Path) -> Counter:
    """{run folder: how many processes started a fit of it}, and every (rank, run) once."""
    files = [p.name for p in folder.iterdir()]
    assert len({f.split("-", 1)[1] for f in files}) == len(files), f"a rank of a run started twice: {files}"
    return Counter((folder / f).read_text() for f in files)


def test_a_multirun_over_two_seeds_with_ddp_trains_each_seed_once_with_two_processes(tmp_path):
    ranks = tmp_path / "ranks"
    run(BIN / "roar-train", "-m", f"paths.output_root={tmp_path}", *TINY, *DDP, *record(ranks), "seed=0,1")
    metrics = [json.loads(p.read_text()) for p in sorted(tmp_path.glob("roar_digits/base/*/metrics.json"))]
    assert sorted(m["seed"] for m in metrics) == [0, 1] and all(m["world_size"] == 2 for m in metrics)
    per_run = fits(ranks)
    assert len(per_run) == 2 and set(per_run.values()) == {2}  # two runs, two processes each, nothing more
    pids = {int(p.name.split("-")[0]) for p in ranks.iterdir()}
    assert len(pids) == 4  # every rank its own spawned process
    jobs = [p for p in tmp_path.glob("roar_digits/logs/multirun/*/*") if p.is_dir() and p.name.isdigit()]
    assert len(jobs) == 2  # the sweep ran its two jobs once


def test_roar_pipeline_with_ddp_runs_every_stage_once(tmp_path):
    ranks = tmp_path / "ranks"
    out = run(BIN / "roar-pipeline", f"paths.output_root={tmp_path}", *TINY, "grid.seeds=1", *DDP, *record(ranks))
    per_run = fits(ranks)
    assert len(per_run) == 4 and set(per_run.values()) == {2}  # base + 3 retrains, two processes each
    said = out.stdout + out.stderr
    assert said.count("[roar-attribute] complete") + said.count("[roar-attribute] 2 estimators") == 1
    assert said.count("[roar-report] 3 runs") == 1
    runs = [json.loads(p.read_text()) for p in tmp_path.glob("roar_digits/runs/**/metrics.json")]
    assert len(runs) == 3 and all(r["world_size"] == 2 for r in runs)
