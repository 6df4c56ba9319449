#!/usr/bin/env bash
# bash tools/dist_test.sh CONFIG CHECKPOINT NUM_PROCS [tools/test.py args...]
# Environment: NNODES, NODE_RANK, MASTER_ADDR, PORT (default 29500), PYTHON (default: the
# project's .venv/bin/python when present, else python on PATH).
exec "$(dirname "$0")/_torchrun.sh" "$3" test.py "$1" "$2" "${@:4}"
