#!/usr/bin/env bash
# bash tools/slurm_train.sh PARTITION JOB_NAME CONFIG WORK_DIR [tools/train.py args...]
exec "$(dirname "$0")/_srun.sh" "$1" "$2" train.py "$3" --work-dir="$4" "${@:5}"
