"""The command-line apps as a newcomer meets them: --help, --cfg, read-only verify, refusals, a wheel install.
Each command runs through its console entry point in a fork of the test process (conftest.roar_cli); the real
console scripts are started in tests/e2e/test_packaging.py (a fresh venv) and by every training test."""

import os
import subprocess
import sys

import pytest

from conftest import REPO, TINY_BASE, base_name
from conftest import roar_cli as run

APPS = ("roar-train", "roar-attribute", "roar-mask", "roar-eval", "roar-report", "roar-pipeline")


@pytest.mark.parametrize("app", APPS)
def test_every_app_says_what_it_does_and_its_main_keys(app):
    out = run(app, "--help")
    assert out.returncode == 0 and "Traceback" not in out.stderr
    assert out.stdout.startswith(f"{app}: ") and "Main keys:" in out.stdout and "experiment" in out.stdout


def test_cfg_job_shows_a_stages_own_section_resolved_and_the_pipeline_says_what_it_takes():
    mask = run("roar-mask", "--cfg", "job", "--resolve")
    assert mask.returncode == 0 and "mask:" in mask.stdout and "optim:" not in mask.stdout
    assert "fractions:\n  - 0.0\n" in mask.stdout  # t = 0 plus the grid's, resolved
    train = run("roar-train", "--cfg", "job", "--resolve", "experiment=roar_digits")
    assert train.returncode == 0 and "optim:" in train.stdout and "max_epochs: 10" in train.stdout
    pipeline = run("roar-pipeline", "--cfg", "job")
    assert (
        pipeline.returncode == 2
        and "roar-pipeline: error: --cfg is not an option" in pipeline.stderr
        and "Traceback" not in pipeline.stderr
    )


def test_verify_of_a_misspelt_experiment_names_those_there_are_and_writes_nothing(tmp_path):
    (tmp_path / "roar_digits" / "shards").mkdir(parents=True)
    out = run("roar-mask", "verify", f"paths.output_root={tmp_path}", "name=roar_digts", cwd=tmp_path)
    assert out.returncode == 2 and "No maps or shards to verify" in out.stderr and "roar_digits" in out.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["roar_digits"]  # no roar_digts/ with a log folder
    os.chmod(tmp_path, 0o555)  # read-only outputs: a verify still runs
    try:
        ok = run("roar-mask", "verify", f"paths.output_root={tmp_path}", "name=roar_digits", cwd=tmp_path)
    finally:
        os.chmod(tmp_path, 0o755)
    assert ok.returncode == 0 and "0 manifest(s)" in ok.stdout and "all verify" in ok.stdout


@pytest.mark.slow
def test_a_wheel_install_ships_the_configs_and_the_sweeper(tmp_path):
    import shutil

    root = tmp_path / "project"  # a copy: building in the checkout would leave build/ there
    here = REPO
    for tree in ("src", "conf"):  # the configs live at the top level; setup.py ships them as roar/conf
        shutil.copytree(here / tree, root / tree, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    for name in ("pyproject.toml", "setup.py", "README.md", "LICENSE"):
        shutil.copy(here / name, root / name)
    build = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path / "dist"),
            str(root),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert build.returncode == 0, build.stderr[-2000:]
    (wheel,) = (tmp_path / "dist").glob("roar-*.whl")
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(wheel)],
        check=True,
        timeout=300,
    )
    assert (target / "roar" / "conf" / "train.yaml").is_file() and (
        target / "roar" / "conf" / "sections" / "mask.yaml"
    ).is_file()
    assert (target / "hydra_plugins" / "roar_sweeper" / "grid_sweeper.py").is_file()
    assert (target / "roar" / "py.typed").is_file()  # type checkers read the API's hints (PEP 561)
    probe = (
        "import roar.config, sys; print(roar.config.CONFIG_DIR); sys.argv = ['roar-train', '--cfg', 'job']; "
        "from roar.stages.train import main; main()"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(target)},
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert (
        out.stdout.startswith(str(target / "roar" / "conf")) and "optim:" in out.stdout
    )  # the installed copy, not this checkout


