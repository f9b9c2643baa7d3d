"""A test-only Lightning callback: hold a run at a known epoch until the test acts on it."""

import time
from pathlib import Path

import lightning as L


class HoldAtEpoch(L.Callback):
    """At the start of ``epoch`` (so the previous epoch's last.ckpt is on disk) write ``marker`` and
    wait; a run that finds the marker already there (the requeued one) goes straight on."""

    def __init__(self, epoch: int, marker: str, timeout: float = 300):
        self.epoch, self.marker, self.timeout = int(epoch), Path(marker), float(timeout)

    def on_train_epoch_start(self, trainer, module):
        if trainer.current_epoch != self.epoch or self.marker.exists():
            return
        self.marker.write_text("held\n")
        time.sleep(self.timeout)  # until the scheduler requeues (kills) this job


class RecordRank(L.Callback):
    """Leave a file ``<pid>-rank<r>-<digest of the run folder>`` (holding the folder) in ``folder`` when a fit
    starts: one per process that trains a run, so a test counts the processes a sweep started."""

    def __init__(self, folder: str):
        self.folder = Path(folder)

    def on_fit_start(self, trainer, module):
        import hashlib
        import os

        self.folder.mkdir(parents=True, exist_ok=True)
        run = hashlib.sha256(str(trainer.default_root_dir).encode()).hexdigest()[:12]
        (self.folder / f"{os.getpid()}-rank{trainer.global_rank}-{run}").write_text(str(trainer.default_root_dir))
