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
logging to LOGDIR/process_<i>.log; the pid of each is printed. The first process to fail is
reported at once (index, pid, exit code, log path and its last lines), the others are stopped
(SIGTERM, then SIGKILL after --stop-timeout s) and the launcher exits with that exit code.
SIGINT, SIGTERM and SIGHUP are forwarded to all processes (a second one: SIGKILL at once), and
the launcher exits only once none is left. Exits 0 when all processes exit 0.

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
  --stop-timeout S      seconds between SIGTERM/SIGINT and SIGKILL when stopping (default 10)
  --dry-run             print the per-process commands instead of running them
  -h, --help            this message
Everything after "--" is passed to rl_jax.main (e.g. --config.seed=1).
EOF
}

die() { echo "local_multiprocess.sh: error: $*" >&2; exit 2; }

num_processes="" config="" workdir="" port="${RL_JAX_PORT:-12355}" logdir=""
cpu_devices="" gpu_per_process=0 python_bin="${PYTHON:-python}" dry_run=0 stop_timeout=10
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
    --stop-timeout) stop_timeout="${2:-}"; shift 2 ;;
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
[[ "$stop_timeout" =~ ^[0-9]+$ ]] || die "--stop-timeout must be a whole number of seconds, got '$stop_timeout'"
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
# Process i is pids[i]; live holds the indices of those not yet seen to end; codes[i] is the exit
# code of process i once wait_any has seen it end.
pids=() live=() codes=()
# Children are in this script's process group (a kill of the whole group reaches them). Where
# setpriv can, each also gets SIGTERM from the kernel if this script dies, even by SIGKILL.
guard=""
if setpriv --pdeathsig TERM true >/dev/null 2>&1; then guard="setpriv --pdeathsig TERM"; fi

note() { echo "local_multiprocess.sh: $*" >&2; }
live_pids() { local i; for i in "${live[@]+"${live[@]}"}"; do printf ' %s' "${pids[$i]}"; done; }
# Drops from `live` the processes that have ended (bash reaps its children as they exit, so
# kill -0 fails for those); the first non-zero exit found is in failed_index / failed_code.
failed_index="" failed_code=0
collect() {
  local i code still=()
  for i in "${live[@]+"${live[@]}"}"; do
    if [[ -n "${codes[$i]+set}" ]]; then
      code="${codes[$i]}"
    elif kill -0 "${pids[$i]}" 2>/dev/null; then
      still+=("$i"); continue
    else
      code=0; wait "${pids[$i]}" 2>/dev/null || code=$?
    fi
    if [[ "$code" != 0 && -z "$failed_index" ]]; then failed_index="$i" failed_code="$code"; fi
    [[ "$code" == 0 ]] && echo "process $i (pid ${pids[$i]}) finished"
  done
  live=("${still[@]+"${still[@]}"}")
}
# Sends signal $1 to every live process, waits up to stop_timeout s for them to end, then
# SIGKILLs what is left and waits for that. Returns once no process is left.
stop_all() {
  local sig="$1" i ticks=0  # ticks of 0.1 s since the signal
  collect
  [[ ${#live[@]} -gt 0 ]] || return 0
  note "sending SIG$sig to pids$(live_pids)"
  for i in "${live[@]}"; do kill -s "$sig" "${pids[$i]}" 2>/dev/null || true; done
  while collect && [[ ${#live[@]} -gt 0 && $ticks -lt $((stop_timeout * 10)) ]]; do
    sleep 0.1; ticks=$((ticks + 1))
  done
  if [[ ${#live[@]} -gt 0 ]]; then
    note "sending SIGKILL to pids$(live_pids) (still running $((ticks / 10))s after SIG$sig)"
    for i in "${live[@]}"; do kill -s KILL "${pids[$i]}" 2>/dev/null || true; done
    while collect && [[ ${#live[@]} -gt 0 ]]; do sleep 0.1; done
  fi
}
on_signal() {  # $1: INT, TERM or HUP, forwarded to every process
  trap 'stop_timeout=0' INT TERM HUP  # a second signal: SIGKILL at once
  note "got SIG$1, forwarding it to the processes"
  stop_all "$1"
  trap - EXIT
  exit $((128 + $(kill -l "$1")))
}
trap 'on_signal INT' INT
trap 'on_signal TERM' TERM
trap 'on_signal HUP' HUP
trap 'stop_all TERM' EXIT  # any other way out (errors included) leaves no process behind

for ((i = 0; i < num_processes; i++)); do
  log="$logdir/process_$i.log"
  # SIGINT/SIGQUIT are reset: bash starts background commands with them ignored.
  ( trap - INT QUIT; eval "exec $guard $(command_for "$i")" ) >"$log" 2>&1 &
  pids+=("$!") live+=("$i")
  echo "started process $i (pid $!), log: $log"
done

# Blocks until some process ends, noting its exit code (a signal interrupts it: the trap runs at
# once). Bash < 5.1 has no `wait -n -p`: there it polls.
if (( BASH_VERSINFO[0] > 5 || (BASH_VERSINFO[0] == 5 && BASH_VERSINFO[1] >= 1) )); then
  wait_any() {
    local who="" rc=0 i
    wait -n -p who 2>/dev/null || rc=$?
    if [[ -z "$who" ]]; then
      if [[ "$rc" == 127 ]]; then sleep 0.1; fi  # no child left to wait for (not expected)
      return 0
    fi
    for i in "${!pids[@]}"; do
      if [[ "${pids[$i]}" == "$who" ]]; then codes[$i]="$rc"; fi
    done
  }
else
  wait_any() { sleep 0.2; }
fi
while [[ ${#live[@]} -gt 0 ]]; do
  wait_any
  collect
  if [[ -n "$failed_index" ]]; then
    log="$logdir/process_$failed_index.log"
    how="exit code $failed_code"
    if (( failed_code > 128 )); then
      how+=" (SIG$(kill -l $((failed_code - 128)) 2>/dev/null || echo "?"))"
    fi
    note "process $failed_index (pid ${pids[$failed_index]}) failed with $how; log: $log"
    echo "----- last lines of $log -----" >&2
    tail -n 20 "$log" >&2 || true
    echo "-----" >&2
    [[ ${#live[@]} -eq 0 ]] || note "stopping the other processes"
    stop_all TERM
    trap - EXIT
    exit "$failed_code"
  fi
done
trap - EXIT
echo "all $num_processes processes finished"
