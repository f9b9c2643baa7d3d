"""The console commands (``roar-train``, ``roar-attribute``, ...): each imports the plug-ins first, so that a
plug-in that fails to import is one line naming it (exit status 2), then runs its stage's Hydra app with the
plug-ins' names among the config options."""

import importlib
import os
import sys
from pathlib import Path

from roar.errors import reported
from roar.plugins import load_plugins
from roar.store.io import check_writable

COMMANDS = {
    "train": "train",
    "attribute": "attribute",
    "mask": "mask",
    "eval": "evaluate",
    "report": "report",
    "pipeline": "pipeline",
    "plan": "plan",
}


READ_ONLY = ("-h", "--help", "--cfg", "-c", "--info", "-i", "--hydra-help", "verify", "status")


def output_root(args) -> Path:
    """The output root a command line writes under: its ``paths.output_root=``, else the default's
    (``$ROAR_OUTPUTS`` or ``outputs``, conf/paths/default.yaml)."""
    given = [a.split("=", 1)[1] for a in args if a.lstrip("+").startswith("paths.output_root=")]
    return Path(given[-1] if given else os.environ.get("ROAR_OUTPUTS", "outputs")).expanduser()


def _command(command: str):
    def main():
        with reported(f"roar-{command}"):
            load_plugins()
            if not any(a in READ_ONLY for a in sys.argv[1:]):  # a full or read-only disk: one paragraph, first
                check_writable(output_root(sys.argv[1:]))
        stage = importlib.import_module(f"roar.stages.{COMMANDS[command]}")  # roar.config: loads plug-ins too
        config = importlib.import_module("roar.config")
        config.register_options()  # what they registered, whatever they imported
        config.register_named(sys.argv[1:])  # estimator=imported-<name>, estimator=captum-<any class>
        return stage.main()

    main.__name__ = f"{command}_main"
    return main


train, attribute, mask, evaluate, report, pipeline, plan = (_command(c) for c in COMMANDS)
