"""roar's Python API, one module per job: ``no_retrain``, ``attribute``, ``run`` and ``register`` (the decorators).
Use it as ``roar.no_retrain``, ``roar.register_estimator``, ...: roar's top level imports each module on first
use, so that a plug-in registering an estimator does not import the pipeline's configs while it loads."""
