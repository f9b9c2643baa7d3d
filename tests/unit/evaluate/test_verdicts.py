"""Verdicts a reviewer accepts: per base model, corrected for the number of tests, a per-t test beside
the area, and a leakage label that needs both recoverable masks and class information in them."""

import math

import numpy as np
import pytest
from scipy import stats as sps

from roar.evaluate.stats import adjust_p, spearman_permutation
from roar.report.analysis import verdicts
from roar.report.leakage_audit import audit_verdicts, consistency


def run(base, est, t, seed, acc, mode="remove", fill="channel_mean", reduce="abs_sum"):  # noqa: PLR0913 (a synthetic run's fields)
    return {
        "base": base,
        "estimator": est,
        "reduce": reduce,
        "mode": mode,
        "fill": fill,
        "fraction": t,
        "seed": seed,
        "test_acc": acc,
    }


def curve_rows(base, est, accs: dict, seeds=5, offsets=(0.0, 0.02, 0.04, 0.01, 0.03), **kw):
    """One estimator's runs: {t: accuracy} plus a per-seed offset (the same for every t)."""
    return [run(base, est, t, s, a + offsets[s], **kw) for t, a in accs.items() for s in range(seeds)]


def test_holm_bonferroni_and_bh_by_hand_and_against_scipy():
    p = [0.01, 0.04, 0.03, math.nan, 0.005]
    # Holm: sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1, running maximum
    assert adjust_p(p, "holm")[:3] == pytest.approx([0.03, 0.06, 0.06]) and adjust_p(p, "holm")[4] == 0.02
    assert adjust_p(p, "bonferroni") == pytest.approx([0.04, 0.16, 0.12, math.nan, 0.02], nan_ok=True)
    finite = [0.01, 0.04, 0.03, 0.005]
    bh = adjust_p(finite, "bh")
    assert bh == pytest.approx(sps.false_discovery_control(finite, method="bh").tolist())
    assert math.isnan(adjust_p(p, "bh")[3]) and adjust_p(p, "none") == pytest.approx(p, nan_ok=True)
    assert adjust_p([0.9, 0.8], "bonferroni") == [1.0, 1.0]  # capped


def test_permutation_p_of_a_spearman_rho_is_exact_for_few_rankings():
    a = {"w": 1.0, "x": 2.0, "y": 3.0, "z": 4.0}
    same = spearman_permutation(a, a)
    assert same["rho"] == pytest.approx(1.0) and same["p"] == pytest.approx(1 / 24) and same["n"] == 4
    reverse = spearman_permutation(a, {k: -v for k, v in a.items()})
    assert reverse["rho"] == pytest.approx(-1.0) and reverse["p"] == pytest.approx(1.0)


def test_two_base_models_whose_retrains_disagree_give_two_verdicts():
    rows = []
    for base, grad in (("digits-resnet8-none-aaaa", 0.40), ("digits-resnet8-none-bbbb", 0.80)):
        rows += curve_rows(base, "random", {0.0: 0.98, 0.5: 0.60})
        rows += curve_rows(base, "grad", {0.5: grad})
    found = {v["base"]: v for v in verdicts(rows)}
    assert len(found) == 2
    assert found["digits-resnet8-none-aaaa"]["verdict"] == "better than random"
    assert found["digits-resnet8-none-bbbb"]["verdict"] == "worse than random"
    assert found["digits-resnet8-none-aaaa"]["seeds"] == 5  # not 10: the other base's runs are not pooled
    assert found["digits-resnet8-none-aaaa"]["area"] == pytest.approx((0.98 + 0.40) / 2 + 0.02)


def three_close_estimators():
    rows = [run("b", "random", 0.0, s, 0.98) for s in range(5)]
    rows += [run("b", "random", 0.5, s, a) for s, a in enumerate([0.50, 0.52, 0.54, 0.51, 0.53])]
    for est, accs in (
        ("grad", [0.47, 0.49, 0.51, 0.48, 0.50]),
        ("ig", [0.475, 0.495, 0.515, 0.48, 0.50]),
        ("gb", [0.47, 0.50, 0.51, 0.48, 0.505]),
    ):
        rows += [run("b", est, 0.5, s, a) for s, a in enumerate(accs)]
    return rows


