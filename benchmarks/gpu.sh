#!/usr/bin/env bash
# The GPU benchmark (issue: retraining is the bill), for a machine with one CUDA GPU and PyTorch +
# Lightning installed: fastnet + fast_cifar on generated 32x32 shapes, per-run overhead, in-memory vs
# DataLoader throughput, the CIFAR-10 grid's GPU-hours, roar-plan calibrated here, and the rank-bucket loader
# (masked on the GPU) against npy shards. 151 s on an H100 before the bucket loader was added (its time not yet measured).
#   bash benchmarks/gpu.sh            (missing pure-Python packages may be given as wheels in .whl/)
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -d .whl ] && ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/roar-site .whl/*.whl
  export PYTHONPATH="/tmp/roar-site:${PYTHONPATH:-}"
fi
export PYTHONPATH="$PWD/src:$PWD/benchmarks:${PYTHONPATH:-}" PYTHONUNBUFFERED=1 WANDB_MODE=offline
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name(0))"
python3 benchmarks/bench_fast.py --gpu
python3 benchmarks/bench_storage.py --gpu 2>&1 | grep -v -i -E 'warning|available|tip' # rank buckets masked on the GPU vs npy vs memory
# roar-plan with the step time calibrated here (200 steps), for the fast grid and the FPA-recipe ResNet-18 grid
for e in roar_cifar10_fast roar_cifar10; do
  python3 -c "from roar.stages.plan import main; main()" experiment=$e trainer=gpu plan.calibrate=true logger=csv \
    paths.output_root="$(mktemp -d)" 2>&1 | grep -v -i warning
done
# fill=linear on the GPU against the peer's code on the CPU (needs quantus==0.6.0, a dev dependency)
if python3 -c "import quantus" 2>/dev/null; then python3 benchmarks/bench_linear.py --gpu 2>&1 | grep -v -i warning
else echo "bench_linear: quantus is not installed here (pip install quantus==0.6.0, or give its wheels in .whl/)"; fi
# a bank of K retrain runs as one stacked model vs K runs one after the other (fastnet, ResNet-18; K = 4, 8, 16)
python3 benchmarks/bench_bank.py --gpu 2>&1 | grep -v -i warning
