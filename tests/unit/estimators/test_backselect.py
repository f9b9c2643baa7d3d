"""Backward selection (overinterpretation paper): exact BackSelect, batched gradient BackSelect, SIS."""

import numpy as np
import pytest
import torch
import torch.nn as nn

from roar.errors import RoarError
from roar.estimators import EstimatorSuite
from roar.estimators.backselect import exact_backselect, gradient_backselect, sis_mask
from roar.evaluate.sis import SisStats
from roar.evaluate.stats import welch_diff_ci
from roar.masking.fills import FILLS

IDS = [f"img-{i}" for i in range(32)]


class Norm(nn.Module):
    """logits (||x||_2, 0): the predicted class 0's confidence sigmoid(||x||) grows with the norm."""

    def forward(self, x):
        n = x.flatten(1).norm(dim=1)
        return torch.stack([n, torch.zeros_like(n)], 1)


class Logistic(nn.Module):
    """logits (w . x, 0) with w > 0 fixed, so class 0 is predicted on positive images."""

    def __init__(self, pixels):
        super().__init__()
        self.w = nn.Parameter(torch.linspace(0.5, 1.5, pixels), requires_grad=False)

    def forward(self, x):
        s = x.flatten(1) @ self.w
        return torch.stack([s, torch.zeros_like(s)], 1)


def test_exact_backselect_on_the_norm_removes_coordinates_by_increasing_magnitude():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 1, 3, 3, generator=g)
    steps, trace = exact_backselect(Norm(), x, torch.zeros_like(x), IDS[:3], {})
    for j in range(3):
        by_magnitude = torch.argsort(x[j].abs().flatten())
        assert torch.equal(torch.argsort(steps[j, 0].flatten()), by_magnitude)
    assert trace.shape == (3, 10) and torch.all(trace[:, :-1] >= trace[:, 1:] - 1e-6)  # the norm only shrinks


def test_gradient_backselect_with_k1_equals_exact_backselect_on_a_logistic_model():
    g = torch.Generator().manual_seed(1)
    x = torch.rand(4, 1, 4, 4, generator=g) + 0.1
    model = Logistic(16)
    exact, _ = exact_backselect(model, x, torch.zeros_like(x), IDS[:4], {})
    batched, trace = gradient_backselect(model, x, torch.zeros_like(x), IDS[:4], {"sis_k": 1})
    assert torch.equal(exact, batched)  # both remove the smallest w_i x_i first
    assert trace.shape == (4, 17)


def test_every_sis_re_evaluates_above_tau_and_bs_subsets_are_minimal_at_their_last_step():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 3)).eval()
    x = torch.rand(16, 1, 4, 4)
    fill = torch.full_like(x, 0.5)
    with torch.no_grad():
        c = model(x).argmax(1)
        clean = torch.softmax(model(x), 1).gather(1, c[:, None])[:, 0]
    tau = float(clean.median())
    for method in (gradient_backselect, exact_backselect):
        steps, trace = method(model, x, fill, IDS[:16], {"sis_k": 2})
        keep, has = sis_mask(steps[:, 0], trace, tau)
        assert torch.equal(has, clean >= tau) and has.any()
        m = (~keep).float()[:, None]
        with torch.no_grad():
            conf = torch.softmax(model((1 - m) * x + m * fill), 1).gather(1, c[:, None])[:, 0]
        assert torch.all(conf[has] >= tau - 1e-6)
        if method is exact_backselect:  # without its earliest-removed pixel the subset falls below tau
            for j in torch.nonzero(has & (keep.flatten(1).sum(1) > 0))[:, 0].tolist():
                first = torch.where(keep[j], steps[j, 0], steps.max() + 1).argmin()
                fewer = keep[j].flatten().clone()
                fewer[first] = False
                mm = (~fewer).float().view(1, 1, 4, 4)
                with torch.no_grad():
                    drop = torch.softmax(model((1 - mm) * x[j : j + 1] + mm * fill[:1]), 1)[0, c[j]]
                assert drop < tau


