import os
import shutil
import subprocess
from pathlib import Path

import pytest

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")

TESTS = Path(__file__).resolve().parent  # tests/: unit/ (per package), stages/ (one stage's work), e2e/ (commands)
REPO = TESTS.parent
pytest_plugins = ["stages.masksets"]  # the roar-mask tests' sets (the fixture root), shared by their modules

QUIET = ["logger=csv", "trainer.enable_progress_bar=false", "trainer.accelerator=cpu"]
TINY_BASE = ("trainer.max_epochs=3",)  # the shared base model's settings (tiny_base)


@pytest.fixture
def make_cfg(tmp_path):
    """Compose the train config as ``roar-train overrides...`` would, writing under tmp_path, tiny and quiet."""
    from roar.config import compose_config

    def make(*overrides, config_name="train"):
        return compose_config(config_name, [f"paths.output_root={tmp_path / 'outputs'}", *QUIET, *overrides])

    return make


@pytest.fixture(scope="session")
def tiny_base(tmp_path_factory):
    """The one shared tiny experiment: a ResNet-8 base model on digits (3 epochs), trained once per
    session. ``tiny_base(root, name)`` copies it into another output root / experiment name."""
    from roar.config import compose_config
    from roar.training.run import train

    origin = tmp_path_factory.mktemp("tiny")
    train(compose_config("train", [f"paths.output_root={origin}", *QUIET, *TINY_BASE]))

    def copy(root, name="default", parts=("base",)):
        for part in parts:
            src, dst = origin / "default" / part, root / name / part
            if src.exists() and not dst.exists():
                shutil.copytree(src, dst)
        return root

    copy.origin = origin
    return copy


# the tiny retrain experiment (conf/debug/tiny.yaml: two rankings, t = 0.5, two seeds, 2 epochs of 4 batches,
# CSV logs); the pipeline also gets attribute.params.samples
TINY = ["experiment=roar_digits", "debug=tiny"]


@pytest.fixture(scope="session")
def tiny_pipeline(tmp_path_factory):
    """The one tiny ROAR experiment, run once per session through roar-pipeline: (output root, the
    pipeline's overrides, the retrain runs' metrics). Base, maps, shards, 6 runs, eval, report."""
    from roar.stages.pipeline import run_pipeline

    root = tmp_path_factory.mktemp("pipeline")
    overrides = [f"paths.output_root={root}", *TINY, "attribute.params.samples=2"]
    return root, overrides, run_pipeline(overrides, progress=False)


def base_name(*overrides) -> str:
    """The folder name roar-train gives the base model of these overrides (data-model-augment-digest)."""
    from roar.config import compose_config
    from roar.store.resolve import base_key

    return base_key(compose_config("train", [*QUIET, *overrides])).name


def untrained_classifier(name: str, params: dict, image_shape, num_classes: int = 3):
    """A seeded, untrained Classifier in eval mode (inputs normalized with mean 0.5, std 0.25)."""
    import torch

    from roar.classifier.module import Classifier

    torch.manual_seed(0)
    return Classifier(
        model={"name": name, "params": params},
        optim={"lr": 0.1},
        augment={"name": "none"},
        num_classes=num_classes,
        image_shape=list(image_shape),
        mean=[0.5] * image_shape[0],
        std=[0.25] * image_shape[0],
        max_epochs=1,
    ).eval()


def chromium() -> str:
    """Debian's chromium, installed by `make test`'s set-up (scripts/setup-system.sh)."""
    path = shutil.which("chromium")
    assert path, "chromium is not installed: run `make system` (apt-get install chromium) or `make test`"
    return path


def dump_dom(page: Path) -> str:
    """The DOM of ``page`` after its scripts ran, in headless Chromium (the report's and the docs' render tests)."""
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run"]
    flags += ["--disable-background-networking", "--virtual-time-budget=10000", "--dump-dom"]
    return subprocess.run(
        [chromium(), *flags, page.as_uri()], capture_output=True, text=True, timeout=120, check=True
    ).stdout


def _child(entry, argv: list, env, cwd, out, err) -> None:
    """The forked child of ``roar_cli``: the command with its output in ``out``/``err``; exits, never returns
    (the parent's exit handlers, pytest's among them, must not run here)."""
    import logging
    import os
    import sys
    import traceback

    import torch

    code = 1
    try:
        torch.set_num_threads(1)
        os.dup2(out.fileno(), 1)
        os.dup2(err.fileno(), 2)
        sys.stdout, sys.stderr = open(1, "w", closefd=False), open(2, "w", closefd=False)
        if env is not None:
            os.environ.clear()
            os.environ.update(env)
        if cwd is not None:
            os.chdir(cwd)
        sys.argv = argv
        try:
            entry()
            code = 0
        except SystemExit as stop:  # sys.exit(2) from roar's one-paragraph errors, sys.exit("text") from argparse
            code = stop.code if isinstance(stop.code, int) else int(stop.code is not None)
            if isinstance(stop.code, str):
                print(stop.code, file=sys.stderr)
    except BaseException:
        traceback.print_exc()
    finally:
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def roar_cli(app: str, *args, env=None, cwd=None, timeout: float = 120) -> subprocess.CompletedProcess:
    """``app args...`` as its console command runs it (``roar.cli``'s entry point, the same argv), in a fork of
    this test process: no Python start that imports torch and Lightning again (10 s each on 2 cores). For
    commands that print, check or refuse; a command that trains runs as a real process instead (PyTorch's
    OpenMP threads do not survive a fork: the child gets one thread). Returns what subprocess.run would."""
    import os
    import tempfile
    import time

    import roar.cli
    import roar.stages.pipeline  # noqa: F401  (every stage: imported once here, not in each fork)
    import roar.stages.plan  # noqa: F401

    entry = getattr(roar.cli, {"roar-eval": "evaluate"}.get(app, app.removeprefix("roar-")))
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        pid = os.fork()
        if pid == 0:
            _child(entry, [app, *map(str, args)], env, cwd, out, err)
        deadline = time.time() + timeout
        while not (done := os.waitpid(pid, os.WNOHANG))[0]:
            if time.time() > deadline:
                os.kill(pid, 9)
                os.waitpid(pid, 0)
                raise subprocess.TimeoutExpired([app, *args], timeout)
            time.sleep(0.02)
        out.seek(0)
        err.seek(0)
        code = os.waitstatus_to_exitcode(done[1])
        return subprocess.CompletedProcess([app, *args], code, out.read().decode(), err.read().decode())
