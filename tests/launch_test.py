"""Launchers: dry runs print the right per-worker commands; missing flags fail clearly."""
import os
import pathlib
import re
import shlex
import subprocess

import pytest

LAUNCH = pathlib.Path(__file__).resolve().parent.parent / "launch"
# Variables the scripts read as fallbacks: cleared so the host's environment cannot leak in.
_FALLBACK_VARS = ("TPU_NAME", "CLOUDSDK_CORE_PROJECT", "CLOUDSDK_COMPUTE_ZONE",
                  "TPU_ACCELERATOR_TYPE", "TPU_RUNTIME_VERSION", "RL_JAX_REPO", "RL_JAX_PORT",
                  "PYTHON", "SLURM_JOB_ID", "SLURM_JOB_NUM_NODES", "SLURM_GPUS_ON_NODE",
                  "SLURM_GPUS_PER_NODE")


@pytest.fixture(autouse=True)
def _trap_cluster_tools(tmp_path, monkeypatch):
  """gcloud/srun/sbatch/kubectl stand-ins that record any call: dry runs must make none."""
  bin_dir = tmp_path / "bin"
  bin_dir.mkdir()
  calls = tmp_path / "calls"
  for tool in ("gcloud", "srun", "sbatch", "kubectl"):
    (bin_dir / tool).write_text(f"#!/bin/sh\necho {tool} >> '{calls}'\nexit 1\n")
    (bin_dir / tool).chmod(0o755)
  monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
  yield
  assert not calls.exists(), calls.read_text()


def _run(script, *args, env=None):
  clean = {k: v for k, v in os.environ.items() if k not in _FALLBACK_VARS}
  clean.update(env or {})
  return subprocess.run(["bash", str(LAUNCH / script), *args], env=clean, text=True,
                        capture_output=True, timeout=30)


def _tagged(out, tag):
  return [line for line in out.splitlines() if line.startswith(f"[{tag} ")]


def test_local_multiprocess_dry_run():
  r = _run("local_multiprocess.sh", "--dry-run", "--num-processes", "3", "--config",
           "configs/c.py", "--workdir", "/tmp/run 1", "--port", "4321", "--cpu-devices", "2",
           "--", "--config.seed=7")
  assert r.returncode == 0, r.stderr
  lines = _tagged(r.stdout, "process")
  assert len(lines) == 3
  for i, line in enumerate(lines):
    words = shlex.split(line.split("] ", 1)[1])
    assert words[:1] == ["env"]
    assert f"RL_JAX_PROCESS_ID={i}" in words and "RL_JAX_NUM_PROCESSES=3" in words
    assert "RL_JAX_COORDINATOR=127.0.0.1:4321" in words
    assert "XLA_FLAGS=--xla_force_host_platform_device_count=2" in words
    main = words[words.index("-m"):]
    assert main[:5] == ["-m", "rl_jax.main", "--config=configs/c.py", "--workdir=/tmp/run 1",
                        "--config.seed=7"]
    assert words[-3:] == [">", f"/tmp/run 1/logs/process_{i}.log", "2>&1"]


def test_local_multiprocess_errors():
  r = _run("local_multiprocess.sh", "--num-processes", "2", "--workdir", "w")
  assert r.returncode == 2 and "--config is required" in r.stderr
  r = _run("local_multiprocess.sh", "--num-processes", "zero", "--config", "c", "--workdir", "w")
  assert r.returncode == 2 and "positive integer" in r.stderr
  assert _run("local_multiprocess.sh", "--help").stdout.startswith("Usage:")


_TPU_ARGS = ("--tpu", "slice-a", "--project", "proj-1", "--zone", "zone-1",
             "--accelerator-type", "v5litepod-16", "--runtime-version", "rt-1",
             "--repo", "https://git.example/r.git", "--config", "configs/c.py",
             "--workdir", "gs://bucket/run")


def test_tpu_pod_dry_run():
  r = _run("tpu_pod.sh", "--dry-run", *_TPU_ARGS, "--", "--config.seed=7")
  assert r.returncode == 0, r.stderr
  workers = _tagged(r.stdout, "worker")
  assert len(workers) == 4  # v5litepod-16: 16 chips, 4 per host
  for line in workers:
    assert line.endswith("python3 -m rl_jax.main --config=configs/c.py --workdir=gs://bucket/run "
                         "--config.seed=7")
  gcloud = [shlex.split(l) for l in r.stdout.splitlines() if l.startswith("gcloud")]
  assert gcloud[0][:5] == ["gcloud", "compute", "tpus", "tpu-vm", "describe"]
  assert "create" in gcloud[0] and "--accelerator-type=v5litepod-16" in gcloud[0]
  ssh = [g for g in gcloud if g[4] == "ssh"]
  assert len(ssh) == 2  # setup, then run
  for cmd in ssh:
    assert {"slice-a", "--project=proj-1", "--zone=zone-1", "--worker=all"} <= set(cmd)
  assert "git clone https://git.example/r.git rl_jax" in ssh[0][-1]
  assert "rl_jax.main --config=configs/c.py" in ssh[1][-1] and "tee" in ssh[1][-1]


