"""No-retrain evaluation: statistics by hand, MIF/LIF curves, the fidelity area, roar-eval, the toy check."""

import math

import numpy as np
import pytest
import torch

from roar.config import compose_config
from roar.errors import RoarError
from roar.evaluate.curves import MaskGrid, masked_logits, normalized_target_logits, step_fractions, summarize_curves
from roar.evaluate.stats import compare_with_random, curve_area, fidelity_area, mean_ci, normal_ci_half_width, spearman
from roar.evaluate.toy import run_toy
from roar.masking import bind_fill, feature_ranks


def test_mean_ci_matches_a_hand_computed_t_interval():
    r = mean_ci([1.0, 2.0, 3.0, 4.0])
    sd = math.sqrt(5 / 3)  # sum of squared deviations 5, n - 1 = 3
    half = 3.182446305284263 * sd / 2  # t_{0.975, 3} x sd / sqrt(4)
    assert r["n"] == 4 and r["mean"] == 2.5 and r["std"] == pytest.approx(sd)
    assert (r["ci_low"], r["ci_high"]) == pytest.approx((2.5 - half, 2.5 + half), abs=1e-9)
    one, none = mean_ci([0.7]), mean_ci([])
    assert one["mean"] == 0.7 and one["std"] == 0.0 and math.isnan(one["ci_low"])
    assert none["n"] == 0 and math.isnan(none["mean"])
    assert normal_ci_half_width([0.0, 2.0]) == pytest.approx(1.959963984540054)


def test_fidelity_area_of_known_curves():
    t = [0.0, 0.5, 1.0]
    assert fidelity_area(t, [1, 0, 0], [1, 1, 1]) == pytest.approx(75.0)  # 50 x (0 + 1) / 2 + 50 x (1 + 1) / 2
    t = np.linspace(0, 1, 21)
    assert fidelity_area(t, 1 - t, np.ones_like(t)) == pytest.approx(50.0)
    assert fidelity_area(t, np.ones_like(t), 1 - t) == pytest.approx(-50.0)  # MIF above LIF: worse than random
    both = fidelity_area(t, np.stack([1 - t, np.ones_like(t)]), np.stack([np.ones_like(t), np.ones_like(t)]))
    assert both.tolist() == pytest.approx([50.0, 0.0])
    assert curve_area([0, 0.5, 1], [1, 1, 0]) == pytest.approx(0.75)


def test_verdict_against_random_and_rank_agreement():
    random = [0.80, 0.81, 0.79, 0.80, 0.82]
    assert (
        compare_with_random([0.50, 0.52, 0.51, 0.49, 0.50], random, lower_is_better=True)["verdict"]
        == "better than random"
    )
    assert (
        compare_with_random([0.50, 0.52, 0.51, 0.49, 0.50], random, lower_is_better=False)["verdict"]
        == "worse than random"
    )
    assert (
        compare_with_random([0.81, 0.79, 0.80, 0.82, 0.80], random, lower_is_better=True)["verdict"] == "no different"
    )
    assert compare_with_random([0.5], random, lower_is_better=True)["verdict"] == "too few seeds"
    undefined = compare_with_random([math.nan] * 5, random, lower_is_better=True)  # a curve without its t = 0 point
    assert undefined["verdict"] == "insufficient data" and math.isnan(undefined["p"])
    a = {"grad": 3.0, "ig": 2.0, "random": 1.0}
    assert spearman(a, {"grad": 30, "ig": 20, "random": 10})["rho"] == pytest.approx(1.0)
    assert spearman(a, {"grad": 1, "ig": 2, "random": 3})["rho"] == pytest.approx(-1.0)
    assert math.isnan(spearman(a, {"grad": 1, "ig": 2})["rho"])
    assert math.isnan(spearman(a, {"grad": 5, "ig": 5, "random": 5})["rho"])  # all tied: undefined, no warning


class SumModel(torch.nn.Module):
    """Logit 0 = the sum of the pixels, logit 1 = 0: masking a pixel with 0 removes exactly its value."""

    def forward(self, x, keep=None):
        s = x.flatten(1).sum(1)
        return torch.stack([s, torch.zeros_like(s)], 1)


