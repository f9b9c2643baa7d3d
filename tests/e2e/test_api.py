"""The Python API against the CLI's own results: roar.no_retrain on roar-eval's model, maps and fill gives
roar-eval's numbers; roar.run gives the pipeline's report; roar.attribute gives roar-attribute's maps."""

import json

import numpy as np
import pytest
import torch

import roar

pytestmark = pytest.mark.slow


def eval_inputs(root, overrides, estimator="grad"):
    """roar-eval's model, test images, labels, stored maps, targets, ids, channel mean and config."""
    from roar.classifier.load import load_base_model
    from roar.config import compose_config
    from roar.data import build_dataset
    from roar.data.stats import channel_stats
    from roar.store.maps import iter_maps
    from roar.store.resolve import base_key, maps_key

    cfg = compose_config("pipeline", overrides)
    test_set, train_set = build_dataset(cfg.data, "test"), build_dataset(cfg.data, "train")
    model = load_base_model(base_key(cfg), cfg.model, test_set.num_classes, list(test_set[0]["image"].shape))
    entries = list(iter_maps(maps_key(cfg, estimator).folder, "test"))
    return {
        "cfg": cfg,
        "model": model,
        "images": torch.stack([test_set[i]["image"] for i in range(len(test_set))]),
        "labels": torch.tensor([int(test_set[i]["label"]) for i in range(len(test_set))]),
        "maps": torch.from_numpy(np.stack([m for _, m, _ in entries])),
        "target": torch.tensor([meta["target"] for _, _, meta in entries]),
        "ids": list(test_set.ids),
        "mean": channel_stats(train_set, cfg.data, cfg.paths.cache_dir)["mean"],
    }


def test_no_retrain_equals_roar_eval(tiny_pipeline):
    """The same model, maps (as stored), fill, ids and seed: roar.no_retrain's curves, fidelity and deletion
    accuracies equal the ones roar-eval wrote."""
    from roar.store.resolve import eval_key

    root, overrides, _ = tiny_pipeline
    x = eval_inputs(root, overrides)
    cfg = x["cfg"]
    result = roar.no_retrain(
        x["model"],
        x["images"],
        x["labels"],
        x["maps"],
        fill="channel_mean",
        fractions=[t for t in cfg.eval.fractions if t > 0],
        modes=list(cfg.eval.modes),
        step=float(cfg.eval.step),
        target=x["target"],
        ids=x["ids"],
        seed=int(cfg.maps_seed),
        mean=x["mean"],
        batch_size=int(cfg.eval.batch_size),
    )
    written = json.loads(eval_key(cfg, "grad").file.read_text())
    assert result.steps == written["fractions"]
    np.testing.assert_allclose(result.mif, written["mif"]["mean"], rtol=1e-6)
    np.testing.assert_allclose(result.lif, written["lif"]["mean"], rtol=1e-6)
    assert result.fidelity == pytest.approx(written["fidelity"]["mean"], rel=1e-6)
    for mode, d in written["deletion"].items():
        assert result.fractions == d["fractions"]
        assert result.accuracy[mode] == pytest.approx(d["accuracy"])
    assert result.predictions["mif"]["unchanged"] == pytest.approx(written["predictions"]["mif"]["unchanged"])
    # the curve is a measurement, not a constant: removing the top-ranked half moves the logit
    assert result.mif[len(result.mif) // 2] != pytest.approx(1.0)


def test_attribute_equals_roar_attribute(tiny_pipeline):
    """roar.attribute's grad maps equal the maps roar-attribute stored, up to their float16 storage (a
    relative 2^-11 of each map's largest magnitude)."""
    root, overrides, _ = tiny_pipeline
    x = eval_inputs(root, overrides)
    maps = roar.attribute(x["model"], x["images"][:40], "grad", x["target"][:40])
    stored = x["maps"][:40].float()
    scale = maps.flatten(1).abs().amax(1).view(-1, 1, 1, 1)
    assert torch.all((maps - stored).abs() <= scale * 2**-10)
    assert not torch.allclose(maps, roar.attribute(x["model"], x["images"][:40], "grad", (x["target"][:40] + 1) % 10))


def test_run_returns_the_report(tiny_pipeline):
    """roar.run on a finished experiment resumes it (nothing retrained) and returns the report's tables."""
    root, overrides, runs = tiny_pipeline
    out = roar.run("roar_digits", overrides=[o for o in overrides if not o.startswith("experiment=")])
    assert out.report.is_file() and out.folder == out.report.parent.parent
    assert {v["estimator"] for v in out.verdicts} == {"grad"}  # random is the reference, not a verdict row
    assert {(s["estimator"], s["fraction"]) for s in out.summary} >= {("grad", "0.5"), ("random", "0.5")}
    assert [r["test_acc"] for r in out.runs] == [r["test_acc"] for r in runs]  # the finished runs, read back
