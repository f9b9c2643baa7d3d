"""Plug-ins: installed packages that extend roar through the entry-point group ``roar.plugins``.

A plug-in package declares, in its own ``pyproject.toml``::

    [project.entry-points."roar.plugins"]
    my_method = "my_package.roar_plugin"

and ``my_package/roar_plugin.py`` registers what it brings (``@roar.register_estimator("my_method")``,
``roar.register_model``, ``roar.register_dataset``, ``roar.register_fill``). Every stage imports the plug-ins
before it reads its config (roar.config), so their names are options on the command line and in ``--help``.
The entry-point mechanism is the Python packaging standard's (``importlib.metadata``), the one pytest and
Hydra use for theirs.
"""

import importlib
from importlib.metadata import entry_points

from roar.errors import RoarError

GROUP = "roar.plugins"
_loaded: dict = {}


class PluginError(RoarError):
    """A plug-in that could not be imported (the message names it, its module and the cause)."""


def load_plugins() -> dict:
    """Import every module of the ``roar.plugins`` entry points once; {entry-point name: module path}.

    Raises PluginError naming the first plug-in whose import fails (the others stay loaded)."""
    for ep in sorted(entry_points(group=GROUP), key=lambda e: e.name):
        if ep.name in _loaded:
            continue
        try:
            importlib.import_module(ep.value.partition(":")[0])
        except Exception as err:  # any error inside a third party's module is that plug-in's
            dist = getattr(getattr(ep, "dist", None), "name", None) or "an installed package"
            raise PluginError(
                f"roar plug-in {ep.name!r} ({ep.value}, from {dist}) failed to import: {type(err).__name__}: "
                f"{err}. Fix or uninstall that package (pip uninstall {dist})."
            ) from err
        _loaded[ep.name] = ep.value
    return dict(_loaded)
