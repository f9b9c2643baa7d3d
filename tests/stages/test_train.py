"""Real Lightning training on the embedded data: accuracy, determinism, resume, checkpoints, wandb."""

import subprocess
import sys
from pathlib import Path

import lightning as L
import pytest
import torch

from roar.classifier.load import load_classifier
from roar.errors import RoarError
from roar.store.resolve import run_key
from roar.training.run import train

pytestmark = pytest.mark.slow
QUICK = ["trainer.max_epochs=2", "trainer.limit_train_batches=4"]


def test_small_resnet_on_digits_reaches_95_percent(make_cfg):
    metrics = train(make_cfg("data=digits", "model=resnet8"))
    assert metrics["test_acc"] >= 0.95
    assert metrics["epochs"] == 15 and metrics["num_test"] == 450 and metrics["seed"] == 0
    run = run_key(make_cfg()).folder
    assert (run / "checkpoints" / "last.ckpt").is_file() and (run / "config.yaml").is_file()


def test_same_seed_gives_identical_metrics_and_seed_0_is_a_seed(make_cfg):
    a = train(make_cfg("name=a", "seed=0", *QUICK))
    b = train(make_cfg("name=b", "seed=0", *QUICK))
    c = train(make_cfg("name=c", "seed=1", *QUICK))
    assert a["seed"] == 0 and (a["test_loss"], a["test_acc"]) == (b["test_loss"], b["test_acc"])
    assert c["test_loss"] != a["test_loss"]
    wa = torch.load(a["checkpoint"], weights_only=True)["state_dict"]
    wb = torch.load(b["checkpoint"], weights_only=True)["state_dict"]
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


@pytest.mark.parametrize("augment", ["standard", "fpa", "rectangle", "input_dropout", "missingness"])
def test_every_augmentation_trains_and_changes_training(make_cfg, augment):
    plain = train(make_cfg("augment=none", "data.image_size=16", *QUICK))
    metrics = train(make_cfg(f"augment={augment}", "data.image_size=16", *QUICK))
    assert metrics["augment"] == augment and run_key(make_cfg(f"augment={augment}")).folder.name.startswith(
        f"digits-resnet8-{augment}-"
    )
    # same seed, same batches: only the augmentation differs, so a no-op augmentation would give equal numbers
    assert metrics["train_acc"] != plain["train_acc"] or metrics["test_loss"] != plain["test_loss"]


def test_vit_trains_with_dropped_tokens_on_shapes(make_cfg):
    metrics = train(
        make_cfg(
            "experiment=missingness_vit_shapes",
            "data.n_train=128",
            "data.n_test=64",
            "model.params.dim=32",
            "model.params.depth=1",
            "model.params.heads=2",
            *QUICK,
        )
    )
    assert metrics["model"] == "vit_tiny" and metrics["augment"] == "missingness" and metrics["num_test"] == 64


def test_rerun_skips_complete_runs_and_overwrite_redoes(make_cfg, capsys):
    first = train(make_cfg(*QUICK))
    ckpt = Path(first["checkpoint"])
    stamp = ckpt.stat().st_mtime_ns
    assert train(make_cfg(*QUICK)) == first and ckpt.stat().st_mtime_ns == stamp
    assert "is complete" in capsys.readouterr().out
    again = train(make_cfg(*QUICK, "overwrite=true"))
    assert ckpt.stat().st_mtime_ns != stamp and again["test_loss"] == first["test_loss"]  # same seed, same numbers
    (ckpt.parent.parent / "identity.json").unlink()  # settings unknown: neither skipped into nor resumed
    with pytest.raises(RoarError, match=r"holds a trained run whose settings are unknown \(identity.json is missing"):
        train(make_cfg(*QUICK))
    assert train(make_cfg(*QUICK, "overwrite=true"))["test_loss"] == first["test_loss"]


class KillAtEpoch(L.Callback):
    """Fails the run at the start of an epoch, after the previous epoch's last.ckpt was written."""

    def __init__(self, epoch):
        self.epoch = epoch

    def on_train_epoch_start(self, trainer, module):
        if trainer.current_epoch == self.epoch:
            raise RuntimeError("killed")