def test_an_images_order_is_the_same_alone_and_in_a_batch_of_32():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 64, 5)).eval()
    x = torch.rand(32, 3, 8, 8)
    fill = torch.full_like(x, 0.5)
    batch, trace = gradient_backselect(model, x, fill, IDS, {"sis_k": 4})
    alone, trace1 = gradient_backselect(model, x[5:6], fill[5:6], IDS[5:6], {"sis_k": 4})
    assert torch.equal(batch[5], alone[0]) and torch.allclose(trace[5], trace1[0], atol=1e-6)


def test_bad_inputs_are_refused_with_what_to_do():
    with pytest.raises(RoarError, match=r"tau=1.5 must lie in \(0, 1\)"):
        sis_mask(torch.zeros(1, 2, 2), torch.ones(1, 3), 1.5)
    x = torch.rand(1, 1, 4, 4)
    with pytest.raises(RoarError, match="sis_k=0: gbs masks k >= 1 pixels"):
        gradient_backselect(Logistic(16), x, torch.zeros_like(x), IDS[:1], {"sis_k": 0})
    big = torch.rand(1, 3, 32, 32)
    with pytest.raises(RoarError, match=r"takes 524,800 forward passes per image.*Use gbs"):
        exact_backselect(Norm(), big, torch.zeros_like(big), IDS[:1], {})


def test_welch_interval_of_a_difference_in_means_matches_scipy():
    from scipy import stats as sps

    g = np.random.default_rng(0)
    a, b = g.normal(3, 1, 40), g.normal(2, 2, 15)
    ours = welch_diff_ci(a, b)
    ci = sps.ttest_ind(a, b, equal_var=False).confidence_interval(0.95)
    assert ours["diff"] == pytest.approx(a.mean() - b.mean())
    assert (ours["ci_low"], ours["ci_high"]) == pytest.approx((ci.low, ci.high))
    assert np.isnan(welch_diff_ci(a, b[:1])["ci_low"])