def test_tpu_pod_env_fallbacks_and_src_copy(tmp_path):
  r = _run("tpu_pod.sh", "--dry-run", "--src", str(tmp_path), "--config", "c.py",
           "--workdir", "gs://b/r", "--accelerator-type", "v4-32",
           env={"TPU_NAME": "s2", "CLOUDSDK_CORE_PROJECT": "p2", "CLOUDSDK_COMPUTE_ZONE": "z2"})
  assert r.returncode == 0, r.stderr
  assert len(_tagged(r.stdout, "worker")) == 4  # v4-32: 16 chips, 4 per host
  assert re.search(r"tpu-vm scp \S+rl_jax_src.tgz s2:rl_jax_src.tgz --project=p2 --zone=z2 "
                   r"--worker=all", r.stdout)
  assert "must exist" in r.stdout  # no runtime version: cannot create


@pytest.mark.parametrize("missing, message", [
    ("--project", "--project (or CLOUDSDK_CORE_PROJECT) is required"),
    ("--zone", "--zone (or CLOUDSDK_COMPUTE_ZONE) is required"),
    ("--workdir", "--workdir is required"),
    ("--repo", "one of --repo URL, --src DIR or --skip-setup is required")])
def test_tpu_pod_missing_flags(missing, message):
  args = list(_TPU_ARGS)
  i = args.index(missing)
  del args[i:i + 2]
  r = _run("tpu_pod.sh", "--dry-run", *args)
  assert r.returncode == 2 and message in r.stderr


def test_slurm_dry_run_per_gpu_and_per_node():
  r = _run("slurm_gpu.sbatch", "--dry-run", "--nodes", "2", "--gpus-per-node", "4", "--config",
           "configs/c.py", "--workdir", "/shared/r", "--port", "7000", "--", "--config.seed=7")
  assert r.returncode == 0, r.stderr
  tasks = _tagged(r.stdout, "task")
  assert len(tasks) == 8
  assert "SLURM_PROCID=5 SLURM_NTASKS=8 SLURM_LOCALID=1 CUDA_VISIBLE_DEVICES=1" in tasks[5]
  assert "node 1:" in tasks[5]
  srun = shlex.split(next(l for l in r.stdout.splitlines() if l.startswith("srun")))
  assert "--ntasks=8" in srun and "--ntasks-per-node=4" in srun
  assert srun[-6:] == ["python", "-m", "rl_jax.main", "--config=configs/c.py",
                       "--workdir=/shared/r", "--config.seed=7"]
  assert "export RL_JAX_COORDINATOR_PORT=7000" in r.stdout
  r = _run("slurm_gpu.sbatch", "--dry-run", "--per", "node", "--config", "c", "--workdir", "w",
           env={"SLURM_JOB_NUM_NODES": "3", "SLURM_GPUS_PER_NODE": "h100:8"})
  assert r.returncode == 0, r.stderr
  assert len(_tagged(r.stdout, "task")) == 3 and "CUDA_VISIBLE_DEVICES" not in r.stdout


def test_slurm_errors():
  r = _run("slurm_gpu.sbatch", "--config", "c", "--workdir", "w")
  assert r.returncode == 2 and "not inside a SLURM allocation" in r.stderr
  r = _run("slurm_gpu.sbatch", "--dry-run", "--nodes", "2", "--config", "c", "--workdir", "w")
  assert r.returncode == 2 and "--gpus-per-node" in r.stderr
  r = _run("slurm_gpu.sbatch", "--dry-run", "--nodes", "1", "--gpus-per-node", "1",
           "--workdir", "w")
  assert r.returncode == 2 and "--config is required" in r.stderr


_PLACEHOLDERS = dict(JOB_NAME="grpo-r1", IMAGE="registry.example/rl_jax:1", NUM_WORKERS="4",
                     TPU_ACCELERATOR="tpu-v5-lite-podslice", TPU_TOPOLOGY="4x4",
                     CHIPS_PER_WORKER="4", CONFIG="configs/c.py", WORKDIR="gs://b/r",
                     OVERRIDES="--config.seed=7", MAX_RESTARTS="0")


def test_gke_jobset_template():
  text = (LAUNCH / "gke_jobset.yaml").read_text()
  header, body = text.split("\napiVersion:", 1)
  used = set(re.findall(r"\$\{(\w+)\}", body))
  assert used == set(_PLACEHOLDERS)
  for name in used:  # every placeholder is documented in the header
    assert re.search(rf"^#\s+{name}\s", header, flags=re.M), name
  rendered = re.sub(r"\$\{(\w+)\}", lambda m: _PLACEHOLDERS[m.group(1)], "apiVersion:" + body)
  main = "python -m rl_jax.main --config=configs/c.py --workdir=gs://b/r --config.seed=7"
  assert main in rendered
  yaml = pytest.importorskip("yaml")
  doc = yaml.safe_load(rendered)
  assert doc["kind"] == "JobSet" and doc["metadata"]["name"] == "grpo-r1"
  job = doc["spec"]["replicatedJobs"][0]["template"]["spec"]
  assert job["parallelism"] == job["completions"] == 4
  pod = job["template"]["spec"]
  assert pod["nodeSelector"]["cloud.google.com/gke-tpu-topology"] == "4x4"
  container = pod["containers"][0]
  assert container["image"] == "registry.example/rl_jax:1"
  assert container["resources"]["limits"]["google.com/tpu"] == 4
  assert container["command"][-1].startswith("python -m rl_jax.main --config=configs/c.py")