def test_own_data_after_the_demo_gets_its_own_base_model(make_cfg):
    """The base key names the dataset: a newcomer's first own-data run after the digits demo (same
    name, model, augment) trains its own base model instead of being refused."""
    digits = train(make_cfg(*QUICK))
    shapes = train(make_cfg("data=shapes", "data.n_train=64", "data.n_test=32", *QUICK))
    assert (digits["dataset"], shapes["dataset"]) == ("digits", "shapes") and shapes["num_test"] == 32
    assert Path(digits["checkpoint"]).parent.parent.name.startswith("digits-resnet8-none-")
    assert Path(shapes["checkpoint"]).parent.parent.name.startswith("shapes-resnet8-none-")


def test_a_sweep_over_the_recipe_gives_distinct_runs_and_a_changed_folder_is_refused(make_cfg):
    """``roar-train -m optim.lr=0.05,0.2`` used to print job 0's accuracy for job 1 (one folder for both):
    the learning rate is in the base model's identity, so each gets its own run; a folder whose run was
    trained with other settings (here: its identity.json says so) is never resumed or skipped into."""
    import json

    a = train(make_cfg(*QUICK, "optim.lr=0.05"))
    b = train(make_cfg(*QUICK, "optim.lr=0.2"))
    assert a["checkpoint"] != b["checkpoint"] and a["test_loss"] != b["test_loss"]
    assert train(make_cfg(*QUICK, "optim.lr=0.05")) == a  # the same settings: skipped
    folder = Path(a["checkpoint"]).parent.parent
    saved = json.loads((folder / "identity.json").read_text())
    saved["training"]["optim"]["lr"] = 0.5
    (folder / "identity.json").write_text(json.dumps(saved))
    with pytest.raises(RoarError, match=r"holds a run trained with other settings \(training.optim.lr: 0.5 -> 0.05\)"):
        train(make_cfg(*QUICK, "optim.lr=0.05"))
    assert train(make_cfg(*QUICK, "optim.lr=0.05", "overwrite=true"))["test_loss"] == a["test_loss"]


FASTNET = ["model=fastnet", "model.params.width=8", "recipe=fast_cifar", "data.image_size=16", "data.batch_size=64"]


@pytest.mark.parametrize(
    "overrides",
    [
        ["augment=none", "data.in_memory=true"],
        ["augment=fpa", "data.in_memory=true"],
        ["augment=none", "data.in_memory=false"],
        ["augment=standard", "data.in_memory=true", *FASTNET],  # whitening, per-step schedule, alternating flips
    ],
    ids=["none-in-memory", "fpa-in-memory", "none-dataloader", "fastnet-fast_cifar"],
)
def test_interrupted_run_resumes_to_the_same_numbers(make_cfg, capsys, overrides):
    overrides = [*overrides, "trainer.max_epochs=3", "trainer.limit_train_batches=4"]
    with pytest.raises(RuntimeError, match="killed"):
        train(make_cfg(*overrides), callbacks=[KillAtEpoch(2)])
    run_dir = run_key(make_cfg(*overrides)).folder
    assert (run_dir / "checkpoints" / "last.ckpt").is_file() and not (run_dir / "metrics.json").exists()
    resumed = train(make_cfg(*overrides))
    assert "resuming from" in capsys.readouterr().out and resumed["epochs"] == 3
    straight = train(make_cfg("name=straight", *overrides))
    assert resumed["test_loss"] == straight["test_loss"] and resumed["test_acc"] == straight["test_acc"]


def test_checkpoint_loads_with_weights_only_and_rejects_another_model(make_cfg):
    metrics = train(make_cfg(*QUICK))
    model = load_classifier(metrics["checkpoint"], model={"name": "resnet8", "params": {"width": 16}}, num_classes=10)
    assert model(torch.rand(2, 1, 8, 8)).shape == (2, 10)
    with pytest.raises(RoarError, match="was trained with model=.*resnet8.* but this run asks for model=.*resnet20"):
        load_classifier(metrics["checkpoint"], model={"name": "resnet20", "params": {"width": 16}})
    import json

    from roar.training.status import check_run_dir_identity

    resnet20 = make_cfg("model=resnet20", *QUICK)
    other = run_key(resnet20).folder / "checkpoints"
    other.mkdir(parents=True)
    identity = check_run_dir_identity(resnet20, run_key(resnet20))  # the run's own settings, as train writes them
    Path(metrics["checkpoint"]).rename(other / "last.ckpt")  # a foreign checkpoint where resnet20's run resumes from
    with pytest.raises(RoarError, match="settings are unknown"):  # no identity.json beside it: not trusted at all
        train(resnet20)
    (other.parent / "identity.json").write_text(json.dumps(identity))
    with pytest.raises(RoarError, match="was trained with model="):  # resuming into another model fails before training
        train(resnet20)


