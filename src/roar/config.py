"""Where the Hydra configs live, the resolvers they use, the config options made from the
registries, and composing configs outside a Hydra app (tests, scripts, notebooks).

- ``${roar.key:WHAT}``: a folder from the typed keys (roar.store.keys) of the config it is in:
  ``run`` (the run's folder), ``run_logs`` (Hydra's files of that run), ``base`` (the base model's name),
  ``experiment``, ``logs``, ``report``.
- ``fill=<name>`` and ``estimator=<name>`` are made from the fill and estimator registries, so a
  registered fill or estimator is a config option with no YAML file to keep in sync; so are ``model=<name>`` and
  ``data=<name>`` for a registered model or dataset that has no YAML file of its own (a plug-in's).
- The plug-ins (roar.plugins) are imported first, so that what they register is among the options.
"""

import os
import tempfile
import uuid
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf

from roar.data.registry import DATASETS
from roar.errors import RoarError
from roar.estimators import available as estimators_available
from roar.estimators.registry import parse as parse_estimator
from roar.masking.fills import FILLS
from roar.models.registry import MODELS
from roar.plugins import load_plugins
from roar.store import resolve
from roar.store.grid import with_zero


def _config_dir() -> Path:
    """The config tree: ``roar/conf`` inside an installed wheel (setup.py maps the top-level ``conf/`` there),
    else the top-level ``conf/`` of the checkout this package runs from (``make install``, ``pip install -e``)."""
    here = Path(__file__).resolve().parent
    for folder in (here / "conf", here.parent.parent / "conf"):
        if (folder / "roar.yaml").is_file():
            return folder
    raise RoarError(
        f"roar's configs are missing: neither {here / 'conf'} nor {here.parent.parent / 'conf'} holds roar.yaml. "
        f"Reinstall roar (pip install .)."
    )


CONFIG_DIR = _config_dir()

_KEYS = {
    "run": lambda cfg: resolve.run_key(cfg).folder,
    "run_logs": resolve.run_logs_dir,
    "base": lambda cfg: resolve.base_key(cfg).name,
    "experiment": resolve.experiment_dir,
    "logs": resolve.logs_dir,
    "report": resolve.report_dir,
}


def _key(what: str, _root_):
    if what not in _KEYS:
        raise RoarError(f"${{roar.key:{what}}}: valid keys are {', '.join(_KEYS)}.")
    try:
        return str(_KEYS[what](_root_))
    except RoarError:  # bad input (fraction=abc): the stage's own checks report it in one paragraph
        if what == "base":  # a folder name inside the logs' path (logs/mask/<base>/...), never a path itself
            return "invalid"
        try:
            return str(resolve.logs_dir(_root_) / "invalid")
        except RoarError:  # a bad name= itself: Hydra's own files go to the temp folder, the stage refuses
            return str(Path(tempfile.gettempdir()) / "roar-invalid-name")


OmegaConf.register_new_resolver("roar.key", _key, replace=True)
OmegaConf.register_new_resolver(
    "roar.with_zero", lambda ts: OmegaConf.create(with_zero(ts)), replace=True
)  # a node: --resolve prints it
OmegaConf.register_new_resolver("roar.unique", lambda: f"{os.getpid()}-{uuid.uuid4().hex[:6]}", replace=True)


DATA_DEFAULTS = {"batch_size": 64, "num_workers": 0}  # what every data config has (conf/data/*.yaml)


def register_options() -> None:
    """``fill=<name>`` (the fill's settings with their defaults) and ``estimator=<name>`` for every
    registered fill and estimator; ``model=<name>`` and ``data=<name>`` for a registered model or dataset
    without a YAML file (its registered ``params`` as defaults). Called again after a registration in Python
    (roar.api), replacing what it stored before."""
    store = ConfigStore.instance()
    for group, registry in (("fill", FILLS), ("estimator", None), ("model", MODELS), ("data", DATASETS)):
        names = set(estimators_available() if registry is None else registry.names())
        for stale in [k for k in store.repo.get(group, {}) if k.removesuffix(".yaml") not in names]:
            del store.repo[group][stale]  # unregistered since (a test's temporary entry)
    for name in FILLS:
        store.store(group="fill", name=name, node={"name": name, **FILLS[name].params})
    for name in estimators_available():
        store.store(group="estimator", name=name, node={"estimator": name}, package="_global_")
    for name in MODELS:
        if not (CONFIG_DIR / "model" / f"{name}.yaml").exists():
            store.store(group="model", name=name, node={"name": name, "params": dict(MODELS[name].params)})
    for name in DATASETS:
        if not (CONFIG_DIR / "data" / f"{name}.yaml").exists():
            store.store(group="data", name=name, node={"name": name, **DATA_DEFAULTS, **DATASETS[name].params})


def register_named(overrides) -> None:
    """``estimator=<name>`` for the names of ``overrides`` that are estimators without a listed option: an
    imported ranking (``imported-<name>``) or a Captum class beyond the listed ones (``captum-<Class>``). A name
    that is no estimator is left to Hydra, which lists the options."""
    store = ConfigStore.instance()
    for override in overrides:
        key, _, value = str(override).lstrip("+~").partition("=")
        if key != "estimator":
            continue
        for name in value.split(","):  # a sweep's estimator=a,b
            if f"{name}.yaml" in store.repo.get("estimator", {}):
                continue
            try:
                parse_estimator(name)
            except RoarError:
                continue
            store.store(group="estimator", name=name, node={"estimator": name}, package="_global_")


load_plugins()
register_options()


def search_path(config_dir) -> str:
    """The override that adds a folder of the user's own configs (``experiment/<name>.yaml``, ...) to Hydra's search
    path: what ``--config-dir <folder>`` does for a Hydra app, for roar-pipeline and ``roar.run``."""
    folder = Path(str(config_dir)).expanduser().resolve()
    if not folder.is_dir():
        raise RoarError(
            f"--config-dir {config_dir}: no such folder (it holds your configs, e.g. experiment/mine.yaml)."
        )
    return f"hydra.searchpath=[file://{folder}]"


def compose_config(config_name: str = "train", overrides=(), with_hydra: bool = False) -> DictConfig:
    """The config ``roar-<stage> overrides...`` would run with, without starting a run (what was registered
    in Python since roar.config was imported is among the options); ``with_hydra``: with its ``hydra``
    section (the launcher of ``hydra/launcher=``)."""
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    register_options()
    register_named(overrides)
    try:
        with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
            return compose(config_name=config_name, overrides=list(overrides), return_hydra_config=with_hydra)
    except (HydraException, OmegaConfBaseException) as err:  # an unknown option or key: Hydra's message, no traceback
        message = " ".join(line.strip() for line in str(err).strip().splitlines() if line.strip())
        message = message.split(" Config search path:")[0]  # Hydra's list of providers says nothing to act on
        raise RoarError(f"{message} (overrides: {' '.join(map(str, overrides))})") from None
