"""Progress of long work: a tqdm bar on a terminal; elsewhere (SLURM, CI, a file) one log line at every 10%, once
the work has taken ``QUIET_SECONDS`` (work that ends sooner leaves no lines)."""

import sys
import time

from tqdm import tqdm

from roar.utils.log import get_logger, rank

log = get_logger(__name__)
QUIET_SECONDS = 5.0


class Milestones:
    """tqdm's interface (``update``, ``set_postfix_str``, a context manager) as a log line every tenth of the way."""

    def __init__(self, total: int, desc: str, unit: str):
        self.total, self.desc, self.unit, self.n, self.shown = int(total), desc, unit, 0, 0
        self.started = time.monotonic()

    def update(self, n: int = 1) -> None:
        self.n += n
        tenth = 10 * self.n // self.total if self.total else 10
        if tenth > self.shown and time.monotonic() - self.started >= QUIET_SECONDS:
            self.shown = tenth
            log.info(f"{self.desc}: {10 * tenth}% ({self.n}/{self.total} {self.unit})")

    def set_postfix_str(self, text: str) -> None:
        pass

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


class Quiet(Milestones):
    def update(self, n: int = 1) -> None:
        self.n += n


def progress(total: int, desc: str, unit: str, disable: bool = False, leave: bool = True):
    """A progress bar for ``total`` items: tqdm when standard error is a terminal, else ``Milestones``; nothing on
    ranks other than zero or when ``disable``."""
    if disable or rank() != 0:
        return Quiet(total, desc, unit)
    if sys.stderr.isatty():
        return tqdm(total=total, desc=desc, unit=unit, dynamic_ncols=True, leave=leave)
    return Milestones(total, desc, unit)
