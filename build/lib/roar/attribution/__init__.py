"""Estimator maps of every train and test image, sharded and resumable: ``roar.attribution.run.attribute``."""
