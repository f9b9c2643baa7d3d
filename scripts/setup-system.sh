#!/usr/bin/env bash
# The system packages the full test suite uses, installed once and only when missing (idempotent):
# a real one-node SLURM (Debian's slurm-wlm + munge) and headless Chromium (the report's render test).
# Tests only use them; `make test` runs this first. Needs root (or the packages already installed).
set -euo pipefail
need=()
for pair in slurmctld:slurm-wlm slurmd:slurm-wlm sbatch:slurm-wlm munged:munge chromium:chromium; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || need+=("${pair#*:}")
done
[ ${#need[@]} -eq 0 ] && exit 0
mapfile -t need < <(printf '%s\n' "${need[@]}" | sort -u)
if [ "$(id -u)" -ne 0 ]; then
  echo "setup-system: missing ${need[*]}; install them as root (apt-get install ${need[*]}), then run make test again." >&2
  exit 1
fi
echo "setup-system: installing ${need[*]} (apt-get, once)"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq "${need[@]}" >/dev/null
