#!/usr/bin/env bash
# Start (or stop) a local single-node Ray head for running training jobs on this machine.
#   cluster/local.sh            start a head with all local CPUs (and GPUs if any); prints the address
#   cluster/local.sh stop       stop it
#   RAY_ADDRESS=auto sweettok train --config jobs/train-curriculum-tiny.yaml
# On a CPU-only machine DeepSpeed must use its CPU accelerator: DS_ACCELERATOR=cpu is exported here and
# also set by the training job for its workers.
set -euo pipefail
cd "$(dirname "$0")/.."
RAY="${RAY:-.venv/bin/ray}"
[ -x "$RAY" ] || RAY=ray

if [ "${1:-start}" = "stop" ]; then
  exec "$RAY" stop
fi

export DS_ACCELERATOR="${DS_ACCELERATOR:-$(command -v nvidia-smi >/dev/null 2>&1 && echo cuda || echo cpu)}"
NUM_CPUS="${NUM_CPUS:-$(nproc)}"
"$RAY" start --head --port="${RAY_PORT:-6379}" --num-cpus="$NUM_CPUS" \
  --dashboard-host=127.0.0.1 --include-dashboard=true --disable-usage-stats
echo "Ray head started (DS_ACCELERATOR=$DS_ACCELERATOR). Submit with:"
echo "  RAY_ADDRESS=auto sweettok train --config jobs/train-curriculum-tiny.yaml"
echo "  ray job submit --address http://127.0.0.1:8265 --working-dir . -- sweettok train --config jobs/train-curriculum-tiny.yaml"