def test_the_verdict_stands_on_the_corrected_p():
    rows = three_close_estimators()
    raw = {v["estimator"]: v for v in verdicts(rows, "none")}
    assert all(v["verdict"] == "better than random" and v["p"] < 0.05 for v in raw.values())
    holm = {v["estimator"]: v for v in verdicts(rows, "holm")}
    expected = adjust_p([raw[k]["p"] for k in sorted(raw)], "holm")
    assert [holm[k]["p_adjusted"] for k in sorted(raw)] == pytest.approx(expected)
    assert all(holm[k]["p"] == raw[k]["p"] and holm[k]["correction"] == "holm" for k in raw)
    flipped = [k for k in holm if holm[k]["p_adjusted"] >= 0.05]
    assert flipped and all(holm[k]["verdict"] == "no different" for k in flipped)
    # the interval of the difference (Welch) lies below zero where the estimator is better
    g = raw["grad"]
    assert g["diff_ci_low"] < g["diff"] < g["diff_ci_high"] < 0


def test_per_t_tests_show_curves_that_cross():
    rows = curve_rows("b", "random", {0.0: 0.98, 0.3: 0.90, 0.9: 0.30})
    rows += curve_rows("b", "grad", {0.3: 0.80, 0.9: 0.40})  # better at 0.3, worse at 0.9 (ROAR: lower is better)
    (v,) = verdicts(rows)
    assert [p["t"] for p in v["per_t"]] == [0.3, 0.9]
    assert v["per_t"][0]["diff"] == pytest.approx(-0.10) and v["per_t"][1]["diff"] == pytest.approx(0.10)
    assert all(p["p"] < 1e-3 for p in v["per_t"])
    assert v["crossing"] == "better at t=0.3; worse at t=0.9"
    rows = curve_rows("b", "random", {0.0: 0.98, 0.3: 0.90, 0.9: 0.30}) + curve_rows("b", "grad", {0.3: 0.8, 0.9: 0.2})
    assert verdicts(rows)[0]["crossing"] == ""


def leaky_rows(random_mask_only: float | None, grad_mask_only: float = 0.9):
    rows = curve_rows("b", "random", {0.0: 0.98, 0.5: 0.60}) + curve_rows("b", "grad", {0.5: 0.80})
    rows += curve_rows("b", "grad", {0.5: grad_mask_only}, fill="mask_only")
    if random_mask_only is not None:
        rows += curve_rows("b", "random", {0.5: random_mask_only}, fill="mask_only")
    return rows


AUDIT = [{"base": "b", "estimator": "grad", "reduce": "abs_sum", "mode": "remove", "fill": "channel_mean",
          "fraction": 0.5, "balanced_accuracy": 0.9, "steps": 200}]  # fmt: skip


def test_confounded_only_when_the_masks_are_recoverable_and_carry_class_information():
    leak = audit_verdicts(verdicts(leaky_rows(0.2)), AUDIT, leaky_rows(0.2), [], 10)[0]
    assert leak["leakage"] == "confounded by leakage" and leak["recoverability"] == pytest.approx(0.9)
    assert leak["mask_only"] == pytest.approx(0.9 + 0.02 - 0.1) and leak["mask_only_random"] == pytest.approx(0.12)
    assert leak["mask_only_p"] < 1e-6
    # random's masks alone are read as well as grad's: recoverable, but no class information of grad's own
    same = audit_verdicts(verdicts(leaky_rows(0.9)), AUDIT, leaky_rows(0.9), [], 10)[0]
    assert same["leakage"] == "masks recoverable, but carry no more class information than random's"
    # no random mask-only runs: not measured, and how to measure it
    unknown = audit_verdicts(verdicts(leaky_rows(None)), AUDIT, leaky_rows(None), [], 10)[0]
    assert unknown["leakage"].startswith("masks recoverable; class information in the mask not measured")
    assert "grid.estimators=[grad,random] fill=mask_only" in unknown["leakage"]
    assert unknown["mask_only"] == pytest.approx(0.82)  # shown even without random's
    # masks that cannot be read off the images are not confounded, whatever they carry
    clear = audit_verdicts(verdicts(leaky_rows(0.2)), [{**AUDIT[0], "balanced_accuracy": 0.6}], leaky_rows(0.2), [], 10)
    assert clear[0]["leakage"] == ""
    assert "not measured" in audit_verdicts(verdicts(leaky_rows(0.2)), [], leaky_rows(0.2), [], 10)[0]["leakage"]


