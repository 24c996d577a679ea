#!/usr/bin/env bash
# N JAX processes on this machine, joined through rl_jax.distributed (RL_JAX_* env vars).
# Useful to exercise the multi-host code paths (process-local data, checkpointing from every
# process) on one CPU box, or one process per GPU on a single GPU node.
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: launch/local_multiprocess.sh --num-processes N --config FILE --workdir DIR [options] [-- OVERRIDES...]

Starts N copies of
  python -m rl_jax.main --config=FILE --workdir=DIR [OVERRIDES...]
with RL_JAX_COORDINATOR=127.0.0.1:PORT, RL_JAX_NUM_PROCESSES=N, RL_JAX_PROCESS_ID=i, each
logging to LOGDIR/process_<i>.log. Exits non-zero if any process fails (and stops the others).

Required:
  --num-processes N     processes to start (>= 1)
  --config FILE         ml-collections config file
  --workdir DIR         shared output directory (checkpoints, metrics)
Options:
  --port P              coordinator port (default: $RL_JAX_PORT or 12355)
  --logdir DIR          per-process logs (default: WORKDIR/logs)
  --cpu-devices K       fake K CPU devices per process (sets JAX_PLATFORMS=cpu and XLA_FLAGS)
  --gpu-per-process     process i sees only GPU i (CUDA_VISIBLE_DEVICES=i)
  --python BIN          interpreter (default: $PYTHON or python)
  --dry-run             print the per-process commands instead of running them
  -h, --help            this message
Everything after "--" is passed to rl_jax.main (e.g. --config.seed=1).
EOF
}

die() { echo "local_multiprocess.sh: error: $*" >&2; exit 2; }

num_processes="" config="" workdir="" port="${RL_JAX_PORT:-12355}" logdir=""
cpu_devices="" gpu_per_process=0 python_bin="${PYTHON:-python}" dry_run=0
overrides=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --num-processes) num_processes="${2:-}"; shift 2 ;;
    --config) config="${2:-}"; shift 2 ;;
    --workdir) workdir="${2:-}"; shift 2 ;;
    --port) port="${2:-}"; shift 2 ;;
    --logdir) logdir="${2:-}"; shift 2 ;;
    --cpu-devices) cpu_devices="${2:-}"; shift 2 ;;
    --gpu-per-process) gpu_per_process=1; shift ;;
    --python) python_bin="${2:-}"; shift 2 ;;
    --dry-run) dry_run=1; shift ;;
    -h|--help) usage; exit 0 ;;
    --) shift; overrides=("$@"); break ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
done

[[ -n "$num_processes" ]] || die "--num-processes is required"
[[ "$num_processes" =~ ^[1-9][0-9]*$ ]] || die "--num-processes must be a positive integer, got '$num_processes'"
[[ -n "$config" ]] || die "--config is required (an ml-collections config file)"
[[ -n "$workdir" ]] || die "--workdir is required"
[[ "$port" =~ ^[0-9]+$ ]] || die "--port must be an integer, got '$port'"
[[ -z "$cpu_devices" || "$cpu_devices" =~ ^[1-9][0-9]*$ ]] || die "--cpu-devices must be a positive integer"
logdir="${logdir:-$workdir/logs}"

# The command line of process i, shell-quoted so the dry run prints something copy-pasteable.
command_for() {
  local i="$1" env=(
    "RL_JAX_COORDINATOR=127.0.0.1:$port" "RL_JAX_NUM_PROCESSES=$num_processes" "RL_JAX_PROCESS_ID=$i")
  if [[ -n "$cpu_devices" ]]; then
    env+=("JAX_PLATFORMS=cpu" "XLA_FLAGS=--xla_force_host_platform_device_count=$cpu_devices")
  fi
  [[ "$gpu_per_process" == 1 ]] && env+=("CUDA_VISIBLE_DEVICES=$i")
  local cmd=(env "${env[@]}" "$python_bin" -m rl_jax.main "--config=$config" "--workdir=$workdir")
  [[ ${#overrides[@]} -gt 0 ]] && cmd+=("${overrides[@]}")
  printf '%q ' "${cmd[@]}"
}

if [[ "$dry_run" == 1 ]]; then
  echo "# $num_processes processes, coordinator 127.0.0.1:$port, logs in $logdir"
  for ((i = 0; i < num_processes; i++)); do
    echo "[process $i] $(command_for "$i")> $(printf '%q' "$logdir/process_$i.log") 2>&1"
  done
  exit 0
fi

mkdir -p "$logdir"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
}
trap cleanup INT TERM
for ((i = 0; i < num_processes; i++)); do
  eval "$(command_for "$i")" >"$logdir/process_$i.log" 2>&1 &
  pids+=("$!")
  echo "started process $i (pid $!), log: $logdir/process_$i.log"
done
status=0
for i in "${!pids[@]}"; do
  if ! wait "${pids[$i]}"; then
    echo "process $i failed; last lines of $logdir/process_$i.log:" >&2
    tail -n 20 "$logdir/process_$i.log" >&2 || true
    status=1
    cleanup
  fi
done
exit "$status"