def test_wandb_offline_run_is_written_and_always_finished(make_cfg, monkeypatch):
    import wandb

    metrics = train(make_cfg("logger=wandb", *QUICK))
    run_dir = Path(metrics["checkpoint"]).parent.parent
    runs = list((run_dir / "wandb").glob("offline-run-*"))
    assert len(runs) == 1 and list(runs[0].glob("run-*.wandb")) and wandb.run is None

    from roar.classifier.module import Classifier

    def broken(self, batch, batch_idx):
        raise RuntimeError("boom")

    monkeypatch.setattr(Classifier, "training_step", broken)
    with pytest.raises(RuntimeError, match="boom"):
        train(make_cfg("logger=wandb", "name=broken", *QUICK))
    assert wandb.run is None  # finished even though training failed


def test_cli_reports_bad_input_in_one_paragraph(tmp_path):
    from conftest import roar_cli

    out = roar_cli("roar-train", "data=cifar10", f"paths.output_root={tmp_path}", "logger=csv")
    assert out.returncode == 2
    assert "roar-train: error: data=cifar10 reads from a local folder, but data.root is not set" in out.stderr
    assert "Traceback" not in out.stderr


def test_ddp_two_processes_on_cpu(tmp_path):
    out = subprocess.run(
        [
            str(Path(sys.executable).parent / "roar-train"),
            "trainer=ddp",
            "trainer.accelerator=cpu",
            "logger=csv",
            f"paths.output_root={tmp_path}",
            "trainer.max_epochs=1",
            "trainer.enable_progress_bar=false",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    import json

    metrics = json.loads(next(tmp_path.glob("default/base/*/metrics.json")).read_text())
    assert metrics["world_size"] == 2 and metrics["test_acc"] > 0.5


def test_wandb_logger_passes_no_deprecated_anonymous_setting_and_lightning_probes_no_slurm(make_cfg, monkeypatch):
    from lightning.pytorch.plugins.environments import LightningEnvironment, SLURMEnvironment

    from roar.tracking import build_logger, cluster_plugins

    cfg = make_cfg("logger=wandb", "logger.mode=disabled")
    logger = build_logger(cfg, run_key(cfg))
    assert (
        "anonymous" not in logger._wandb_init
        and logger._wandb_init["group"] == f"default/base/{run_key(cfg).base.name}"
    )
    for var in ("SLURM_NTASKS", "SLURM_JOB_NAME"):
        monkeypatch.delenv(var, raising=False)
    assert [type(p) for p in cluster_plugins()] == [
        LightningEnvironment
    ]  # a login node with srun installed: nothing said
    monkeypatch.setenv("SLURM_NTASKS", "2")
    monkeypatch.setenv("SLURM_NTASKS_PER_NODE", "2")
    monkeypatch.setenv("SLURM_JOB_NAME", "roar")
    assert [type(p) for p in cluster_plugins()] == [SLURMEnvironment]  # a task of a SLURM job: ranks from SLURM


def test_a_run_that_never_trained_does_not_refuse_the_corrected_command(make_cfg):
    """A failed start leaves config.yaml and identity.json (no checkpoint, no metrics.json): the command
    run again, or corrected in a setting outside the run's identity, takes the folder over."""
    with pytest.raises(RuntimeError, match="killed"):
        train(make_cfg(*QUICK, "data.num_workers=0"), callbacks=[KillAtEpoch(0)])
    folder = run_key(make_cfg(*QUICK)).folder
    assert (folder / "config.yaml").is_file() and not (folder / "metrics.json").exists()
    fixed = train(make_cfg(*QUICK, "trainer.log_every_n_steps=1"))
    assert fixed["epochs"] == 2 and "log_every_n_steps: 1" in (folder / "config.yaml").read_text()


def test_sigterm_ends_a_run_unfinished_with_exit_143_and_says_how_to_resume(tmp_path):
    """SLURM's time limit, preemption, ``timeout`` and ``kill`` send SIGTERM: a real signal to a real
    roar-train, once its first checkpoint exists. It must not exit 0 as if finished."""
    import signal
    import time

    command = [str(Path(sys.executable).parent / "roar-train"), "logger=csv", f"paths.output_root={tmp_path}"]
    command += ["trainer.enable_progress_bar=false", "trainer.max_epochs=400"]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 240
    while not list(tmp_path.glob("default/base/*/checkpoints/last.ckpt")) and time.time() < deadline:
        time.sleep(0.5)
    time.sleep(1.0)  # an epoch or two later
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=240)
    assert proc.returncode == 128 + 15, err[-2000:]
    assert "interrupted by SIGTERM after epoch" in out and "rerun the same command to resume" in out
    assert not list(tmp_path.glob("default/base/*/metrics.json"))  # unfinished: nothing reported as done
    assert list(tmp_path.glob("default/base/*/checkpoints/last.ckpt"))  # what it trained is kept for the resume


def test_sigterm_ends_a_pipeline_unfinished_with_exit_143_and_no_report(tmp_path):
    """The same signal to roar-pipeline while it retrains: 143, one line, no report (nothing reported as finished)."""
    import signal
    import time

    from conftest import TINY

    command = [str(Path(sys.executable).parent / "roar-pipeline"), f"paths.output_root={tmp_path}", *TINY]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while not list(tmp_path.glob("roar_digits/runs/**/last.ckpt")) and time.time() < deadline:
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=240)
    assert proc.returncode == 128 + 15, err[-2000:]
    assert "interrupted by SIGTERM" in out and "rerun the same command to resume" in out
    assert not (tmp_path / "roar_digits" / "report").exists()