def test_sis_statistics_agree_with_the_lookup_and_re_evaluate_above_tau():
    """SisStats on the exact BackSelect of a linear model: sizes are the lookup's, every SIS re-evaluates
    to tau with the fill painted around it, a region covering the image holds every SIS pixel, and the
    correct-vs-wrong split follows the labels given."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 3)).eval()
    x = torch.rand(16, 1, 4, 4) * 3
    fill = torch.full_like(x, 0.5)
    steps, trace = exact_backselect(model, x, fill, IDS[:16], {})
    with torch.no_grad():
        probs = torch.softmax(model(x), 1)
    labels = probs.argmax(1).clone()
    labels[:5] = (labels[:5] + 1) % 3  # five misclassified images
    stats = SisStats([0.6, 0.8], 0.8, 0.25)
    every = torch.ones(16, 4, 4, dtype=torch.bool)
    top = torch.zeros(16, 4, 4, dtype=torch.bool)
    top[:, 0] = True  # the first row: a quarter of the image

    def refill(rows, removed):  # the constant fill 0.5 painted around the SIS
        with torch.no_grad():
            return torch.softmax(model(torch.where(removed, fill[rows], x[rows])), 1)

    stats.add(steps[:, 0], trace, labels, probs, probs, {"object_mask": every, "shortcut_mask": top}, refill)
    r = stats.result()
    for row, tau in zip(r["size"], (0.6, 0.8)):
        keep, has = sis_mask(steps[:, 0], trace, tau)
        assert row["n"] == int(has.sum()) > 0 and keep.flatten(1).any(1).sum() > 3
        assert row["mean"] == pytest.approx(keep.flatten(1).sum(1)[has].float().mean().item())
        assert row["percent"] == pytest.approx(100 * row["mean"] / 16)
    versus = r["correct_vs_wrong"][0]
    assert versus["n_correct"] + versus["n_wrong"] == r["size"][0]["n"] and versus["n_wrong"] <= 5
    assert r["verified"] == 1.0 and r["confidence"]["drop"] == 0  # the "subset" given here is the full image
    assert r["regions"]["object"]["sis_share"] == 1 and r["regions"]["object"]["area_share"] == 1
    assert r["regions"]["shortcut"]["area_share"] == pytest.approx(0.25)
    keep, has = sis_mask(steps[:, 0], trace, 0.8)
    on = has & keep.flatten(1).any(1)
    row = keep[on][:, 0].float()  # the SIS pixels in the first row
    assert r["regions"]["shortcut"]["held"] == pytest.approx((row.sum(1) / 4).mean().item())
    assert r["regions"]["shortcut"]["sis_share"] == pytest.approx(
        (row.sum(1) / keep[on].flatten(1).sum(1)).mean().item()
    )
    assert np.asarray(r["heatmap"]).shape == (4, 4) and 0 < np.asarray(r["heatmap"]).max() <= 1
    with pytest.raises(RoarError, match="traces do not start at this model's confidence"):
        stats.add(steps[:, 0], trace * 0.5, labels, probs, probs)


def test_the_suite_runs_them_with_the_fill_and_keeps_their_traces():
    x = torch.rand(2, 1, 4, 4) + 0.1
    suite = EstimatorSuite(["gbs", "grad"], sis_k=4)
    with pytest.raises(RoarError, match="gbs masks with the configured fill"):
        suite(Logistic(16), x, torch.zeros(2, dtype=torch.long), IDS[:2])
    maps = suite(Logistic(16), x, torch.zeros(2, dtype=torch.long), IDS[:2], fill=torch.zeros_like(x))
    assert maps["gbs"].shape == x.shape and suite.traces["gbs"].shape == (2, 5)
    assert suite.passes_for(16) == 1 + 5  # grad: one pass; gbs: 16 / 4 iterations + the all-filled image


def test_gbs_maps_through_roar_attribute_carry_traces_and_rank_for_roar_mask(tiny_base, tmp_path):
    """gbs on the digits test split (64 pixels, k = 1: 65 passes an image), written like every map, its
    trace in each sample's json; roar-mask then keeps the top 25% of its ranking."""
    import json

    from conftest import QUIET, TINY_BASE
    from roar.attribution.run import attribute
    from roar.config import compose_config
    from roar.masking.run import write_masks
    from roar.store.shards import read_shard

    root = tiny_base(tmp_path)
    common = [f"paths.output_root={root}", *QUIET, *TINY_BASE, "grid.estimators=[gbs]"]
    manifests = attribute(compose_config("attribute", [*common, "attribute.splits=[test]"]))
    assert manifests["gbs"] is not None
    folder = next((root / "default" / "attributions").glob("*/gbs"))
    sample = next(read_shard(next(folder.glob("test-*.tar"))))
    meta = json.loads(sample["json"])
    assert len(meta["trace"]) == 65 and all(0 <= v <= 1 for v in meta["trace"])
    settings = json.loads((folder / "manifest.json").read_text())
    assert settings["reference"]["fill"]["name"] == "channel_mean"  # the fill gbs masked with is its identity
    mask_cfg = compose_config("mask", [*common, "mask.modes=[keep]", "mask.fractions=[0.75]", "mask.splits=[test]"])
    (shard_set,) = write_masks(mask_cfg)
    masked = [json.loads(s["json"]) for s in read_shard(next(shard_set.glob("test-*.tar")))]
    assert masked and all(m["estimator"] == "gbs" and m["mode"] == "keep" for m in masked)
    # roar-eval reads the SIS off the traces; the report shows them
    from roar.evaluate.run import evaluate
    from roar.report.run import build_report

    eval_cfg = compose_config("eval", [*common, "eval.rankings=[gbs]", "eval.sis.subset=0.25", "eval.max_images=120"])
    sis = evaluate(eval_cfg)["gbs"]["sis"]
    assert sis["images"] == 120 and sis["pixels"] == 64 and sis["verified"] == 1.0
    assert [r["tau"] for r in sis["size"]] == [0.5, 0.7, 0.9, 0.95, 0.99] and sis["size"][0]["n"] > 60
    assert 0 < sis["size"][2]["mean"] <= 64 and 0 <= sis["confidence"]["subset"] <= 1
    assert sis["regions"] == {}  # digits have no ground truth
    traces = np.asarray(sis["traces"])  # Fig. S10: the first 32 images' confidence before and after every step
    assert traces.shape[0] == 32 and traces.shape[1] > 2 and ((traces >= 0) & (traces <= 1)).all()
    page = build_report(compose_config("report", common)).read_text()
    assert "Sufficient input subsets" in page and "where the sufficient input subsets lie" in page
    assert "Fig. S10" in page and (root / "default" / "report" / "sis-traces.png").is_file()
    assert (root / "default" / "report" / "sis.csv").read_text().count("gbs") == 5
    with pytest.raises(
        RoarError, match=r"gbs selected its pixels with fill=\{'name': 'channel_mean'\}; roar-eval fill="
    ):
        evaluate(compose_config("eval", [*common, "eval.rankings=[gbs]", "fill=zero"]))  # SIS re-checked alike
    with pytest.raises(RoarError, match=r"eval.sis.subset=1.5"):
        compose_and_check = compose_config("eval", [*common, "eval.rankings=[gbs]", "eval.sis.subset=1.5"])
        evaluate(compose_and_check)
    # SIS transfer (overinterpretation 4.1, Table S2 without retraining): another architecture scored on this
    # model's subsets, kept and removed, with no SIS statistics of its own (the traces are the first model's)
    from roar.store.resolve import base_key
    from roar.training.run import train

    first = base_key(compose_config("eval", common)).name
    other = [*common, "model=resnet20", "trainer.max_epochs=1"]
    train(compose_config("train", other))
    transfer = ["eval.rankings=[gbs]", f"eval.order_from={first}", "eval.modes=[keep]", "eval.fractions=[0,0.75]"]
    moved = evaluate(compose_config("eval", [*other, *transfer]))["gbs"]
    assert "sis" not in moved and moved["order_from"] == first and moved["base"].startswith("digits-resnet20-")
    kept = moved["deletion"]["keep"]  # ResNet-20's accuracy on ResNet-8's top-25% subsets
    assert kept["fractions"] == [0.0, 0.75] and 0 <= kept["accuracy"][1] <= 1


