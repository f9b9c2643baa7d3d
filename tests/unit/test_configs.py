"""Every config option composes, the composed config passes the pre-flight checks, and every stage
has its own section on a shared root."""

import pytest
from hydra.core.config_store import ConfigStore

from roar.config import CONFIG_DIR, compose_config
from roar.errors import RoarError
from roar.estimators import available
from roar.masking.fills import FILLS
from roar.store.resolve import run_key
from roar.training.run import validate

FILE_GROUPS = sorted(p.name for p in CONFIG_DIR.iterdir() if p.is_dir() and p.name not in ("hydra", "sections"))
REGISTERED = {"fill": FILLS.names(), "estimator": available()}  # options made from the registries
GROUPS = sorted({*FILE_GROUPS, *REGISTERED})
VALUES_OF = {"fpa_imagenet": "fpa"}  # options that are another entry's values (FPA's ImageNet/Food-101 parameters)


def options(group):
    return REGISTERED.get(group) or sorted(p.stem for p in (CONFIG_DIR / group).glob("*.yaml"))


@pytest.mark.parametrize("override", [f"{g}={o}" for g in GROUPS for o in options(g)])
def test_every_option_composes(override):
    cfg = compose_config("train", [override])
    group, option = override.split("=")
    if group in ("data", "model", "augment", "fill"):
        assert cfg[group].name == VALUES_OF.get(option, option)
    if group == "estimator":  # a retrain run, on a base model named here (no base has been trained)
        cfg = compose_config(
            "train", [override, "fraction=0.5", f"base={cfg.data.name}-{cfg.model.name}-none-0123abcd"]
        )
    key = validate(cfg)
    if group == "estimator":
        assert key.stage == "retrain" and "/runs/" in str(key.folder) and cfg.estimator == option
    else:
        assert key.stage == "base" and key.folder.parent.name == "base"
        assert (
            key.folder.name == f"{cfg.data.name}-{cfg.model.name}-{cfg.augment.name}-{key.base.digest}"
            and len(key.base.digest) == 8
        )


def test_registered_fills_and_estimators_are_the_config_options():
    store = ConfigStore.instance().repo
    assert sorted(k[: -len(".yaml")] for k in store["fill"]) == FILLS.names()
    assert sorted(k[: -len(".yaml")] for k in store["estimator"]) == available()
    assert compose_config("train", ["fill=blur"]).fill == {
        "name": "blur",
        "kernel": 21,
        "sigma": 10.0,
        "reference_size": 224,
    }


def test_retrain_runs_are_named_by_their_setting_and_base_model():
    base = "base=digits-resnet8-none-0123abcd"
    cfg = compose_config(
        "train", [base, "estimator=sg_sq-ig", "reduce=sum", "mode=keep", "fill=blur", "fraction=0.3", "seed=4"]
    )
    key = run_key(cfg)
    assert str(key.folder).startswith("outputs/default/runs/digits-resnet8-none-0123abcd/sg_sq-ig.sum/keep/blur-")
    assert str(key.folder).endswith("/0.3/seed=4")
    assert key.group == f"default/retrain/digits-resnet8-none-0123abcd/sg_sq-ig.sum/keep/{key.shards.fill}/0.3"
    other = run_key(
        compose_config(
            "train",
            [
                base,
                "estimator=sg_sq-ig",
                "reduce=sum",
                "mode=keep",
                "fill=blur",
                "fill.sigma=2",
                "fraction=0.3",
                "seed=4",
            ],
        )
    )
    assert other.shards.fill != key.shards.fill  # the fill's folder is a digest of its whole config
    assert run_key(compose_config("train", [base, "estimator=grad", "fraction=0.5"])).shards.fill == "channel_mean"
    with pytest.raises(RoarError, match="base=shapes-resnet8-none-0123abcd is not a base model of data=digits"):
        run_key(compose_config("train", ["base=shapes-resnet8-none-0123abcd", "estimator=grad", "fraction=0.5"]))


def test_a_recipe_or_seed_change_names_another_base_model():
    """Everything that changes the trained weights is in the base model's identity: a sweep over any
    of them gives distinct runs (the folder name stays readable; a digest carries the rest)."""
    names = {
        run_key(compose_config("train", list(o))).folder.name
        for o in [
            (),
            ("optim.lr=0.2",),
            ("trainer.max_epochs=3",),
            ("model.params.width=8",),
            ("data.batch_size=32",),
            ("seed=1",),
            ("augment=fpa", "augment.params.p=0.2"),
            ("trainer.precision=bf16-mixed",),
        ]
    }
    assert len(names) == 8 and all(n.startswith("digits-resnet8-") for n in names)
    same = {
        run_key(compose_config("train", list(o))).folder.name
        for o in [
            (),
            ("trainer.accelerator=cpu",),
            ("trainer.enable_progress_bar=false",),
            ("logger=csv",),
            ("maps_seed=3",),
        ]
    }
    assert len(same) == 1  # where and how it runs, and the maps seed, do not change the weights