@pytest.mark.parametrize(
    "args, message",
    [
        (("roar-eval", "eval.step=0"), "roar-eval: error: eval.step=0: give a step that divides 1"),
        (("roar-train", "trainer.accelerator=gpu"), "roar-train: error: trainer.accelerator=gpu but no GPU is visible"),
        (("roar-mask", "experiment=roar_digits", "grid.fractions=0.7"), "grid.fractions=0.7 must be a list"),
        (("roar-eval", "experiment=roar_digits", "grid.fractions=0.7"), "grid.fractions=0.7 must be a list"),
        (("roar-train", "+trainer.foo=1"), "roar-train: error: trainer.foo is not a Lightning Trainer argument"),
        (("roar-train", "~logger"), "roar-train: error: No logger is set (~logger removes it)"),
        (("roar-pipeline", "experiment=nonexistent"), "roar-pipeline: error: In 'pipeline': Could not find"),
        (("roar-pipeline", "grid.fractions=0.7"), "roar-pipeline: error: grid.fractions=0.7 must be a list"),
    ],
)
def test_bad_values_that_gave_tracebacks_are_one_paragraph_and_exit_2(tmp_path, args, message):
    if "gpu" in args[1]:
        import torch

        if torch.cuda.is_available():
            pytest.skip("a GPU is visible here: trainer.accelerator=gpu is a valid request")
    logger = [] if "~logger" in args else ["logger=csv"]
    out = run(*args, *logger, env={**os.environ, "ROAR_OUTPUTS": str(tmp_path)})
    assert out.returncode == 2 and message in out.stderr and "Traceback" not in out.stderr
    assert not any(tmp_path.rglob("*.ckpt"))


@pytest.mark.parametrize("name", ["../escape", "", "/tmp/elsewhere", ".hidden", "a/b"])
def test_an_experiment_name_is_one_safe_folder_name_checked_before_anything_is_written(tmp_path, name):
    out_root = tmp_path / "outputs"
    out = run("roar-train", f"name={name}", "logger=csv", env={**os.environ, "ROAR_OUTPUTS": str(out_root)})
    assert out.returncode == 2 and "an experiment name is one folder name" in out.stderr
    assert "Traceback" not in out.stderr and not out_root.exists() and sorted(tmp_path.iterdir()) == []
    from roar.store.names import check_name

    assert check_name("roar_digits-2.b") == "roar_digits-2.b" and check_name(2024) == "2024"


def test_a_refused_run_leaves_no_run_folder_behind(tmp_path):
    out = run("roar-train", "data.batch_size=0", "logger=csv", env={**os.environ, "ROAR_OUTPUTS": str(tmp_path)})
    assert out.returncode == 2 and "data.batch_size=0 must be a whole number" in out.stderr
    assert not (tmp_path / "default" / "base").exists()  # Hydra's own files went to logs/runs/
    assert list((tmp_path / "default" / "logs" / "runs" / "base").glob("*/.hydra/config.yaml"))


def test_a_refused_mask_keeps_hydras_files_in_its_logs_folder(tmp_path):
    """Without a base model the run's base key has no name: Hydra's files go to logs/mask/invalid/, not to a copy
    of the whole output path nested inside logs/mask/."""
    out = run("roar-mask", "logger=csv", env={**os.environ, "ROAR_OUTPUTS": str(tmp_path)})
    assert out.returncode == 2 and "No finished base model" in out.stderr
    logs = tmp_path / "default" / "logs"
    assert [p.relative_to(logs).as_posix() for p in logs.rglob("config.yaml")] == [
        "mask/invalid/0-of-1/.hydra/config.yaml"
    ]


def test_an_unknown_reduction_is_refused_before_any_set_folder_is_made(tmp_path, tiny_base):
    root = tiny_base(tmp_path)
    out = run("roar-mask", f"paths.output_root={root}", f"base={base_name(*TINY_BASE)}", "reduce=max", "logger=csv")
    assert out.returncode == 2 and "reduce='max'; valid reductions" in out.stderr and "Traceback" not in out.stderr
    assert not (root / "default" / "shards").exists()


def test_an_experiment_of_ones_own_is_found_with_config_dir(tmp_path):
    """examples/configs/experiment/my_digits.yaml, outside the package: roar-train (Hydra's own --config-dir) and
    roar-pipeline (which turns it into the same search path) compose it; a missing folder is one error line."""
    from roar.config import compose_config
    from roar.stages.pipeline import with_config_dir

    folder = REPO / "examples" / "configs"
    train = run("roar-train", "--config-dir", str(folder), "--cfg", "job", "experiment=my_digits")
    assert train.returncode == 0 and "name: my_digits" in train.stdout and "captum-Saliency" in train.stdout
    cfg = compose_config("pipeline", with_config_dir([f"--config-dir={folder}", "experiment=my_digits"]))
    assert cfg.name == "my_digits" and list(cfg.grid.estimators) == ["grad", "captum-Saliency", "random"]
    assert cfg.trainer.max_epochs == 10  # the rest from roar_digits, the experiment it starts from
    missing = run("roar-pipeline", "--config-dir", str(tmp_path / "absent"), "experiment=my_digits")
    assert missing.returncode == 2 and "no such folder" in missing.stderr and "Traceback" not in missing.stderr
