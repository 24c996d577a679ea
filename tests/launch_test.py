"""Launchers: dry runs print the right per-worker commands; missing flags fail clearly;
local_multiprocess.sh reports the first failure and leaves no process behind."""
import os
import pathlib
import re
import shlex
import shutil
import signal
import subprocess
import time

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


def _env(env=None):
  clean = {k: v for k, v in os.environ.items() if k not in _FALLBACK_VARS}
  clean.update(env or {})
  return clean


def _run(script, *args, env=None):
  return subprocess.run(["bash", str(LAUNCH / script), *args], env=_env(env), text=True,
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


# A stand-in interpreter: records its pid (which the launcher must print) in
# $FAKE_PID_DIR/<process id>, then sleeps 60 s as that same pid, except process $FAKE_FAIL_ID,
# which fails with exit code 3 after 1 s.
_FAKE_PYTHON = """#!/usr/bin/env bash
echo "$$" > "$FAKE_PID_DIR/$RL_JAX_PROCESS_ID"
echo "fake process $RL_JAX_PROCESS_ID: $*"
if [[ "$RL_JAX_PROCESS_ID" == "${FAKE_FAIL_ID:-}" ]]; then sleep 1; echo "boom"; exit 3; fi
exec sleep 60
"""


def _alive(pid):
  """Whether `pid` still runs (a zombie waiting for init to reap it counts as dead)."""
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  try:
    return pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
  except (FileNotFoundError, IndexError):
    return not pathlib.Path("/proc/self").exists()


def _wait_until(predicate, timeout=30.0):  # generous: the suite runs on 2 busy cores (-n 2)
  deadline = time.monotonic() + timeout
  while not predicate():
    if time.monotonic() > deadline:
      return False
    time.sleep(0.02)
  return True


class _Launcher:
  """local_multiprocess.sh with the fake interpreter; kills whatever is left when done."""

  def __init__(self, tmp_path, num_processes, fail_id=""):
    self.tmp_path = tmp_path
    self.num_processes = num_processes
    self.pid_dir = tmp_path / "pids"
    self.pid_dir.mkdir()
    python = tmp_path / "fake_python"
    python.write_text(_FAKE_PYTHON)
    python.chmod(0o755)
    self.out, self.err = tmp_path / "launcher.out", tmp_path / "launcher.err"
    cmd = ["bash", str(LAUNCH / "local_multiprocess.sh"), "--num-processes", str(num_processes),
           "--python", str(python), "--config", "configs/c.py", "--workdir",
           str(tmp_path / "run"), "--stop-timeout", "5", "--", "--config.seed=7"]
    env = _env({"FAKE_PID_DIR": str(self.pid_dir), "FAKE_FAIL_ID": fail_id})
    with open(self.out, "w") as out, open(self.err, "w") as err:  # files: no pipe to fill up
      # SIGINT at its default even if this test run was started with it ignored.
      self.proc = subprocess.Popen(
          cmd, env=env, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
          preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    self.start = time.monotonic()

  def pids(self):
    """The recorded pid of every process, once all have started (empty list if they did not)."""
    def recorded():
      files = [self.pid_dir / str(i) for i in range(self.num_processes)]
      return all(f.exists() and f.read_text().strip() for f in files)
    if not _wait_until(recorded):
      return []
    return [int((self.pid_dir / str(i)).read_text()) for i in range(self.num_processes)]

  def output(self):
    return self.out.read_text(), self.err.read_text()

  def __enter__(self):
    return self

  def __exit__(self, *exc):
    if self.proc.poll() is None:
      self.proc.kill()
      self.proc.wait()
    for f in self.pid_dir.iterdir():
      try:
        os.kill(int(f.read_text()), signal.SIGKILL)
      except (ValueError, ProcessLookupError):
        pass


def _assert_started_lines(out, pids, tmp_path):
  """The launcher printed each process's pid: the pid the process itself recorded."""
  for i, pid in enumerate(pids):
    assert f"started process {i} (pid {pid}), log: {tmp_path}/run/logs/process_{i}.log" in out, out


def test_local_multiprocess_first_failure_stops_the_others(tmp_path):
  with _Launcher(tmp_path, 3, fail_id="1") as launcher:
    pids = launcher.pids()
    assert len(pids) == 3, launcher.output()
    code = launcher.proc.wait(timeout=40)
    elapsed = time.monotonic() - launcher.start
    out, err = launcher.output()
    assert code == 3, (out, err)  # the failing process's exit code
    assert elapsed < 40, (elapsed, out, err)  # not the 60 s the others would sleep
    _assert_started_lines(out, pids, tmp_path)
    log = tmp_path / "run" / "logs" / "process_1.log"
    assert f"process 1 (pid {pids[1]}) failed with exit code 3; log: {log}" in err, err
    assert "boom" in err  # the end of its log
    assert "fake process 1: -m rl_jax.main --config=configs/c.py" in log.read_text()
    # The launcher exits only once it has reaped every process: none may be left at all.
    assert [pid for pid in pids if _alive(pid)] == [], (out, err)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["TERM", "INT"])
def test_local_multiprocess_forwards_signals(tmp_path, sig):
  with _Launcher(tmp_path, 2) as launcher:
    pids = launcher.pids()
    assert len(pids) == 2, launcher.output()
    assert launcher.proc.poll() is None and all(_alive(pid) for pid in pids)
    launcher.proc.send_signal(sig)
    code = launcher.proc.wait(timeout=40)
    out, err = launcher.output()
    assert code == 128 + sig, (out, err)
    assert f"got {sig.name}, forwarding it" in err, err
    _assert_started_lines(out, pids, tmp_path)
    assert _wait_until(lambda: not any(_alive(pid) for pid in pids)), (pids, out, err)


@pytest.mark.skipif(subprocess.run("setpriv --pdeathsig TERM true", shell=True,
                                   capture_output=True).returncode != 0,
                    reason="needs setpriv --pdeathsig (util-linux, Linux)")
def test_local_multiprocess_sigkilled_launcher_leaves_no_process(tmp_path):
  with _Launcher(tmp_path, 2) as launcher:
    pids = launcher.pids()
    assert len(pids) == 2, launcher.output()
    launcher.proc.kill()  # no trap can run: the kernel's parent-death signal stops them
    launcher.proc.wait(timeout=40)
    assert _wait_until(lambda: not any(_alive(pid) for pid in pids)), (pids, launcher.output())


def test_local_multiprocess_success(tmp_path):
  python = tmp_path / "ok_python"
  python.write_text("#!/usr/bin/env bash\necho \"ok $RL_JAX_PROCESS_ID $*\"\n")
  python.chmod(0o755)
  r = _run("local_multiprocess.sh", "--num-processes", "2", "--python", str(python),
           "--config", "c.py", "--workdir", str(tmp_path / "run"))
  assert r.returncode == 0, r.stderr
  assert "all 2 processes finished" in r.stdout
  assert (tmp_path / "run" / "logs" / "process_1.log").read_text() == (
      "ok 1 -m rl_jax.main --config=c.py --workdir=" + str(tmp_path / "run") + "\n")


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


def _gcloud_that_records(tmp_path):
  """A gcloud first on PATH that appends its argv to a file and succeeds, except `describe`: the
  slice does not exist, so a run that is not dry would go on to `create` it."""
  bin_dir = tmp_path / "recording_bin"
  bin_dir.mkdir()
  calls = tmp_path / "gcloud_argv"
  (bin_dir / "gcloud").write_text(
      f'#!/bin/sh\necho "$*" >> \'{calls}\'\ncase "$*" in *" describe "*) exit 1 ;; esac\n'
      "exit 0\n")
  (bin_dir / "gcloud").chmod(0o755)
  return {"PATH": f"{bin_dir}:{os.environ['PATH']}"}, calls


def test_tpu_pod_recording_gcloud_sees_a_real_run(tmp_path):
  """Without --dry-run the stand-in is called (describe, then create): the test below means it."""
  env, calls = _gcloud_that_records(tmp_path)
  r = _run("tpu_pod.sh", *_TPU_ARGS, "--skip-setup", "--", "--config.seed=7", env=env)
  assert r.returncode == 0, r.stderr
  argv = calls.read_text().splitlines()
  assert [a.split()[3] for a in argv] == ["describe", "create", "ssh"], argv


@pytest.mark.parametrize("overrides", [("--dry-run", "--config.seed=7"),
                                       ("--config.seed=7", "--dry_run")])
def test_tpu_pod_dry_run_after_double_dash(tmp_path, overrides):
  env, calls = _gcloud_that_records(tmp_path)
  r = _run("tpu_pod.sh", *_TPU_ARGS, "--", *overrides, env=env)
  assert r.returncode == 0, r.stderr
  assert not calls.exists(), calls.read_text()  # no gcloud call at all: nothing created
  flag = next(o for o in overrides if "dry" in o)
  assert f"'{flag}' after '--' is taken as this launcher's --dry-run" in r.stderr
  workers = _tagged(r.stdout, "worker")
  assert len(workers) == 4
  for line in workers:  # the flag is not passed on to rl_jax.main
    assert line.endswith("python3 -m rl_jax.main --config=configs/c.py --workdir=gs://bucket/run "
                         "--config.seed=7")
  assert "dry" not in r.stdout  # nor to the printed gcloud commands
  assert "create slice-a" in r.stdout  # what it would have run, printed


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