def test_each_stage_config_owns_its_section():
    sections = {"train": "optim", "attribute": "attribute", "mask": "mask", "eval": "eval"}
    for stage, section in sections.items():
        cfg = compose_config(stage)
        assert section in cfg and {"name", "data", "model", "augment", "grid", "paths", "fill"} <= set(cfg)
        assert [
            s for s in sections.values() if s in cfg and s != section and not (stage == "report" and s == "eval")
        ] == []
    assert "optim" not in compose_config("mask") and "mask" not in compose_config("train")
    assert (
        compose_config("mask", ["experiment=roar_imagenet"]).model.name == "resnet50"
    )  # experiments compose in every stage


def test_seed_roles_a_second_base_seed_keeps_the_rankings():
    """``seed`` trains; the maps' settings (noise, ties, donors follow ``maps_seed``) do not follow it."""
    from roar.attribution.run import settings_for

    a, b = compose_config("attribute", ["seed=0"]), compose_config("attribute", ["seed=1"])
    assert settings_for(a, "sg-grad", "sha", {}) == settings_for(b, "sg-grad", "sha", {})
    c = compose_config("attribute", ["maps_seed=1"])
    assert settings_for(c, "sg-grad", "sha", {})["maps_seed"] == 1 != settings_for(a, "sg-grad", "sha", {})["maps_seed"]


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
    assert cfg.hydra.sweeper._target_ == "hydra_plugins.roar_sweeper.grid_sweeper.GridSweeper"


def test_groups_hold_options():
    assert {"data", "model", "augment", "trainer", "logger", "recipe", "experiment", "fill", "estimator"} <= set(GROUPS)
    assert all(options(g) for g in GROUPS)


def test_recipes_follow_the_papers():
    roar = compose_config("train", ["experiment=roar_imagenet"])
    assert (roar.model.name, roar.trainer.max_epochs, roar.optim.lr, list(roar.optim.milestones)) == (
        "resnet50",
        90,
        0.1,
        [30, 60],
    )
    fpa = compose_config("train", ["experiment=fpa_cifar10"])
    assert (
        fpa.model.name == "resnet18"
        and fpa.model.params.small_stem
        and fpa.augment.name == "fpa"
        and fpa.trainer.max_epochs == 40
    )
    over = compose_config("train", ["recipe=overinterp_cifar"])
    assert over.optim.nesterov and over.optim.gamma == 0.2 and list(over.optim.milestones) == [60, 120, 160]


EXPERIMENTS = sorted(p.stem for p in (CONFIG_DIR / "experiment").glob("*.yaml"))


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_experiment_plans_without_its_data(tmp_path, experiment):
    """roar-plan's bill for every experiment, with no dataset at hand (a new experiment is covered by its file); an
    experiment whose maps cover only the test split (FPA, soundness) is billed no retraining and no shards."""
    from roar.plan.run import make_plan
    from roar.store.grid import retrain_jobs

    cfg = compose_config("pipeline", [f"experiment={experiment}", f"paths.output_root={tmp_path}"])
    plan = make_plan(cfg)
    retrains = "train" in cfg.attribute.splits
    assert plan["trainings"]["retrain"] == (len(retrain_jobs(cfg.grid)) if retrains else 0)
    assert (plan["disk_bytes"]["shards_npy"] > 0) == retrains
    assert len(plan["data"]["shape"]) == 3 and plan["data"]["num_train"] > 0
    if experiment.startswith(("fpa_", "masks_")):  # the base model evaluated without retraining
        assert not retrains


