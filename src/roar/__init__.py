"""roar: RemOve And Retrain, and the evaluations around it (KAR, FPA MIF/LIF, token drop, SIS, soundness).

The Python API (roar.api), imported on first use so that ``import roar`` stays light for a plug-in::

    import roar
    result = roar.no_retrain(model, images, labels, maps, fill="channel_mean")
    maps = roar.attribute(model, images, "sg_sq-grad")
    outcome = roar.run("roar_digits", overrides=["grid.estimators=[grad,random]"])

    @roar.register_estimator("my_method")
    def my_method(model, x, target, params): ...
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("roar")  # defined once, in pyproject.toml
except PackageNotFoundError:  # a source tree on sys.path without an install
    __version__ = "0+unknown"

API = {  # name -> the module of roar.api that holds it (a plug-in's registration imports no more than it needs)
    "no_retrain": "no_retrain",
    "NoRetrainResult": "no_retrain",
    "attribute": "attribute",
    "run": "run",
    "RunResult": "run",
    "register_estimator": "register",
    "register_model": "register",
    "register_dataset": "register",
    "register_fill": "register",
}
__all__ = ["__version__", *API]


def __getattr__(name: str):
    if name in API:
        import importlib

        return getattr(importlib.import_module(f"roar.api.{API[name]}"), name)
    raise AttributeError(f"module 'roar' has no attribute {name!r}")


def __dir__():
    return sorted(__all__)
