"""Feature-importance estimators (ROAR section 4.1) and their reduction to rankable features."""

from roar.estimators.reduce import REDUCTIONS, reduce_maps
from roar.estimators.registry import available, parse
from roar.estimators.suite import DEFAULT_PARAMS, EstimatorSuite, get_estimator

__all__ = ["DEFAULT_PARAMS", "EstimatorSuite", "REDUCTIONS", "available", "get_estimator", "parse", "reduce_maps"]
