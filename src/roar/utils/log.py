"""roar's messages through the standard ``logging`` module: ``log = get_logger(__name__)``, then ``log.info(...)``.

The ``roar`` logger writes each message as it is (one readable line, no level or time) to the console, on rank zero
only (a DDP job's other processes stay quiet), and passes it on to the root logger, so a Hydra app's per-run log file
(its ``<job>.log``, configured in ``conf/roar.yaml`` to hold the file handler alone) records every message too.
"""

import logging
import os
import sys

ROOT = "roar"
RANK_VARIABLES = ("RANK", "LOCAL_RANK", "SLURM_PROCID", "JSM_NAMESPACE_RANK")  # Lightning's order (rank_zero_only)


def rank() -> int:
    """This process's global rank as the launcher set it (0 when nothing did)."""
    for key in RANK_VARIABLES:
        if os.environ.get(key, "").isdigit():
            return int(os.environ[key])
    return 0


class Console(logging.StreamHandler):
    """Standard output as it is when a message is written (a redirect or pytest's capture), rank zero only."""

    def __init__(self):
        super().__init__(sys.stdout)
        self.setFormatter(logging.Formatter("%(message)s"))
        self.addFilter(lambda record: rank() == 0)

    @property
    def stream(self):
        return sys.stdout

    @stream.setter
    def stream(self, value):  # StreamHandler sets it once; the current sys.stdout is read at each write instead
        pass


def get_logger(name: str) -> logging.Logger:
    """The logger of a roar module (``roar.training.run``): below ``roar``, which holds the console handler."""
    top = logging.getLogger(ROOT)
    if not any(isinstance(h, Console) for h in top.handlers):
        top.addHandler(Console())
        top.setLevel(logging.INFO)
    return logging.getLogger(name if name.startswith(ROOT) else f"{ROOT}.{name}")
