"""roar's Hydra sweeper (Hydra takes sweepers only from the ``hydra_plugins`` namespace); the logic
lives in roar.stages.preflight."""
