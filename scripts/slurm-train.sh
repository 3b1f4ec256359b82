#!/usr/bin/env bash
# A SLURM batch script for data-parallel training: one task per GPU, every task runs `performer train`,
# which reads its rank from SLURM_PROCID / SLURM_NTASKS / SLURM_LOCALID (src/train/world.h) and meets the
# others at MASTER_ADDR:MASTER_PORT (set here: the job's first node, a port derived from the job id).
#
#   sbatch --nodes 2 --ntasks-per-node 4 --gpus-per-node 4 scripts/slurm-train.sh configs/trembl-performer-softmax.yaml
#   sbatch ... scripts/slurm-train.sh CONFIG --resume auto        # further arguments go to `performer train`
#
# With --signal=TERM@120 (below) SLURM sends every task SIGTERM two minutes before the time limit: all
# ranks stop at the same step and rank 0 writes one checkpoint; resubmit with --resume auto to continue,
# on the same or a different number of GPUs (checkpoints do not depend on the number of ranks).
# Preemption and `scontrol requeue` end the tasks the same way (SIGTERM, then SIGKILL after the cluster's
# KillWait); the requeued job runs this script again and resumes from the last checkpoint by itself
# (--resume auto is added when SLURM_RESTART_COUNT says the job was requeued). `scancel` stops it with a
# checkpoint too: `performer train --config RUN/config.yaml --resume auto`, or a new sbatch with
# --resume auto, continues it.
#SBATCH --job-name=performer
#SBATCH --ntasks-per-node=1
#SBATCH --signal=TERM@120
#SBATCH --output=performer-%j.out
set -euo pipefail
config="${1:?usage: sbatch [options] scripts/slurm-train.sh CONFIG [performer train arguments...]}"
shift
ROOT="${PERFORMER_ROOT:-${SLURM_SUBMIT_DIR:-$(pwd)}}"
BIN="${PERFORMER_BIN:-${ROOT}/build-torch2/performer}"
[[ -x "${BIN}" ]] || BIN="${ROOT}/build/performer"
MASTER_ADDR="$(scontrol show hostnames "${SLURM_JOB_NODELIST}" | head -n 1)"
MASTER_PORT="${MASTER_PORT:-$((20000 + SLURM_JOB_ID % 20000))}"
export MASTER_ADDR MASTER_PORT
args=("$@")
if (( ${SLURM_RESTART_COUNT:-0} > 0 )); then
  # A requeued job continues its own run: --overwrite or --resume PATH of the first submission would
  # start it over or go back to that checkpoint, so they give way to --resume auto.
  args=()
  for ((i = 1; i <= $#; ++i)); do
    a="${!i}"
    case "${a}" in
      --overwrite | --resume=*) ;;
      --resume) i=$((i + 1)) ;;
      *) args+=("${a}") ;;
    esac
  done
  args+=(--resume auto)
  echo "performer: requeued (restart ${SLURM_RESTART_COUNT}): resuming from the last checkpoint"
fi
echo "performer: ${SLURM_NTASKS} ranks on ${SLURM_JOB_NUM_NODES} node(s), store ${MASTER_ADDR}:${MASTER_PORT}"
exec srun --kill-on-bad-exit=0 "${BIN}" train --config "${config}" "${args[@]}"
