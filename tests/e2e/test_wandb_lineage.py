"""wandb artifacts with lineage (roar.lineage), read back from a real offline pipeline's run files."""

import pytest

from conftest import TINY
from wandb_files import run_artifacts


@pytest.mark.slow
def test_an_offline_pipeline_carries_the_artifact_graph_retrain_shards_maps_base(tmp_path):
    from roar.stages.pipeline import run_pipeline

    overrides = [f"paths.output_root={tmp_path}", *TINY, "logger=wandb", "logger.mode=offline", "grid.seeds=1"]
    run_pipeline([*overrides, "attribute.params.samples=2"], progress=False)
    runs = run_artifacts(tmp_path)
    by_type = {}
    for run in runs:
        by_type.setdefault(run["job_type"], []).append(run)
    assert sorted(by_type) == ["attribute", "base", "eval", "mask", "report", "retrain"]
    (base,), (attribute,), (mask,) = by_type["base"], by_type["attribute"], by_type["mask"]
    (evaluation,), (report,) = by_type["eval"], by_type["report"]

    # base model -> maps: the attribute run used the very version the base run made (same name and digest)
    assert len(base["made"]) == 1 and not base["used"]
    assert attribute["used"] == base["made"]
    kind, _, contents = base["metadata"][next(iter(base["made"]))]
    assert kind == "model" and sorted(contents) == ["data/last.ckpt", "identity.json", "metrics.json"]

    # maps -> shard sets: every estimator's maps, each a manifest by content and its shards by reference
    assert sorted(n.rsplit("-", 1)[-1] for n in attribute["made"]) == ["grad", "random"]
    assert mask["used"] == attribute["made"]
    for name in attribute["made"]:
        kind, metadata, contents = attribute["metadata"][name]
        assert kind == "maps" and "manifest.json" in contents and "data/train-000000.tar" in contents
        assert '"made_from"' in metadata and next(iter(base["made"])) in metadata
        # by reference: the shards stay where they are (file:// URIs), only the manifest travels
        assert all(ref.startswith("file:///") == path.startswith("data/") for path, ref in contents.items())

    # shard sets -> retrain runs: each run used one set the mask run made, the very version
    retrains = by_type["retrain"]
    assert len(retrains) == 3  # t = 0 under random, grad and random at t = 0.5; one seed
    for run in retrains:
        (used,) = run["used"].items()
        assert used[0] in mask["made"] and mask["made"][used[0]] == used[1] and not run["made"]
    assert {next(iter(r["used"])) for r in retrains} <= set(mask["made"])

    # the no-retrain evaluation used the base model and the maps; the report used the base and made itself
    assert base["made"].items() <= evaluation["used"].items()
    assert set(attribute["made"]) & set(evaluation["used"])
    (made,) = [n for n in report["made"] if report["metadata"][n][0] == "report"]  # its tables are wandb's own
    assert report["used"] == base["made"]
    contents = report["metadata"][made][2]
    assert "data/index.html" in contents and "data/summary.csv" in contents and ".roar-report.json" in contents
