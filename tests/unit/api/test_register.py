"""The registration decorators: what they register is an estimator, model, dataset or fill everywhere roar
takes one (configs included), names that would break a path or an ensemble are refused, and a registered
estimator's maps are tied to its source."""

import pytest
import torch

import roar
from roar.config import compose_config, register_options
from roar.data.registry import DATASETS
from roar.errors import RoarError
from roar.estimators import available
from roar.estimators.gradients import BASES
from roar.estimators.registry import code_of
from roar.masking.fills import FILLS
from roar.models.registry import MODELS, build_model


@pytest.fixture
def registered():
    """Unregister what a test registered (the registries are the process's)."""
    made = []
    yield made
    for registry, name in made:
        registry.remove(name)
    register_options()  # and no longer config options


def test_an_estimator_comes_with_its_square_and_ensembles_and_is_a_config_option(registered):
    @roar.register_estimator("twice_grad", passes=2)
    def twice_grad(model, x, target, params):
        return 2 * roar.attribute(model, x, "grad", target)

    registered.append((BASES, "twice_grad"))
    assert {"twice_grad", "twice_grad_sq", "sg-twice_grad", "vargrad-twice_grad"} <= set(available())
    model = build_model("resnet8", 3, 1, 8).eval()
    x = torch.rand(2, 1, 8, 8)
    torch.testing.assert_close(roar.attribute(model, x, "twice_grad"), 2 * roar.attribute(model, x, "grad"))
    assert compose_config("train", ["estimator=sg-twice_grad"]).estimator == "sg-twice_grad"
    assert code_of("sg-twice_grad") == code_of("twice_grad") and len(code_of("twice_grad")) == 16
    assert code_of("grad") is None  # roar's own: their identity is unchanged by this


def test_editing_an_estimators_source_changes_its_maps_identity(registered):
    """Two functions that differ only in their body get different digests (the maps' identity records it, so
    an edited estimator's maps are recomputed); an explicit version replaces the digest."""

    def first(model, x, target, params):
        return x

    def second(model, x, target, params):
        return x * 2

    roar.register_estimator("first_est")(first)
    roar.register_estimator("second_est")(second)
    roar.register_estimator("pinned_est", version="2024.1")(second)
    registered.extend([(BASES, "first_est"), (BASES, "second_est"), (BASES, "pinned_est")])
    assert code_of("first_est") != code_of("second_est") and code_of("pinned_est") == "2024.1"


@pytest.mark.parametrize(
    "name, message",
    [("grad", "registered already"), ("my-method", "'-' joins an ensemble"), ("../x", "use letters, digits")],
)
def test_names_that_would_collide_or_break_a_path_are_refused(name, message):
    with pytest.raises(RoarError, match=message):
        roar.register_estimator(name)(lambda model, x, target, params: x)


def test_a_model_dataset_and_fill_are_config_options_with_their_defaults(registered):
    @roar.register_model("tiny_mlp", hidden=16)
    def tiny_mlp(num_classes, in_channels, image_size, hidden):
        return torch.nn.Sequential(
            torch.nn.Flatten(),
            torch.nn.Linear(in_channels * image_size**2, hidden),
            torch.nn.Linear(hidden, num_classes),
        )

    @roar.register_dataset("noise_digits", size=12)
    def noise_digits(cfg, split):
        raise AssertionError("not built by composing")

    @roar.register_fill("half_grey")
    def half_grey(images, removed, cfg, ctx):
        return torch.where(removed, torch.full_like(images, 0.5), images)

    registered.extend([(MODELS, "tiny_mlp"), (DATASETS, "noise_digits"), (FILLS, "half_grey")])
    cfg = compose_config("train", ["model=tiny_mlp", "model.params.hidden=8", "data=noise_digits", "fill=half_grey"])
    assert cfg.model == {"name": "tiny_mlp", "params": {"hidden": 8}}
    assert cfg.data.name == "noise_digits" and cfg.data.size == 12 and cfg.data.batch_size == 64
    assert cfg.fill.name == "half_grey"
    assert build_model("tiny_mlp", 3, 1, 4, hidden=8)(torch.rand(2, 1, 4, 4)).shape == (2, 3)
    images = torch.rand(4, 1, 8, 8)
    maps = torch.zeros_like(images)
    maps[..., :4] = 1
    out = roar.no_retrain(torch.nn.Flatten(), images, torch.zeros(4, dtype=torch.long), maps, fill="half_grey")
    assert out.steps[-1] == 1.0
