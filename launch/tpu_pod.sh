#!/usr/bin/env bash
# Run rl_jax on every worker of a Cloud TPU VM slice: create (or reuse) the slice, ship the code
# to all workers, install, then run the same command on all workers. JAX finds its peers from
# the TPU metadata, so the command is identical on every worker (no RL_JAX_* variables).
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: launch/tpu_pod.sh --tpu NAME --project ID --zone ZONE --config FILE --workdir DIR
                         (--repo URL [--ref REF] | --src DIR | --skip-setup) [options] [-- OVERRIDES...]

Steps (each printed, not run, with --dry-run):
  1. gcloud compute tpus tpu-vm describe NAME, or create it when missing
     (creation needs --accelerator-type and --runtime-version);
  2. on all workers: git clone/update --repo (or copy the local tree --src), pip install;
  3. on all workers: python -m rl_jax.main --config=FILE --workdir=DIR [OVERRIDES...],
     output streamed here by `gcloud ... ssh --worker=all` and tee'd to ~/rl_jax_run.log.

Flags (environment fallback in brackets; nothing has a built-in default value):
  --tpu NAME               slice name [TPU_NAME]
  --project ID             GCP project [CLOUDSDK_CORE_PROJECT]
  --zone ZONE              zone, e.g. us-central2-b [CLOUDSDK_COMPUTE_ZONE]
  --accelerator-type T     e.g. v5litepod-16, v4-32, v5p-64 [TPU_ACCELERATOR_TYPE]
  --runtime-version V      TPU VM image, e.g. v2-alpha-tpuv5-lite [TPU_RUNTIME_VERSION]
  --spot                   create a Spot slice
  --repo URL               git URL cloned on every worker [RL_JAX_REPO]
  --ref REF                branch / tag / commit to check out
  --src DIR                instead of --repo: tar DIR here and copy it to every worker
  --skip-setup             code is already installed on the workers
  --remote-dir DIR         code location on the workers, relative to home (default rl_jax)
  --python BIN             interpreter on the workers (default python3)
  --config FILE            config file, relative to the repo root
  --workdir DIR            output directory; use gs://... on multi-worker slices (shared)
  --dry-run                print the commands instead of running them; also honoured after
                           "--" (--dry-run or --dry_run there is taken as this flag, with a
                           note on stderr, and not passed to rl_jax.main)
  -h, --help               this message
Everything else after "--" is passed to rl_jax.main.
EOF
}

die() { echo "tpu_pod.sh: error: $*" >&2; exit 2; }

tpu="${TPU_NAME:-}" project="${CLOUDSDK_CORE_PROJECT:-}" zone="${CLOUDSDK_COMPUTE_ZONE:-}"
accel="${TPU_ACCELERATOR_TYPE:-}" runtime="${TPU_RUNTIME_VERSION:-}" spot=0
repo="${RL_JAX_REPO:-}" ref="" src="" skip_setup=0 remote_dir="rl_jax" python_bin="python3"
config="" workdir="" dry_run=0 overrides=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --tpu) tpu="${2:-}"; shift 2 ;;
    --project) project="${2:-}"; shift 2 ;;
    --zone) zone="${2:-}"; shift 2 ;;
    --accelerator-type) accel="${2:-}"; shift 2 ;;
    --runtime-version) runtime="${2:-}"; shift 2 ;;
    --spot) spot=1; shift ;;
    --repo) repo="${2:-}"; shift 2 ;;
    --ref) ref="${2:-}"; shift 2 ;;
    --src) src="${2:-}"; shift 2 ;;
    --skip-setup) skip_setup=1; shift ;;
    --remote-dir) remote_dir="${2:-}"; shift 2 ;;
    --python) python_bin="${2:-}"; shift 2 ;;
    --config) config="${2:-}"; shift 2 ;;
    --workdir) workdir="${2:-}"; shift 2 ;;
    --dry-run|--dry_run) dry_run=1; shift ;;
    -h|--help) usage; exit 0 ;;
    --) shift; overrides=("$@"); break ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
done
# A --dry-run among the overrides would otherwise create a slice and start a paid run (rl_jax.main
# would only check its config there), so anywhere on the command line it means this dry run.
kept=()
for o in "${overrides[@]+"${overrides[@]}"}"; do
  if [[ "$o" == --dry-run || "$o" == --dry_run ]]; then
    dry_run=1
    echo "tpu_pod.sh: note: '$o' after '--' is taken as this launcher's --dry-run" \
         "(commands printed, nothing created or run) and is not passed to rl_jax.main" >&2
  else
    kept+=("$o")
  fi
done
overrides=("${kept[@]+"${kept[@]}"}")

[[ -n "$tpu" ]] || die "--tpu (or TPU_NAME) is required"
[[ -n "$project" ]] || die "--project (or CLOUDSDK_CORE_PROJECT) is required"
[[ -n "$zone" ]] || die "--zone (or CLOUDSDK_COMPUTE_ZONE) is required"
[[ -n "$config" ]] || die "--config is required (a config file relative to the repo root)"
[[ -n "$workdir" ]] || die "--workdir is required (gs://bucket/path on multi-worker slices)"
if [[ "$skip_setup" == 0 ]]; then
  [[ -n "$repo" || -n "$src" ]] || die "one of --repo URL, --src DIR or --skip-setup is required"
  [[ -z "$repo" || -z "$src" ]] || die "--repo and --src are exclusive"
  [[ -z "$src" || -d "$src" ]] || die "--src '$src' is not a directory"
