#!/usr/bin/env bash
# A real one-node SLURM cluster on this machine, for the SlurmCluster.* tests and for trying
# scripts/slurm-train.sh without a cluster: Debian's slurmctld + slurmd, authenticated by munge, one node
# with this machine's CPUs and memory, one partition.
#
#   bash scripts/slurm-cluster.sh start   # installs what is missing (root), starts munged, slurmctld and
#                                         # slurmd; returns once `sinfo` shows the node idle
#   export SLURM_CONF=/var/tmp/performer-slurm/slurm.conf   # what `start` prints: sbatch, srun, sinfo ...
#   bash scripts/slurm-cluster.sh stop    # stops what `start` started; nothing is left running
#
# Its configuration and state live in PERFORMER_SLURM_DIR (default /var/tmp/performer-slurm), never in
# /etc/slurm: a machine's own SLURM setup is left alone. Needs root (the daemons, and apt-get for what is
# missing). Ports 6817/6818 unless PERFORMER_SLURM_PORT says otherwise (slurmd takes the next one).
set -euo pipefail
DIR="${PERFORMER_SLURM_DIR:-/var/tmp/performer-slurm}"
PORT="${PERFORMER_SLURM_PORT:-6817}"
CONF="${DIR}/slurm.conf"
export SLURM_CONF="${CONF}"
log() { printf '[slurm-cluster] %s\n' "$*" >&2; }
die() { printf 'slurm-cluster: %s\n' "$*" >&2; exit 1; }

# Whether the pid in pid file $1 is running and is program $2 (a stale file's pid may have been reused).
running() { [[ -s "$1" ]] && [[ "$(cat "/proc/$(cat "$1")/comm" 2>/dev/null)" == "$2" ]]; }

install_missing() {
  local missing=()
  command -v slurmctld >/dev/null || missing+=(slurmctld)
  command -v slurmd >/dev/null || missing+=(slurmd)
  command -v sbatch >/dev/null || missing+=(slurm-client)
  command -v munged >/dev/null || missing+=(munge)
  ((${#missing[@]} == 0)) && return 0
  [[ $(id -u) == 0 ]] || die "needs root to install ${missing[*]}"
  log "installing ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >&2 || {
    apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >&2
  }
}

write_config() {
  local host cpus mem
  host="$(hostname -s)"
  cpus="$(nproc)"
  mem=$(( $(awk '/^MemTotal:/ {print $2}' /proc/meminfo) / 1024 * 9 / 10 ))  # MB, a tenth kept back
  mkdir -p "${DIR}/state" "${DIR}/spool"
  cat > "${CONF}" <<EOF
# Written by scripts/slurm-cluster.sh: one node, this machine.
ClusterName=performer
SlurmctldHost=${host}(127.0.0.1)
SlurmctldPort=${PORT}
SlurmdPort=$((PORT + 1))
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=${DIR}/state
SlurmdSpoolDir=${DIR}/spool
SlurmctldPidFile=${DIR}/slurmctld.pid
SlurmdPidFile=${DIR}/slurmd.pid
SlurmctldLogFile=${DIR}/slurmctld.log
SlurmdLogFile=${DIR}/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
JobRequeue=1
KillWait=30
MinJobAge=300
NodeName=${host} NodeAddr=127.0.0.1 CPUs=${cpus} RealMemory=${mem} State=UNKNOWN
PartitionName=main Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
}

start_munge() {
  if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then return 0; fi  # a munged answers already
  [[ -s /etc/munge/munge.key ]] || { log "creating /etc/munge/munge.key"; mungekey --create >&2 || create-munge-key >&2; }
  chown munge:munge /etc/munge/munge.key 2>/dev/null || true
  mkdir -p /run/munge /var/log/munge /var/lib/munge
  chown munge:munge /run/munge /var/log/munge /var/lib/munge
  runuser -u munge -- /usr/sbin/munged
  touch "${DIR}/munged.ours"
}

start() {
  [[ $(id -u) == 0 ]] || die "needs root (the daemons run as root)"
  install_missing
  mkdir -p "${DIR}"
  write_config
  start_munge
  munge -n | unmunge >/dev/null || die "munge does not work (see /var/log/munge/munged.log)"
  running "${DIR}/slurmctld.pid" slurmctld || slurmctld -f "${CONF}" || die "slurmctld did not start (see ${DIR}/slurmctld.log)"
  running "${DIR}/slurmd.pid" slurmd || slurmd -f "${CONF}" || die "slurmd did not start (see ${DIR}/slurmd.log)"
  local state=""
  for _ in $(seq 1 120); do
    state="$(sinfo -h -N -o '%t' 2>/dev/null | head -n 1 || true)"
    if [[ "${state}" == idle ]]; then
      log "node $(hostname -s) idle ($(nproc) CPUs); use: export SLURM_CONF=${CONF}"
      echo "export SLURM_CONF=${CONF}"
      return 0
    fi
    if [[ "${state}" == down* || "${state}" == drain* ]]; then scontrol update nodename="$(hostname -s)" state=resume 2>/dev/null || true; fi
    sleep 0.5
  done
  die "the node did not become idle within 60 s (state '${state}'; see ${DIR}/slurmctld.log and ${DIR}/slurmd.log)"
}

stop() {
  if [[ -f "${CONF}" ]] && running "${DIR}/slurmctld.pid" slurmctld; then
    scancel --quiet --user "$(id -un)" 2>/dev/null || true
    for _ in $(seq 1 90); do  # the jobs' tasks get SIGTERM, then SIGKILL after KillWait (30 s)
      [[ -z "$(squeue -h -o %i 2>/dev/null)" ]] && break
      sleep 0.5
    done
  fi
  local f pid
  for f in slurmd slurmctld; do
    if running "${DIR}/${f}.pid" "${f}"; then
      pid="$(cat "${DIR}/${f}.pid")"
      kill -TERM "${pid}"
      for _ in $(seq 1 100); do running "${DIR}/${f}.pid" "${f}" || break; sleep 0.1; done
      running "${DIR}/${f}.pid" "${f}" && kill -KILL "${pid}"
    fi
    rm -f "${DIR}/${f}.pid"
  done
  if [[ -f "${DIR}/munged.ours" ]]; then  # the munged that `start` started (its own pid file)
    if running /run/munge/munged.pid munged; then kill -TERM "$(cat /run/munge/munged.pid)"; fi
    for _ in $(seq 1 50); do munge -n >/dev/null 2>&1 || break; sleep 0.1; done
    rm -f "${DIR}/munged.ours"
  fi
  rm -rf "${DIR}/state" "${DIR}/spool"
  log "stopped"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  *) die "usage: scripts/slurm-cluster.sh start|stop" ;;
esac
