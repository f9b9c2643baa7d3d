"""Every config option composes, and the composed config passes the pre-flight checks."""

import pytest

from roar.config import CONFIG_DIR, compose_config
from roar.errors import RoarError
from roar.train import validate

GROUPS = sorted(p.name for p in CONFIG_DIR.iterdir() if p.is_dir() and p.name != "hydra")


def options(group):
    return sorted(p.stem for p in (CONFIG_DIR / group).glob("*.yaml"))


@pytest.mark.parametrize("override", [f"{g}={o}" for g in GROUPS for o in options(g)])
def test_every_option_composes(override):
    cfg = compose_config("train", [override])
    group, option = override.split("=")
    if group in ("data", "model", "augment"):
        assert cfg[group].name == option
    validate(cfg)
    if cfg.data.name == "shards":
        assert cfg.stage == "retrain" and "/runs/" in cfg.run_dir
    else:
        assert cfg.stage == "base" and cfg.run_dir.endswith(f"/base/{cfg.model.name}-{cfg.augment.name}")


def test_retrain_runs_are_named_by_their_setting():
    cfg = compose_config("train", ["data=shards", "estimator=sg_sq-ig", "reduce=sum", "mode=keep", "fill=blur", "fraction=0.3", "seed=4"])
    assert cfg.run_dir == "outputs/default/runs/sg_sq-ig.sum/keep/blur/0.3/seed=4"
    assert cfg.data.estimator == "sg_sq-ig" and cfg.data.fill == "blur" and cfg.data.fraction == 0.3


@pytest.mark.parametrize("launcher", sorted(p.stem for p in (CONFIG_DIR / "hydra" / "launcher").glob("*.yaml")))
def test_every_launcher_composes(launcher):
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("train", [f"hydra/launcher={launcher}", "trainer=ddp"], return_hydra_config=True)
    if launcher == "local":
        assert cfg.hydra.launcher._target_.endswith("BasicLauncher")
    else:
        assert cfg.hydra.launcher._target_.endswith("SlurmLauncher") and cfg.hydra.launcher.max_num_timeout > 0
    if launcher == "slurm_ddp":
        assert cfg.hydra.launcher.tasks_per_node == cfg.trainer.devices == 2


def test_groups_hold_options():
    assert {"data", "model", "augment", "trainer", "logger", "recipe", "experiment"} <= set(GROUPS)
    assert all(options(g) for g in GROUPS)


def test_recipes_follow_the_papers():
    roar = compose_config("train", ["recipe=roar_resnet50"])
    assert (roar.model.name, roar.trainer.max_epochs, roar.optim.lr, list(roar.optim.milestones)) == ("resnet50", 90, 0.1, [30, 60])
    fpa = compose_config("train", ["experiment=fpa_cifar10"])
    assert fpa.model.params.small_stem and fpa.augment.name == "fpa" and fpa.trainer.max_epochs == 40
    over = compose_config("train", ["recipe=overinterp_cifar"])
    assert over.optim.nesterov and over.optim.gamma == 0.2 and list(over.optim.milestones) == [60, 120, 160]


@pytest.mark.parametrize(
    "override, message",
    [
        ("data.name=mnist", "Unknown data 'mnist'. Valid data names: cifar10, cifar100, digits"),
        ("model.name=resnet9", "Unknown model 'resnet9'"),
        ("augment.name=cutmix", "Unknown augment 'cutmix'"),
        ("augment=fpa augment.params.p=1.5", "augment.params.p=1.5 is outside [0, 1]"),
        ("augment=input_dropout augment.params.keep_prob=-0.1", "keep_prob=-0.1 is outside [0, 1]"),
        ("seed=-1", "seed=-1"),
    ],
)
def test_bad_names_and_values_fail_before_any_compute(override, message):
    with pytest.raises(RoarError, match=message.replace("[", r"\[").replace("]", r"\]")):
        validate(compose_config("train", override.split()))
