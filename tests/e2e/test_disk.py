"""A full or read-only disk under paths.output_root: one paragraph naming the folder and its free space, never a
traceback (Hydra's log file, Lightning's checkpoint), and never a truncated checkpoint. Real small file systems:
tmpfs mounts of a given size (the test machine runs as root)."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import TINY

BIN = Path(sys.executable).parent
QUIET = ["logger=csv", "trainer.enable_progress_bar=false"]


@pytest.fixture
def disk(tmp_path):
    """make(size, read_only=False): a tmpfs of ``size`` mounted in tmp_path, unmounted after the test."""
    mounts = []

    def make(size: str, read_only: bool = False) -> Path:
        folder = tmp_path / f"disk{len(mounts)}"
        folder.mkdir()
        options = f"size={size}" + (",ro" if read_only else "")
        out = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], capture_output=True)
        if out.returncode != 0:
            pytest.skip(f"mounting a tmpfs needs root with CAP_SYS_ADMIN: {out.stderr.decode().strip()}")
        mounts.append(folder)
        return folder

    yield make
    for folder in mounts:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True)


def roar_train(root, *extra):
    return subprocess.run(
        [str(BIN / "roar-train"), f"paths.output_root={root}", *TINY, *QUIET, *extra],
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_a_read_only_output_root_is_one_paragraph_before_anything_starts(disk):
    out = roar_train(disk("1m", read_only=True) / "outputs")
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr[-3000:]
    assert "roar-train: error: Cannot write under" in out.stderr and "Read-only file system" in out.stderr
    assert "GiB free there" in out.stderr and "paths.output_root=" in out.stderr


def test_a_full_output_root_is_one_paragraph_before_anything_starts(disk):
    root = disk("32k")
    out = roar_train(root)
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr[-3000:]
    assert "Cannot write under" in out.stderr and "No space left on device" in out.stderr
    assert list(root.iterdir()) == []  # nothing was started there


@pytest.mark.slow
def test_a_disk_that_fills_up_mid_run_keeps_the_last_complete_checkpoint(disk):
    """Room for the logs and one checkpoint (655 KB), not for a second one beside it: the second epoch's save
    fails, the first epoch's last.ckpt stays whole, no temporary file is left, and the error is one paragraph."""
    root = disk("1000k")
    out = roar_train(root, "trainer.max_epochs=2")
    assert out.returncode == 1 and "Traceback" not in out.stderr, out.stderr[-3000:]
    assert "roar-train: error: Could not write" in out.stderr and "No space left on device" in out.stderr
    assert "GiB free there" in out.stderr and "run the same command again to resume" in out.stderr
    (ckpt,) = root.glob("roar_digits/base/*/checkpoints/last.ckpt")
    assert torch.load(ckpt, map_location="cpu", weights_only=False)["epoch"] == 0  # whole, from epoch 1
    assert not list(root.rglob("*.tmp")) and not list(root.rglob("metrics.json"))