@pytest.mark.slow
def test_sis_find_the_planted_shortcut_on_shapes(tmp_path):
    """shapes with its class marker in every image (shortcut_prob=1): the SIS hold the marker's pixels far
    above their share of the image, and more so than the object's. A small run (3,000 training and 96 test
    images, 8 epochs, k = 16, tau 0.7), whose training follows the CPU's floating-point kernels: it measured
    10.1x (marker) and 3.1x (object) on an Intel Xeon, 4.97x and 3.79x on an AMD EPYC (test accuracy 0.906 on
    both), so the test holds what both show (marker above 3x and above the object), not the margin one gave.
    The full run (README) measured 66x for the marker, 4.2x for the object. The issue's guess, half of all SIS pixels on
    the marker, is not what happens: the model's SIS combine marker and object pixels."""
    from conftest import QUIET
    from roar.attribution.run import attribute
    from roar.config import compose_config
    from roar.evaluate.run import evaluate
    from roar.training.run import train

    common = [
        f"paths.output_root={tmp_path}",
        *QUIET,
        "experiment=overinterp_shortcut_shapes",
        "data.n_train=3000",
        "data.n_test=96",
        "trainer.max_epochs=8",
    ]
    metrics = train(compose_config("train", common))
    attribute(compose_config("attribute", [*common, "attribute.params.sis_k=16"]))
    sis = evaluate(compose_config("eval", [*common, "eval.sis.tau_map=0.7"]))["gbs"]["sis"]
    marker = sis["regions"]["shortcut"]
    assert metrics["test_acc"] > 0.85
    assert marker["n"] >= 48 and sis["verified"] == 1.0
    enriched = {r: sis["regions"][r]["sis_share"] / sis["regions"][r]["area_share"] for r in ("shortcut", "object")}
    assert enriched["shortcut"] > 3 and enriched["shortcut"] > enriched["object"]
    assert marker["held"] > 0.25  # measured 0.43
    from roar.report.run import build_report

    page = build_report(compose_config("report", common)).read_text()
    assert page.count("SIS pixels on shortcut") == 1 and page.count("SIS pixels on object") == 1
    assert "SIS pixels on with" not in page


