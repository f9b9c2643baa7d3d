"""model=ensemble (overinterpretation paper 3.1): trained members' logits averaged, assembled by roar-train."""

import pytest
import torch

from conftest import QUIET, TINY_BASE
from roar.classifier.load import load_classifier
from roar.config import compose_config
from roar.data import build_dataset
from roar.errors import RoarError
from roar.store.resolve import base_key
from roar.training.run import train

pytestmark = pytest.mark.slow


def test_an_ensemble_averages_its_members_logits_and_is_reassembled_when_a_member_changes(tiny_base, tmp_path, capsys):
    root = tiny_base(tmp_path)
    common = [f"paths.output_root={root}", *QUIET]
    first = base_key(compose_config("train", [*common, *TINY_BASE])).folder
    second_cfg = compose_config("train", [*common, "trainer.max_epochs=1", "seed=1"])
    train(second_cfg)
    second = base_key(second_cfg).folder
    cfg = compose_config("train", [*common, "model=ensemble", f"model.params.members=[{first},{second}]"])
    metrics = train(cfg)
    assert metrics["epochs"] == 0 and set(metrics["members"]) == {
        str(first / "checkpoints" / "last.ckpt"),
        str(second / "checkpoints" / "last.ckpt"),
    }
    model = load_classifier(base_key(cfg).checkpoint)  # a base model like any other for the later stages
    members = [load_classifier(f / "checkpoints" / "last.ckpt") for f in (first, second)]
    x = torch.stack([build_dataset(cfg.data, "test")[i]["image"] for i in range(16)])
    with torch.no_grad():
        assert torch.allclose(model(x), (members[0](x) + members[1](x)) / 2, atol=1e-5)
    assert 0.1 < metrics["test_acc"] <= 1
    capsys.readouterr()
    assert train(cfg) == metrics and "skipping" in capsys.readouterr().out
    path = second / "checkpoints" / "last.ckpt"
    ckpt = torch.load(path, weights_only=True)
    name = next(k for k in ckpt["state_dict"] if k.endswith("weight"))
    ckpt["state_dict"][name] = ckpt["state_dict"][name] * 0.5  # the member changed (retrained, edited)
    torch.save(ckpt, path)
    again = train(cfg)  # the ensemble is assembled again from it
    assert "changed after" in capsys.readouterr().out and again["members"] != metrics["members"]


def test_ensemble_mistakes_are_named(tiny_base, tmp_path):
    root = tiny_base(tmp_path)
    common = [f"paths.output_root={root}", *QUIET]
    with pytest.raises(RoarError, match="model=ensemble needs its members"):
        train(compose_config("train", [*common, "model=ensemble"]))
    with pytest.raises(RoarError, match="does not exist"):
        train(
            compose_config("train", [*common, "model=ensemble", f"model.params.members=[{tmp_path / 'nothing.ckpt'}]"])
        )
    first = base_key(compose_config("train", [*common, *TINY_BASE])).folder
    with pytest.raises(RoarError, match="was trained with image_shape"):  # digits at another size
        train(
            compose_config(
                "train", [*common, "model=ensemble", f"model.params.members=[{first}]", "data.image_size=16"]
            )
        )