def evaluation(base, ranking, mif_area, lif_area, fill="linear"):
    return {"base": base, "fill": fill, "ranking": ranking, "fractions": [0.0, 1.0],
            "mif": {"mean": [mif_area, mif_area]}, "lif": {"mean": [lif_area, lif_area]}}  # fmt: skip


def test_morf_lerf_consistency_leaves_random_out_and_reports_n_and_a_permutation_p():
    evals = [evaluation("b", r, mif, lif) for r, mif, lif in (("w", 0.1, 0.9), ("x", 0.2, 0.8), ("y", 0.3, 0.7))]
    evals += [evaluation("b", "z", 0.4, 0.6), evaluation("b", "random", 0.0, 0.0)]  # random would break the order
    c = consistency(evals)[("b", "linear")]
    assert c["rho"] == pytest.approx(1.0) and c["n"] == 4 and "random" not in c["estimators"]
    assert c["p"] == pytest.approx(1 / 24)
    rows = curve_rows("b", "random", {0.0: 0.98, 0.5: 0.6}, fill="linear") + curve_rows(
        "b", "w", {0.5: 0.4}, fill="linear"
    )
    v = audit_verdicts(verdicts(rows), [], rows, evals, 10)[0]
    assert (v["consistency"], v["consistency_n"], v["consistency_p"]) == (pytest.approx(1.0), 4, pytest.approx(1 / 24))


def test_too_few_seeds_keeps_its_verdict_and_gets_no_adjusted_p():
    rows = curve_rows("b", "random", {0.0: 0.98, 0.5: 0.6}, seeds=1) + curve_rows("b", "grad", {0.5: 0.4}, seeds=1)
    (v,) = verdicts(rows)
    assert v["verdict"] == "too few seeds" and math.isnan(v["p_adjusted"])
    assert np.isfinite(v["diff"])


@pytest.mark.slow
def test_a_pipeline_with_two_base_models_reports_one_verdict_row_per_base(tiny_pipeline, tmp_path):
    """The tiny ROAR pipeline again with a second base model (seed=1) in the same experiment: the report
    gives one verdict per (base, ranking, mode, fill), each with p and p_adjusted, from its own runs."""
    import shutil

    from roar.config import compose_config
    from roar.report.files import read_csv
    from roar.stages.pipeline import run_pipeline
    from roar.store.resolve import base_key

    origin, overrides, _ = tiny_pipeline
    shutil.copytree(origin / "roar_digits", tmp_path / "roar_digits")
    mine = [f"paths.output_root={tmp_path}" if o.startswith("paths.output_root=") else o for o in overrides]
    first = base_key(compose_config("pipeline", mine)).name
    second = base_key(compose_config("pipeline", [*mine, "seed=1"])).name
    assert first != second
    run_pipeline([*mine, "seed=1", f"base={second}"], progress=False)  # its report reads both base models' runs
    rows = read_csv(tmp_path / "roar_digits" / "report" / "verdict.csv")
    assert sorted((r["base"], r["estimator"], r["mode"], r["fill"]) for r in rows) == sorted(
        [(first, "grad", "remove", "channel_mean"), (second, "grad", "remove", "channel_mean")]
    )
    assert all(r["p"] and r["p_adjusted"] and r["seeds"] == "2" for r in rows)
    assert rows[0]["area"] != rows[1]["area"]  # each base model's own retrains, not one pooled curve
    summary = read_csv(tmp_path / "roar_digits" / "report" / "summary.csv")
    assert {r["base"] for r in summary} == {first, second} and all(r["n"] == "2" for r in summary)
    figures = {p.name for p in (tmp_path / "roar_digits" / "report").glob("roar-*.png")}
    assert figures == {f"roar-channel_mean-{first}.png", f"roar-channel_mean-{second}.png"}