def test_mif_removes_the_highest_ranked_features_first_and_lif_the_lowest():
    from omegaconf import OmegaConf

    image = torch.tensor([4.0, 3.0, 2.0, 1.0]).view(1, 1, 2, 2)
    ranks = feature_ranks(image.flatten(1), ["a"], maps_seed=0)  # the scores are the pixel values: 4 ranks first
    t = step_fractions(0.25)
    grid = MaskGrid(["remove", "keep"], t)
    logits = masked_logits(SumModel(), image, ranks, grid, bind_fill(OmegaConf.create({"name": "zero"}), 1))
    curves = normalized_target_logits(logits, torch.tensor([0]))[0]
    assert curves[0].tolist() == pytest.approx([1.0, 0.6, 0.3, 0.1, 0.0])  # MIF: 4, then 3, 2, 1 go
    assert curves[1].tolist() == pytest.approx([1.0, 0.9, 0.7, 0.4, 0.0])  # LIF: 1, then 2, 3, 4 go
    summary = summarize_curves(t, curves[None].numpy())
    assert summary["fidelity"]["mean"] == pytest.approx(fidelity_area(t, curves[0].numpy(), curves[1].numpy()))
    assert summary["fidelity"]["mean"] > 0 and summary["mif"]["mean"] == pytest.approx(curves[0].tolist())


def test_masked_logits_batching_does_not_change_results():
    from omegaconf import OmegaConf

    torch.manual_seed(0)
    images, scores = torch.rand(5, 3, 4, 4), torch.randn(5, 16)
    ranks = feature_ranks(scores, list("abcde"), maps_seed=0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(48, 3))
    fill = bind_fill(OmegaConf.create({"name": "channel_mean"}), 3, [0.5, 0.4, 0.3])
    run = lambda rows: masked_logits(  # noqa: E731
        lambda x, keep=None: model(x),
        images,
        ranks,
        MaskGrid(["remove", "keep"], step_fractions(0.1), None, rows),
        fill,
    )
    assert torch.allclose(run(512), run(7), atol=1e-6)
    with pytest.raises(RoarError, match="eval.step=0.3"):
        step_fractions(0.3)


def test_toy_check_shows_why_roar_retrains():
    toy = run_toy(seeds=(0, 1, 2, 3, 4))
    acc = {name: {kind: np.mean(c, 0) for kind, c in kinds.items()} for name, kinds in toy["accuracy"].items()}
    t = np.asarray(toy["fractions"])
    base = acc["inverted"]["retrain"][0]
    assert base > 0.75 and acc["inverted"]["no_retrain"][0] == base
    quarter = list(t).index(0.25)
    # without retraining, removing the (uninformative) top of the inverted ranking already hurts
    assert acc["inverted"]["no_retrain"][quarter] < base - 0.05
    # with retraining the inverted ranking stays flat until the informative features go at 75%
    assert np.all(acc["inverted"]["retrain"][t <= 0.75] > base - 0.015)
    assert acc["inverted"]["retrain"][-2] < base - 0.1 and abs(acc["inverted"]["retrain"][-1] - 0.5) < 0.03
    # the ground-truth ranking removes the informative features first: chance by 25% either way
    assert acc["ground_truth"]["retrain"][quarter] < 0.55 and acc["ground_truth"]["no_retrain"][quarter] < 0.55
    assert run_toy(seeds=(0,)) == run_toy(seeds=(0,))  # deterministic; seed 0 is a seed


@pytest.fixture(scope="module")
def fpa_digits(tmp_path_factory):
    """Three tiny digits base models (augment none, fpa, rectangle), each with its own test maps."""
    from roar.attribution.run import attribute
    from roar.training.run import train

    root = tmp_path_factory.mktemp("outputs")
    common = [
        f"paths.output_root={root}",
        "name=fpa_digits",
        "logger=csv",
        "trainer.enable_progress_bar=false",
        "trainer.max_epochs=3",
        "grid.estimators=[grad,grad_x_input,random]",
    ]
    for aug in ("none", "fpa", "rectangle"):
        overrides = [*common, f"augment={aug}"]
        train(compose_config("train", overrides))
        attribute(compose_config("attribute", [*overrides, "attribute.splits=[test]", "attribute.params.samples=2"]))
    return root, common


# the no-retrain evaluation of FPA Table 1's rankings on the fpa_digits base models
FPA_EVALS = [
    "eval.rankings=[grad,grad_x_input.sum,random]",
    "eval.max_images=120",
    "eval.step=0.1",
    "eval.fractions=[0,0.5,0.9]",
]