def test_the_paper_table_experiments_hold_the_papers_grids():
    """ROAR Fig. 4 (14 rankings, ROAR and KAR, 5 fractions, 5 seeds), its squared supplement, Birdsnap's 500
    species, overinterpretation Table 1 (augmented base, un-augmented retrains, 5% kept, BackSelect), the masking
    paper's Table 4 (ResNet-164, 1600 images, four TV strengths), ROAD's grid and FPA on ImageNet."""
    from roar.plan.run import make_plan

    fig4 = compose_config("pipeline", ["experiment=roar_imagenet_fig4"])
    families = {e.split("-")[0] for e in fig4.grid.estimators if "-" in e}
    assert families == {"sg", "sg_sq", "vargrad"} and len(fig4.grid.estimators) == 14
    assert list(fig4.grid.modes) == ["remove", "keep"] and fig4.attribute.params.samples == 15
    assert make_plan(fig4)["trainings"]["retrain"] == 14 * 2 * 5 * 5 + 5  # t = 0 once per seed
    assert list(compose_config("pipeline", ["experiment=roar_imagenet_sq"]).grid.estimators)[:3] == [
        "grad_sq",
        "ig_sq",
        "gb_sq",
    ]
    birds = compose_config("pipeline", ["experiment=roar_birdsnap"])
    assert birds.plan.num_classes == 500 and birds.data.test_dir == "test" and birds.grid == fig4.grid
    table1 = compose_config("train", ["experiment=overinterp_cifar10_table1"])
    assert table1.augment.name == "standard" and table1.retrain.augment.name == "none"
    assert table1.fill.name == "zero" and list(table1.grid.fractions) == [0.95] and list(table1.grid.modes) == ["keep"]
    table4 = compose_config("pipeline", ["experiment=masks_cifar10_table4"])
    assert table4.model.name == "preact_resnet164" and table4.eval.soundness.images == 1600
    assert [e for e in table4.grid.estimators] == ["mask-tv0", "mask-tv0.001", "mask-tv0.01", "mask-tv0.1"]
    road = compose_config("pipeline", ["experiment=road_cifar10"])
    assert road.fill.name == "linear" and list(road.grid.fractions) == [0.1, 0.3, 0.5, 0.6, 0.7, 0.8, 0.9]
    fpa = compose_config("train", ["experiment=fpa_imagenet"])
    assert fpa.augment.name == "fpa" and dict(fpa.augment.params)["p1_max"] == 0.3 and fpa.optim.milestones == [30, 60]
    assert list(fpa.fill.value) == [0.5, 0.5, 0.5]  # FPA: 0 on images scaled to [-1, 1]


def test_fpa_augmentations_follow_the_paper_and_the_roar_experiments_state_their_ranking_unit():
    import torch

    from roar.augment import BatchAugment

    food = compose_config("train", ["experiment=fpa_food101"]).augment
    assert food.name == "fpa" and food.flip and dict(food.params) == {"p": 0.5, "p1_max": 0.3, "p2": 0.01, "s_max": 10}
    assert dict(compose_config("train", ["augment=fpa"]).augment.params)["p1_max"] == 0.25  # CIFAR-10's
    flip = BatchAugment(compose_config("train", ["augment=flip"]).augment, mean=[0.5, 0.5, 0.5], seed=0)
    x = torch.rand(64, 3, 8, 8)
    out, _ = flip(x, train=True)
    same = (out == x).flatten(1).all(1)
    mirrored = (out == x.flip(-1)).flatten(1).all(1)
    assert bool((same | mirrored).all()) and 10 < int(mirrored.sum()) < 54  # flipped, nothing else
    for name in ("roar_imagenet", "roar_food101", "roar_cifar10"):
        assert compose_config("train", [f"experiment={name}"]).reduce == "abs_sum"


@pytest.mark.parametrize(
    "override, message",
    [
        ("data.name=mnist", "Unknown data 'mnist'. Valid data names: cifar10, cifar100, cifar10c, digits"),
        ("model.name=resnet9", "Unknown model 'resnet9'"),
        ("augment.name=cutmix", "Unknown augment 'cutmix'"),
        ("augment=fpa augment.params.p=1.5", "augment.params.p=1.5 is outside [0, 1]"),
        ("augment=input_dropout augment.params.keep_prob=-0.1", "keep_prob=-0.1 is outside [0, 1]"),
        ("seed=-1", "seed=-1"),
        ("seed=1.5", "seed=1.5"),
        ("estimator=grad base=digits-resnet8-none-0123abcd", "needs fraction="),
    ],
)
def test_bad_names_and_values_fail_before_any_compute(override, message):
    with pytest.raises(RoarError, match=message.replace("[", r"\[").replace("]", r"\]")):
        validate(compose_config("train", override.split()))


def test_the_attribute_params_yaml_lists_the_registered_defaults():
    """attribute.params documents every estimator parameter; its values are those the registry declares
    (the shared ones and each iterative estimator's own), so the two cannot drift apart."""
    from roar.estimators.registry import default_params
    from roar.utils.plain import to_plain

    registered = {k: v for k, v in default_params().items() if k != "seed"}  # the stage passes maps_seed
    assert to_plain(compose_config("attribute", []).attribute.params) == registered
