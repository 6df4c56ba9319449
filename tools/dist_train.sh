#!/usr/bin/env bash
# bash tools/dist_train.sh CONFIG NUM_PROCS [tools/train.py args...]
# Environment: NNODES, NODE_RANK, MASTER_ADDR, PORT (default 29500), PYTHON (default: the
# project's .venv/bin/python when present, else python on PATH).
exec "$(dirname "$0")/_torchrun.sh" "$2" train.py "$1" "${@:3}"