@pytest.mark.slow
def test_roar_eval_writes_curves_fidelity_and_deletion_per_base_model(fpa_digits):
    from roar.evaluate.run import evaluate

    root, common = fpa_digits
    evals = FPA_EVALS
    results = {
        aug: evaluate(compose_config("eval", [*common, f"augment={aug}", *evals]))
        for aug in ("none", "fpa", "rectangle")
    }
    for aug, by_ranking in results.items():
        assert set(by_ranking) == {"grad", "grad_x_input.sum", "random"}
        path = root / "fpa_digits" / "eval" / by_ranking["grad"]["base"] / "channel_mean" / "grad_x_input.sum.json"
        assert by_ranking["grad"]["base"].startswith(f"digits-resnet8-{aug}-")
        assert path.is_file() and by_ranking["grad_x_input.sum"]["reduce"] == "sum"
        for r in by_ranking.values():
            assert (
                r["fidelity"]["n"] == 120 and len(r["mif"]["mean"]) == 11 and r["mif"]["mean"][0] == pytest.approx(1.0)
            )
            assert r["deletion"]["remove"]["fractions"] == [0.0, 0.5, 0.9]
            scores = r["lif_scores"]  # FPA Fig. 4 / C.3: the scores in LIF order, least important first
            assert len(scores) == len(r["fractions"]) and scores == sorted(scores) and scores[-1] > scores[0]
        signed = by_ranking["grad_x_input.sum"]["lif_scores"]
        assert signed[0] < 0 < signed[-1]  # a signed ranking: LIF masks the negative scores first
        ex = by_ranking["grad_x_input.sum"]["example"]  # FPA Fig. 5: one image's own curves, scores and map
        assert len(ex["mif"]) == len(ex["lif"]) == len(r["fractions"]) and ex["mif"][0] == pytest.approx(1.0)
        assert ex["lif_scores"] == sorted(ex["lif_scores"]) and ex["mif_scores"] == sorted(ex["mif_scores"])[::-1]
        heat = np.asarray(ex["heatmap"])  # digits' 8x8 map, unpooled: its extremes are the first masked scores
        assert heat.shape == (8, 8) and heat.max() == pytest.approx(ex["mif_scores"][0], rel=1e-5)
        assert heat.min() == pytest.approx(ex["lif_scores"][0], rel=1e-5)
        # the gradient points at what the model uses; a random ranking has no fidelity
        assert (
            by_ranking["grad"]["fidelity"]["mean"]
            > by_ranking["random"]["fidelity"]["mean"] + 3 * by_ranking["random"]["fidelity"]["ci"]
        )
        assert abs(by_ranking["random"]["fidelity"]["mean"]) < 3 * by_ranking["random"]["fidelity"]["ci"] + 5
        # no retraining: accuracy falls faster when the gradient's top pixels go than random ones
        assert (
            by_ranking["grad"]["deletion"]["remove"]["accuracy"][1]
            < by_ranking["random"]["deletion"]["remove"]["accuracy"][1]
        )
    again = evaluate(compose_config("eval", [*common, "augment=none", *evals]))
    assert again == results["none"]  # settings unchanged: read back, not recomputed


@pytest.mark.slow
def test_roar_eval_ranks_patches_with_granularity_patch(fpa_digits):
    """Patch rankings through the stage: their own file (grad.patch2), whole 2x2 patches removed, and
    the deletion accuracy at t = 1 equal to the pixel ranking's (everything masked either way)."""
    from roar.evaluate.run import evaluate

    root, common = fpa_digits
    evals = ["eval.rankings=[grad,random]", "eval.max_images=40", "eval.step=0.25", "eval.fractions=[0,0.5,1]"]
    pixel = evaluate(compose_config("eval", [*common, "augment=none", *evals]))
    patch = evaluate(compose_config("eval", [*common, "augment=none", *evals, "granularity=patch", "patch_size=2"]))
    assert set(patch) == {"grad.patch2", "random.patch2"} and patch["grad.patch2"]["patch"] == 2
    folder = root / "fpa_digits" / "eval" / patch["grad.patch2"]["base"] / "channel_mean"
    assert (folder / "grad.patch2.json").is_file() and (folder / "grad.json").is_file()
    assert patch["grad.patch2"]["mif"]["mean"] != pixel["grad"]["mif"]["mean"]
    for name in ("grad", "random"):
        assert (
            patch[f"{name}.patch2"]["deletion"]["remove"]["accuracy"][2]
            == pixel[name]["deletion"]["remove"]["accuracy"][2]
        )
    for name in patch:  # the fixture's experiment is shared: leave it as the other tests expect it
        (folder / f"{name}.json").unlink()
    with pytest.raises(RoarError, match="give the granularity once for all rankings"):
        evaluate(compose_config("eval", [*common, "eval.rankings=[grad.patch2]"]))
    with pytest.raises(RoarError, match="patch_size=3 does not tile 8x8"):
        evaluate(compose_config("eval", [*common, "granularity=patch", "patch_size=3"]))


