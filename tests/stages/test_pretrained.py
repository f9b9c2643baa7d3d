"""base_checkpoint=<path>: a model trained elsewhere becomes the base model without training: its test accuracy is
measured, its identity is the file's sha256, a whole pickled model loads only when it names trusted classes, and
the stages after it work on it."""

import pytest
import torch

from conftest import QUIET, TINY_BASE, base_name
from roar.attribution.run import attribute
from roar.classifier.load import load_classifier
from roar.config import compose_config
from roar.errors import RoarError
from roar.store.io import read_json
from roar.store.resolve import base_key, maps_key
from roar.store.shards import sha256_file
from roar.training.run import train

pytestmark = pytest.mark.slow


class Planted(torch.nn.Module):
    """A class outside torch, torchvision and roar: unpickling it would run this module's code."""

    def __reduce__(self):
        return (print, ("this must never run",))


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_base):
    """The tiny base model's network saved as a bare state_dict, and the metrics it was trained to."""
    root = tiny_base(tmp_path_factory.mktemp("outputs"))
    cfg = compose_config("train", [f"paths.output_root={root}", *QUIET, f"base={base_name(*TINY_BASE)}"])
    key = base_key(cfg)
    net = load_classifier(key.checkpoint).net
    torch.save(net.state_dict(), root / "weights.pt")
    torch.save(net, root / "whole.pt")
    return root, net, read_json(key.metrics)


def cfg(root, *overrides, config="train"):
    return compose_config(config, [f"paths.output_root={root}", *QUIET, "name=pre", *overrides])


def test_a_state_dict_becomes_the_base_model_without_training(trained):
    root, _, original = trained
    metrics = train(cfg(root, f"base_checkpoint={root / 'weights.pt'}"))
    assert metrics["test_acc"] == pytest.approx(original["test_acc"], abs=1e-6)  # the same weights, the same images
    assert metrics["epochs"] == 0 and metrics["train_acc"] is None
    assert metrics["pretrained"]["sha256"] == sha256_file(root / "weights.pt")
    key = base_key(cfg(root, f"base_checkpoint={root / 'weights.pt'}"))
    assert key.name != base_name(*TINY_BASE)  # its own identity: the file, not a training recipe
    # the stages after it find it by the same override, and another file is another base model
    attribute(cfg(root, f"base_checkpoint={root / 'weights.pt'}", "attribute.estimators=[grad]", config="attribute"))
    assert (maps_key(cfg(root, f"base_checkpoint={root / 'weights.pt'}", config="attribute"), "grad").folder).is_dir()
    other = root / "other.pt"
    torch.save({k: v + 1 if v.is_floating_point() else v for k, v in torch.load(root / "weights.pt").items()}, other)
    assert base_key(cfg(root, f"base_checkpoint={other}")).name != key.name


def test_a_whole_model_of_trusted_classes_loads_with_weights_only(trained):
    root, _, original = trained
    metrics = train(cfg(root, "name=whole", f"base_checkpoint={root / 'whole.pt'}"))
    assert metrics["test_acc"] == pytest.approx(original["test_acc"], abs=1e-6)


def test_a_pickle_naming_other_code_is_refused_and_never_run(trained, capsys):
    root, _, _ = trained
    torch.save({"state_dict": Planted()}, root / "planted.pt")
    with pytest.raises(RoarError, match="does not load"):
        train(cfg(root, "name=planted", f"base_checkpoint={root / 'planted.pt'}"))
    assert "this must never run" not in capsys.readouterr().out


def test_weights_of_another_architecture_are_refused_naming_it(trained):
    root, _, _ = trained
    with pytest.raises(RoarError, match="does not fit model=resnet20"):
        train(cfg(root, "name=arch", "model=resnet20", f"base_checkpoint={root / 'weights.pt'}"))
    with pytest.raises(RoarError, match="no such file"):
        train(cfg(root, "name=arch", f"base_checkpoint={root / 'absent.pt'}"))


def test_a_torchvision_architecture_by_name(tmp_path):
    """model=torchvision model.params.arch=resnet18: built without downloading weights; with a local weights file it
    is a base model whose recorded accuracy is the one its own forward pass gives."""
    from roar.data import build_dataset
    from roar.models import build_model

    shapes = ["data=shapes", "data.n_train=64", "data.n_test=96", "model=torchvision", "model.params.arch=resnet18"]
    torch.manual_seed(0)
    net = build_model("torchvision", num_classes=6, in_channels=3, image_size=32, arch="resnet18").eval()
    torch.save(net.state_dict(), tmp_path / "rn18.pt")
    metrics = train(cfg(tmp_path, *shapes, f"base_checkpoint={tmp_path / 'rn18.pt'}"))
    model = load_classifier(metrics["checkpoint"]).eval()
    test = build_dataset(cfg(tmp_path, *shapes).data, "test")
    x = torch.stack([test[i]["image"] for i in range(len(test))])
    y = torch.tensor([test[i]["label"] for i in range(len(test))])
    with torch.no_grad():
        assert metrics["test_acc"] == pytest.approx(float((model(x).argmax(1) == y).float().mean()), abs=1e-6)
        assert torch.equal(model.net.fc.weight, net.fc.weight)
    with pytest.raises(RoarError, match="not a torchvision classification model"):
        build_model("torchvision", num_classes=6, in_channels=3, image_size=32, arch="resnet_nope")