fi

# Hosts of a slice: v2/v3 names count TensorCores (8 per host), v4/v5p count TensorCores (2 per
# chip, 4 chips per host), v5e/v6e count chips (up to 8 chips on one host, else 4 per host).
workers_for() {
  local t="$1" n
  n="${t##*-}"
  [[ "$n" =~ ^[0-9]+$ ]] || { echo ""; return; }
  case "$t" in
    v2-*|v3-*) echo $(( n < 8 ? 1 : n / 8 )) ;;
    v4-*|v5p-*) echo $(( n / 2 <= 4 ? 1 : n / 8 )) ;;
    v5litepod-*|v5e-*|v6e-*) echo $(( n <= 8 ? 1 : n / 4 )) ;;
    *) echo "" ;;
  esac
}

q() { printf '%q' "$1"; }
# Single-quoted form for printing a long --command readably (still exact shell).
sq() { local s="${1//\'/\'\\\'\'}"; printf "'%s'" "$s"; }
gcloud_tpu=(gcloud compute tpus tpu-vm)
where=("--project=$project" "--zone=$zone")

main_cmd="cd $(q "$remote_dir") && $(q "$python_bin") -m rl_jax.main $(q "--config=$config") $(q "--workdir=$workdir")"
for o in "${overrides[@]+"${overrides[@]}"}"; do main_cmd+=" $(q "$o")"; done
run_cmd="set -o pipefail; $main_cmd 2>&1 | tee \$HOME/rl_jax_run.log"

pip_cmd="$(q "$python_bin") -m pip install -U -e . 'jax[tpu]>=0.10.2,<0.11'"
if [[ -n "$repo" ]]; then
  checkout="git pull --ff-only"
  [[ -n "$ref" ]] && checkout="git fetch origin && git checkout $(q "$ref")"
  setup_cmd="(test -d $(q "$remote_dir")/.git || git clone $(q "$repo") $(q "$remote_dir")) && cd $(q "$remote_dir") && $checkout && $pip_cmd"
else
  setup_cmd="mkdir -p $(q "$remote_dir") && tar xzf \$HOME/rl_jax_src.tgz -C $(q "$remote_dir") && cd $(q "$remote_dir") && $pip_cmd"
fi

create=("${gcloud_tpu[@]}" create "$tpu" "${where[@]}" "--accelerator-type=$accel" "--version=$runtime")
[[ "$spot" == 1 ]] && create+=(--spot)
describe=("${gcloud_tpu[@]}" describe "$tpu" "${where[@]}")
ssh_all=("${gcloud_tpu[@]}" ssh "$tpu" "${where[@]}" --worker=all)
tarball="${TMPDIR:-/tmp}/rl_jax_src.tgz"

if [[ "$dry_run" == 1 ]]; then
  workers="$(workers_for "$accel")"
  echo "# slice $tpu ($accel${accel:+, }${workers:-?} workers), project $project, zone $zone"
  if [[ -n "$accel" && -n "$runtime" ]]; then
    echo "$(printf '%q ' "${describe[@]}")|| $(printf '%q ' "${create[@]}")"
  else
    echo "$(printf '%q ' "${describe[@]}")# must exist: no --accelerator-type/--runtime-version to create it"
  fi
  if [[ "$skip_setup" == 0 ]]; then
    if [[ -n "$src" ]]; then
      echo "tar czf $(q "$tarball") --exclude=.git -C $(q "$src") ."
      printf '%q ' "${gcloud_tpu[@]}" scp "$tarball" "$tpu:rl_jax_src.tgz" "${where[@]}" --worker=all; echo
    fi
    echo "$(printf '%q ' "${ssh_all[@]}")--command=$(sq "$setup_cmd")"
  fi
  echo "$(printf '%q ' "${ssh_all[@]}")--command=$(sq "$run_cmd")"
  if [[ -n "$workers" ]]; then
    for ((i = 0; i < workers; i++)); do echo "[worker $i] $main_cmd"; done
  else
    echo "[worker all] $main_cmd"
  fi
  exit 0
fi

if "${describe[@]}" >/dev/null 2>&1; then
  echo "reusing TPU slice $tpu"
else
  [[ -n "$accel" ]] || die "slice '$tpu' does not exist; --accelerator-type is needed to create it"
  [[ -n "$runtime" ]] || die "slice '$tpu' does not exist; --runtime-version is needed to create it"
  "${create[@]}"
fi
if [[ "$skip_setup" == 0 ]]; then
  if [[ -n "$src" ]]; then
    tar czf "$tarball" --exclude=.git -C "$src" .
    "${gcloud_tpu[@]}" scp "$tarball" "$tpu:rl_jax_src.tgz" "${where[@]}" --worker=all
  fi
  "${ssh_all[@]}" "--command=$setup_cmd"
fi
"${ssh_all[@]}" "--command=$run_cmd"
