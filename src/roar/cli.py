"""The console commands (``roar-train``, ``roar-attribute``, ...): each imports the plug-ins first, so that a
plug-in that fails to import is one line naming it (exit status 2), then runs its stage's Hydra app with the
plug-ins' names among the config options."""

import importlib
import sys

from roar.errors import reported
from roar.plugins import load_plugins

COMMANDS = {
    "train": "train",
    "attribute": "attribute",
    "mask": "mask",
    "eval": "evaluate",
    "report": "report",
    "pipeline": "pipeline",
    "plan": "plan",
}


def _command(command: str):
    def main():
        with reported(f"roar-{command}"):
            load_plugins()
        stage = importlib.import_module(f"roar.stages.{COMMANDS[command]}")  # roar.config: loads plug-ins too
        config = importlib.import_module("roar.config")
        config.register_options()  # what they registered, whatever they imported
        config.register_named(sys.argv[1:])  # estimator=imported-<name>, estimator=captum-<any class>
        return stage.main()

    main.__name__ = f"{command}_main"
    return main


train, attribute, mask, evaluate, report, pipeline, plan = (_command(c) for c in COMMANDS)
