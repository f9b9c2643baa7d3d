"""``hydra/sweeper=grid``: roar.stages.preflight's sweeper, defined where Hydra accepts plugins."""

from roar.stages.preflight import PreflightSweeper


class GridSweeper(PreflightSweeper):
    """The retrain grid generated on every launcher, every job checked before any is launched."""
