"""The missingness paper's measurements: where predictions go as patches are removed (section 3), LIME's
consistency across baseline colours and the top-K ablation in another model's order (section 4)."""

import math

import numpy as np
import pytest
import torch

from roar.evaluate.consistency import COLOURS, jaccard, lime_consistency, random_jaccard, top_sets
from roar.evaluate.curves import prediction_shift


def test_unchanged_share_and_class_entropy_by_hand():
    c = 4
    clean = np.arange(8) % c  # a uniform histogram of 4 classes at step 0
    collapsed = np.zeros(8, dtype=int)  # every prediction class 0 at step 1
    half = np.where(np.arange(8) < 4, clean, 0)  # the first half unchanged, the rest class 0: 5 of 8
    preds = np.stack([clean, collapsed, half], 1)  # (N, S)
    shift = prediction_shift(np.stack([preds, preds], 1), c)
    for curve in ("mif", "lif"):
        s = shift[curve]
        assert s["unchanged"][0] == 1.0 and s["unchanged"][1] == pytest.approx(2 / 8) and s["unchanged"][2] == 0.625
        assert s["entropy"][0] == pytest.approx(math.log(4)) and s["entropy_norm"][0] == pytest.approx(1.0)
        assert s["entropy"][1] == 0.0 and s["histogram"][1] == [8, 0, 0, 0]


def test_random_jaccard_matches_its_formula_within_sampling_error():
    g = torch.Generator().manual_seed(0)
    p, k, n = 16, 5, 20000
    a = top_sets(torch.rand(n, p, generator=g), k)
    b = top_sets(torch.rand(n, p, generator=g), k)
    sampled = jaccard(a, b)
    assert sampled.mean().item() == pytest.approx(random_jaccard(p, k), abs=4 * sampled.std().item() / math.sqrt(n))
    assert random_jaccard(p, p) == 1.0 and jaccard(a, a).eq(1).all()


def test_a_token_dropping_vit_is_consistent_by_construction_and_a_painted_cnn_is_not():
    from conftest import untrained_classifier

    def model(name, params):
        return untrained_classifier(name, params, [3, 8, 8])

    x = torch.rand(4, 3, 8, 8)
    ids = [f"i{i}" for i in range(4)]
    params = {"lime_samples": 64, "lime_patch": 2, "seed": 0, "max_rows": 64}
    vit = lime_consistency(
        model("vit_tiny", {"dim": 16, "depth": 1, "heads": 2, "patch_size": 2}), x, ids, params, True
    )
    assert len(COLOURS) == 8 and vit["pairs"] == 28 and all(r["mean"] == 1.0 for r in vit["curve"])
    cnn = lime_consistency(model("resnet8", {"width": 4}), x, ids, params, False)
    assert cnn["patches"] == 16 and cnn["curve"][-1]["mean"] == 1.0  # k = P: every set is the whole image
    assert any(r["mean"] < 1.0 for r in cnn["curve"][:-1])
    assert all(r["ci_low"] <= r["mean"] <= r["ci_high"] for r in cnn["curve"][:-1] if not math.isnan(r["ci_low"]))


def targets_at_full_removal(root, mine, patches, source):
    """(clean logits, logits with every pixel filled, this model's predictions, the other model's maps'
    targets) on the 64 evaluated test images."""
    import torch

    from roar.classifier.load import load_base_model
    from roar.config import compose_config
    from roar.data import build_dataset
    from roar.data.stats import channel_stats
    from roar.evaluate.run import subset
    from roar.store.maps import iter_maps
    from roar.store.resolve import base_key

    cfg = compose_config("eval", [*mine, "eval.rankings=[grad]", *patches])
    test_set = build_dataset(cfg.data, "test")
    model = load_base_model(base_key(cfg), cfg.model, test_set.num_classes, list(test_set[0]["image"].shape))
    idx = subset(len(test_set), 64, 0)
    x = torch.stack([test_set[i]["image"] for i in idx])
    mean = channel_stats(build_dataset(cfg.data, "train"), cfg.data, cfg.paths.cache_dir)["mean"]
    with torch.no_grad():
        clean, empty = model(x), model(torch.tensor(mean).view(1, -1, 1, 1).expand_as(x).contiguous())
    maps_targets = [
        meta["target"] for _, _, meta in iter_maps(root / "default" / "attributions" / source / "grad", "test")
    ]
    return clean, empty, clean.argmax(1), torch.tensor(maps_targets)[idx]


@pytest.mark.slow
def test_another_models_order_consistency_and_the_report(tmp_path):
    """roar-eval in another base model's order (eval.order_from: the paper's reference order and the
    top-K ablation) writes its own file, names its source, and differs from the model's own order; the
    report's missingness section lists both."""
    from conftest import QUIET, TINY_BASE
    from roar.attribution.run import attribute
    from roar.config import compose_config
    from roar.errors import RoarError
    from roar.evaluate.run import evaluate
    from roar.report.run import build_report
    from roar.store.resolve import base_key
    from roar.training.run import train

    root = tmp_path
    common = [f"paths.output_root={root}", *QUIET, "data.image_size=16"]  # 16 patches of 4x4
    runs = {"mine": [*common, *TINY_BASE], "other": [*common, "trainer.max_epochs=1", "seed=1"]}
    for name, run in runs.items():
        train(compose_config("train", run))
        runs[name] = [*run, f"base={base_key(compose_config('train', run)).name}"]  # two bases: name them
        attribute(compose_config("attribute", [*runs[name], "attribute.estimators=[grad]", "attribute.splits=[test]"]))
    mine, other = runs["mine"], runs["other"]
    patches = ["granularity=patch", "patch_size=4", "eval.step=0.0625", "eval.max_images=64"]
    source = other[-1].removeprefix("base=")
    own = evaluate(compose_config("eval", [*mine, "eval.rankings=[grad]", *patches]))["grad.patch4"]
    theirs = evaluate(compose_config("eval", [*mine, "eval.rankings=[grad]", *patches, f"eval.order_from={source}"]))
    theirs = theirs["grad.patch4"]
    assert theirs["order_from"] == source and "order_from" not in own
    assert theirs["target"].startswith("this model's own predicted class") and own["target"].startswith("the maps'")
    # MIF at t = 1 (every patch filled: the same image whatever the order) scores this model's own
    # prediction, not the class the other model's maps explain
    clean, empty, mine_target, theirs_target = targets_at_full_removal(root, mine, patches, source)
    assert (mine_target != theirs_target).any()  # the two models disagree on some images

    def mif_at_one(target):
        return float((empty.gather(1, target[:, None]) / clean.gather(1, target[:, None])).mean())

    assert theirs["mif"]["mean"][-1] == pytest.approx(mif_at_one(mine_target), rel=1e-4)
    assert theirs["mif"]["mean"][-1] != pytest.approx(mif_at_one(theirs_target), rel=1e-4)
    assert theirs["predictions"]["mif"]["unchanged"] != own["predictions"]["mif"]["unchanged"]
    assert theirs["predictions"]["mif"]["unchanged"][0] == 1.0
    folder = next((root / "default" / "eval").glob("digits-resnet8-none-*/channel_mean"))
    assert (folder / f"grad.patch4.from-{source}.json").is_file() and (folder / "grad.patch4.json").is_file()
    with pytest.raises(RoarError, match="eval.order_from=nobody: no base model of that name"):
        evaluate(compose_config("eval", [*mine, "eval.rankings=[grad]", *patches, "eval.order_from=nobody"]))
    page = build_report(compose_config("report", [*mine, "eval.rankings=[grad]"])).read_text()
    assert "Missingness bias" in page and source in page