def test_a_second_process_on_the_same_run_is_refused_with_the_first_ones_pid(tmp_path):
    """Two roar-train on one run folder: the second would resume from the first's live checkpoint and both
    would write it. A real second process meets the first one's lock and is refused, naming its PID."""
    import signal
    import time

    command = [str(Path(sys.executable).parent / "roar-train"), "logger=csv", f"paths.output_root={tmp_path}"]
    command += ["trainer.enable_progress_bar=false", "trainer.max_epochs=400"]
    first = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 240
        while not list(tmp_path.glob("default/base/*/checkpoints/last.ckpt")) and time.time() < deadline:
            time.sleep(0.5)
        second = subprocess.run(command, capture_output=True, text=True, timeout=240)
        assert second.returncode == 2 and f"is in use by another roar process (PID {first.pid})" in second.stderr
        assert "Traceback" not in second.stderr and first.poll() is None  # the first trains on, untouched
    finally:
        first.send_signal(signal.SIGTERM)
        first.communicate(timeout=240)


def test_a_damaged_base_checkpoint_is_called_damaged_by_a_rerun_and_by_the_stages_that_load_it(make_cfg):
    from roar.classifier.load import load_base_model
    from roar.store.resolve import base_key

    first = train(make_cfg(*QUICK))
    ckpt = Path(first["checkpoint"])
    assert len(first["checkpoint_sha256"]) == 64
    data = bytearray(ckpt.read_bytes())
    data[len(data) // 2] ^= 0x01  # one flipped bit: torch may still load it, with a wrong weight
    ckpt.write_bytes(bytes(data))
    with pytest.raises(RoarError, match=r"last.ckpt is damaged: its sha256 differs .*overwrite=true"):
        train(make_cfg(*QUICK))
    cfg = make_cfg(*QUICK)
    with pytest.raises(RoarError, match=r"last.ckpt is damaged"):
        load_base_model(base_key(cfg), cfg.model, 10, [1, 8, 8])
    again = train(make_cfg(*QUICK, "overwrite=true"))
    assert again["test_loss"] == first["test_loss"] and again["checkpoint_sha256"] != ""
    load_base_model(base_key(cfg), cfg.model, 10, [1, 8, 8])  # as written again: trusted
