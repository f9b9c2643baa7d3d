"""roar: RemOve And Retrain, and the evaluations around it (KAR, FPA MIF/LIF, token drop)."""

__version__ = "0.1.0"
