"""``make demo``: train the demo model on the embedded digits, with and without FPA, and report.

Each run is a real ``roar-train`` invocation (Hydra app, Lightning, offline wandb); a rerun skips
finished runs, so the second ``make demo`` takes seconds.
"""

import json
import subprocess
import sys
import time
from pathlib import Path

RUNS = [
    ["name=demo_digits", "data=digits", "model=resnet8", "augment=none"],
    ["name=demo_digits", "data=digits", "model=resnet8", "augment=fpa"],
    ["name=demo_shapes", "data=shapes", "model=resnet8", "augment=none"],
]


def main():
    roar_train = Path(sys.executable).parent / "roar-train"
    rows = []
    for overrides in RUNS:
        cmd = [str(roar_train), "trainer.enable_progress_bar=false", *overrides]
        print("$", " ".join(["roar-train", *cmd[1:]]), flush=True)
        started = time.time()
        out = subprocess.run(cmd, capture_output=True, text=True)
        if out.returncode != 0:
            sys.stderr.write(out.stdout[-2000:] + out.stderr[-4000:])
            sys.exit(out.returncode)
        line = [ln for ln in out.stdout.splitlines() if ln.startswith("[roar-train]")][-1]
        metrics_path = Path(line.rsplit("-> ", 1)[-1])  # roar-train's last line names its metrics.json
        metrics = json.loads(metrics_path.read_text())
        rows.append((metrics, metrics_path, time.time() - started))
        print(f"  {line}", flush=True)
    print("\nroar demo: base models (test split, seed 0)")
    print(f"  {'data':8s} {'model':8s} {'augment':8s} {'test_acc':>8s} {'epochs':>6s} {'train s':>8s}  metrics")
    for m, path, _ in rows:
        print(f"  {m['dataset']:8s} {m['model']:8s} {m['augment']:8s} {m['test_acc']:8.4f} {m['epochs']:6d} {m['train_seconds']:8.1f}  {path}")
    print("\nwandb runs are offline, under each run's wandb/ folder; `make wandb-sync` uploads them.")


if __name__ == "__main__":
    main()
