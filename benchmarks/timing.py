"""Side-by-side timing: candidates are run interleaved, several rounds, and compared by their medians."""

import statistics
import time

import lightning as L


def interleaved(candidates: dict, rounds: int = 5, warmup: int = 1) -> dict:
    """Median seconds per call of each zero-argument callable in ``candidates``, measured in turns."""
    for fn in candidates.values():
        for _ in range(warmup):
            fn()
    times = {name: [] for name in candidates}
    for _ in range(rounds):
        for name, fn in candidates.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def verdict(ratio: float, goal: float, higher_is_better: bool = True) -> str:
    ok = ratio >= goal if higher_is_better else ratio <= goal
    return f"{'PASS' if ok else 'MISS'} (goal {'>=' if higher_is_better else '<='} {goal})"


class EpochClock(L.Callback):
    """Wall time of one training epoch, from its start (or from the start of batch ``skip``, the warm-up
    left out) to its end, Lightning's own work included."""

    def __init__(self, skip=None):
        self.skip, self.start, self.seconds = skip, None, None

    def on_train_epoch_start(self, trainer, module):
        if self.skip is None:
            self.start = time.perf_counter()

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        if batch_idx == self.skip:
            self.start = time.perf_counter()

    def on_train_epoch_end(self, trainer, module):
        self.seconds = time.perf_counter() - self.start


def fit_one_epoch(model, loader, skip=None, accelerator="cpu") -> float:
    """Seconds of one epoch of ``model`` on ``loader`` (a DataLoader or a LightningDataModule) in a bare
    Trainer (no logger, checkpoint, validation or progress bar), timed by ``EpochClock(skip)``."""
    clock = EpochClock(skip)
    L.Trainer(
        accelerator=accelerator,
        max_epochs=1,
        logger=False,
        enable_checkpointing=False,
        callbacks=[clock],
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
    ).fit(model, loader)
    return clock.seconds
