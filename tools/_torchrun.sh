#!/usr/bin/env bash
# Shared by dist_train.sh / dist_test.sh: _torchrun.sh NUM_PROCS SCRIPT [script args...]
# One process per GPU (nccl); without CUDA the processes share the CPU (gloo, see mmvit_ext/utils/launch.py).
NPROCS=$1
SCRIPT=$2
# Python: $PYTHON if set, else the project's .venv (as make uses it) when present, else python on PATH.
DIR=$(cd "$(dirname "$0")" && pwd)
if [ -z "${PYTHON:-}" ]; then
    if [ -x "$DIR/../.venv/bin/python" ]; then PYTHON="$DIR/../.venv/bin/python"; else PYTHON=python; fi
fi
PYTHONPATH="$DIR/..":$PYTHONPATH \
exec "$PYTHON" -m torch.distributed.run \
    --nnodes=${NNODES:-1} --node_rank=${NODE_RANK:-0} --master_addr=${MASTER_ADDR:-127.0.0.1} \
    --nproc_per_node=$NPROCS --master_port=${PORT:-29500} \
    "$DIR/$SCRIPT" "${@:3}" --launcher pytorch