def test_backselect_steps_are_stored_exactly_at_4096_steps(tmp_path):
    """k = 1 on a 64 x 64 image: 4,096 removal steps. As float16 fractions of the last step a quarter
    of them collided; stored as integers every step reads back exactly, full or reduced."""
    from roar.attribution.run import storable
    from roar.store.maps import iter_map_shard, map_sample
    from roar.store.shards import ShardWriter

    torch.manual_seed(0)
    steps = torch.randperm(4096).view(1, 1, 64, 64).float().expand(2, 3, 64, 64)
    for reduced, shape in ((None, (3, 64, 64)), ("abs_sum", (1, 64, 64))):
        unit, scale = storable("gbs", steps, reduced)
        tar = tmp_path / f"test-{reduced}.tar"
        with ShardWriter(tar) as writer:
            for k in range(2):
                writer.write(map_sample(f"s{k}", unit[k], 0, 0, scale[k]))
        read = [m for _, m, _ in iter_map_shard(tar)]
        assert all(m.shape == shape and np.array_equal(m, steps[0, : shape[0]].numpy()) for m in read)
    old = (steps[0, 0] / 4095).half().float() * 4095  # what the float16 store gave back
    assert len(torch.unique(old.round())) < 3500  # collisions: the reason for integers
    scores, _ = storable("grad", torch.randn(2, 3, 8, 8), None)
    assert scores.dtype == np.float16  # other maps keep their format


@pytest.mark.parametrize("name", [n for n in FILLS.names() if not FILLS[n].drops_tokens])
def test_a_fill_that_does_not_depend_on_the_mask_paints_a_subset_as_it_paints_everything(name):
    """Backward selection selects against the image filled everywhere (the reference) and re-checks an SIS
    with only its complement filled: the two agree exactly for every fill whose trait says so, and the
    fills that depend on the mask (an imputation) say so and are refused for gbs and bs."""
    from omegaconf import OmegaConf

    from roar.masking.fills import bind_fill

    torch.manual_seed(0)
    cfg = OmegaConf.create({"name": name, **FILLS[name].params, **({"reference_size": None} if name == "blur" else {})})
    x, donors = torch.rand(2, 3, 12, 12), torch.rand(2, 3, 12, 12)
    removed = torch.rand(2, 1, 12, 12) < 0.4
    ids, mean = ["a", "b"], [0.2, 0.4, 0.6]
    fill = bind_fill(cfg, 3, mean, 3)
    everywhere = fill.apply(x, torch.ones_like(removed), ids, donors)
    subset = fill.apply(x, removed, ids, donors)
    same = torch.equal(subset, torch.where(removed, everywhere, x))
    assert same != FILLS[name].depends_on_mask


def test_gbs_refuses_a_fill_that_depends_on_the_mask():
    from roar.attribution.run import check_config
    from roar.config import compose_config

    with pytest.raises(RoarError, match="fill=linear paints each pixel from the pixels left"):
        check_config(compose_config("attribute", ["attribute.estimators=[gbs,grad]", "fill=linear"]))
    check_config(compose_config("attribute", ["attribute.estimators=[grad]", "fill=linear"]))  # others may