@pytest.mark.slow
def test_roar_eval_bad_input_is_named_before_any_work(fpa_digits):
    from roar.evaluate.run import evaluate

    root, common = fpa_digits
    with pytest.raises(RoarError, match="'ig.bogus'"):
        evaluate(compose_config("eval", [*common, "eval.rankings=[ig.bogus]"]))
    with pytest.raises(RoarError, match="No maps at .*sobel"):
        evaluate(compose_config("eval", [*common, "eval.rankings=[sobel]"]))
    with pytest.raises(RoarError, match="eval.max_images=0"):
        evaluate(compose_config("eval", [*common, "eval.max_images=0"]))


@pytest.mark.slow
def test_report_tabulates_fidelity_per_augmentation_like_fpa_table_1(fpa_digits):
    from roar.evaluate.run import evaluate
    from roar.report.run import build_report

    root, common = fpa_digits
    evals = FPA_EVALS
    for aug in ("none", "fpa", "rectangle"):
        evaluate(compose_config("eval", [*common, f"augment={aug}", *evals]))
    build_report(compose_config("report", [*common, evals[0]]))
    lines = (root / "fpa_digits" / "report" / "fidelity.csv").read_text().splitlines()
    assert lines[0] == "base,model,augment,grad,grad_x_input.sum,random"  # columns in eval.rankings' order
    assert [line.split(",")[2] for line in lines[1:]] == ["none", "fpa", "rectangle"]  # rows as in FPA Table 1
    assert [line.split(",")[0].split("-")[2] for line in lines[1:]] == ["none", "fpa", "rectangle"]  # one per base
    assert all(" ± " in cell for line in lines[1:] for cell in line.split(",")[3:])
    page = (root / "fpa_digits" / "report" / "index.html").read_text()
    assert (
        "FPA Table 1" in page and "No finished retrain runs" in page
    )  # no retraining in this experiment: said, not hidden
    assert (
        "FPA Fig. 4 and appendix C.3" in page
        and (root / "fpa_digits" / "report" / "lif-scores-channel_mean.png").is_file()
    )
    assert "FPA Fig. 5" in page and (root / "fpa_digits" / "report" / "sign-example-channel_mean.png").is_file()
    agreement = (root / "fpa_digits" / "report" / "agreement.csv").read_text().splitlines()
    bases = [line.split(",")[0] for line in agreement[1:]]  # Spearman per base model, never the last one read
    assert sorted(b.rsplit("-", 1)[0] for b in bases) == [
        "digits-resnet8-fpa",
        "digits-resnet8-none",
        "digits-resnet8-rectangle",
    ]


def test_token_drop_curves_drop_the_tokens_of_masked_patches():
    from omegaconf import OmegaConf

    from conftest import untrained_classifier
    from roar.masking.patches import patch_keep

    model = untrained_classifier("vit_tiny", {"patch_size": 4, "dim": 16, "depth": 1, "heads": 2}, [3, 16, 16])
    images = torch.rand(2, 3, 16, 16)
    ranks = feature_ranks(torch.randn(2, 16), ["a", "b"], maps_seed=0)  # 16 patches of 4x4, ranked
    fill = bind_fill(OmegaConf.create({"name": "token_drop"}), 3)
    logits = masked_logits(model, images, ranks, MaskGrid(["remove"], [0.0, 0.5], patch=4), fill)
    with torch.no_grad():
        assert torch.allclose(logits[:, 0, 0], model(images), atol=1e-5)  # t = 0: every token kept
        from roar.masking import mask_images

        unpainted, removed = mask_images(images, ranks, "remove", 0.5, fill, patch=4)
        assert torch.equal(unpainted, images)  # token_drop paints nothing: the model drops tokens instead
        keep = patch_keep(removed, 4)
        assert keep.flatten(1).sum(1).tolist() == [8, 8]  # exactly P - round(t P) tokens kept
        assert torch.allclose(logits[:, 0, 1], model(images, keep), atol=1e-5)
