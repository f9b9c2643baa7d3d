"""Training one classifier (a base model or a retrain run) with Lightning: ``roar.training.run.train``."""
