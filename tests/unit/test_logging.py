"""roar's messages go through ``logging``: one plain line on the console, on rank zero only, and on to the root
logger (Hydra's per-run log file); long work shows a bar on a terminal and a line every 10% elsewhere."""

import logging
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import QUIET
from roar.utils import progress as progress_module
from roar.utils.log import get_logger
from roar.utils.progress import Milestones, Quiet, progress


def test_a_message_is_one_plain_line_on_stdout_and_reaches_the_root_logger(capsys, caplog):
    with caplog.at_level(logging.INFO):
        get_logger("roar.some.module").info("[roar-x] hello")
    assert capsys.readouterr().out == "[roar-x] hello\n"
    assert [r.getMessage() for r in caplog.records if r.name == "roar.some.module"] == ["[roar-x] hello"]


@pytest.mark.parametrize("variable", ["RANK", "LOCAL_RANK", "SLURM_PROCID"])
def test_only_rank_zero_writes_to_the_console(capsys, monkeypatch, variable):
    monkeypatch.setenv(variable, "1")
    get_logger("roar.some.module").info("from rank one")
    monkeypatch.setenv(variable, "0")
    get_logger("roar.some.module").info("from rank zero")
    assert capsys.readouterr().out == "from rank zero\n"


def test_off_a_terminal_progress_is_a_line_every_tenth(capsys, monkeypatch):
    monkeypatch.setattr(progress_module, "QUIET_SECONDS", 0.0)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: False, raising=False)
    with progress(200, "mask", "img") as bar:
        assert isinstance(bar, Milestones)
        for _ in range(40):
            bar.update(5)
    lines = capsys.readouterr().out.splitlines()
    assert lines == [f"mask: {10 * k}% ({20 * k}/200 img)" for k in range(1, 11)]


def test_short_work_and_other_ranks_leave_no_lines(capsys, monkeypatch):
    monkeypatch.setattr(sys.stderr, "isatty", lambda: False, raising=False)
    with progress(10, "eval", "img") as bar:  # done well within QUIET_SECONDS
        bar.update(10)
    monkeypatch.setenv("RANK", "3")
    assert isinstance(progress(10, "eval", "img"), Quiet)
    assert capsys.readouterr().out == ""


def test_a_terminal_gets_tqdm(monkeypatch):
    from tqdm import tqdm

    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    bar = progress(3, "attribute", "img")
    assert isinstance(bar, tqdm)
    bar.close()


@pytest.mark.slow
def test_a_roar_train_runs_hydra_log_file_holds_its_messages(tmp_path):
    """The console shows roar's lines; Hydra's train.log of the run holds them too (it stayed empty with print)."""
    out = subprocess.run(
        [
            str(Path(sys.executable).parent / "roar-train"),
            f"paths.output_root={tmp_path}",
            *QUIET,
            "trainer.max_epochs=1",
            "trainer.limit_train_batches=2",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    line = next(x for x in out.stdout.splitlines() if x.startswith("[roar-train] test_acc="))
    (log_file,) = tmp_path.rglob("train.log")
    assert line in log_file.read_text()
