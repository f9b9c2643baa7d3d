"""Real photos through the whole chain, with the README's commands as written: an image folder of
crops of scikit-learn's two sample photographs (china.jpg, flower.jpg), read from data.root."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytestmark = pytest.mark.slow
BIN = Path(sys.executable).parent
SMALL = [
    "data=imagefolder",
    "data.resize=16",
    "data.crop=16",
    "data.batch_size=16",
    "data.num_workers=0",
    "logger=csv",
    "trainer.max_epochs=2",
    "trainer.enable_progress_bar=false",
    "grid.estimators=[grad,random]",
    "grid.fractions=[0.5]",
    "grid.seeds=1",
]


def photo_folder(root: Path, per_class=(24, 8), side=48) -> Path:
    """<root>/train/<photo>/*.jpg and <root>/val/<photo>/*.jpg: random crops of each photograph."""
    from sklearn.datasets import load_sample_images

    rng = np.random.default_rng(0)
    photos = load_sample_images()
    for name, image in zip(("china", "flower"), photos.images):
        for split, n in zip(("train", "val"), per_class):
            (root / split / name).mkdir(parents=True, exist_ok=True)
            for i in range(n):
                y, x = rng.integers(0, image.shape[0] - side), rng.integers(0, image.shape[1] - side)
                Image.fromarray(image[y : y + side, x : x + side]).save(
                    root / split / name / f"{name}{i:03d}.jpg", quality=90
                )
    return root


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    return photo_folder(tmp_path_factory.mktemp("photos"))


def test_roar_pipeline_runs_end_to_end_on_an_image_folder(photos, tmp_path):
    out = subprocess.run(
        [
            str(BIN / "roar-pipeline"),
            "name=photos",
            f"data.root={photos}",
            f"paths.output_root={tmp_path}",
            *SMALL,
            "attribute.params.samples=2",
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    exp = tmp_path / "photos"
    runs = [json.loads(p.read_text()) for p in sorted((exp / "runs").rglob("metrics.json"))]
    assert len(runs) == 3 and {r["dataset"] for r in runs} == {"imagefolder"} and {r["num_train"] for r in runs} == {48}
    assert (exp / "report" / "index.html").is_file() and (
        next((exp / "base").glob("imagefolder-resnet8-none-*/metrics.json"))
    ).is_file()
    # the README's cluster sweep, as written, on the same real data (local launcher): the grid's runs again
    before = {(r["estimator"], r["fraction"]): r["test_acc"] for r in runs}
    shutil.rmtree(exp / "runs")
    sweep = subprocess.run(
        [
            str(BIN / "roar-train"),
            "-m",
            "name=photos",
            f"data.root={photos}",
            f"paths.output_root={tmp_path}",
            *[o for o in SMALL if not o.startswith("grid.seeds")],
            "grid.seeds=1",
            "sweep=grid",
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert sweep.returncode == 0, sweep.stderr[-3000:]
    after = {
        (r["estimator"], r["fraction"]): r["test_acc"]
        for r in (json.loads(p.read_text()) for p in (exp / "runs").rglob("metrics.json"))
    }
    assert after == before  # deterministic on CPU: the same numbers
