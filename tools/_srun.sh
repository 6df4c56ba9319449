#!/usr/bin/env bash
# Shared by slurm_train.sh / slurm_test.sh: _srun.sh PARTITION JOB_NAME SCRIPT [script args...]
# Environment: GPUS (total, default 8), GPUS_PER_NODE (8), CPUS_PER_TASK (5), SRUN_ARGS.
set -x
DIR=$(cd "$(dirname "$0")" && pwd)
GPUS=${GPUS:-8}
GPUS_PER_NODE=${GPUS_PER_NODE:-8}
PYTHONPATH="$DIR/..":$PYTHONPATH \
srun -p "$1" --job-name="$2" --gres=gpu:${GPUS_PER_NODE} --ntasks=${GPUS} --ntasks-per-node=${GPUS_PER_NODE} \
    --cpus-per-task=${CPUS_PER_TASK:-5} --kill-on-bad-exit=1 ${SRUN_ARGS:-} \
    python -u "$DIR/$3" "${@:4}" --launcher=slurm
