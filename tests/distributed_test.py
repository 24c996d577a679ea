"""Launch detection (pure) and one real 2-process gloo run on localhost."""
import json
import os
import socket
import subprocess
import sys
import textwrap

import pytest

from rl_jax import distributed as dist


@pytest.mark.parametrize("nodelist, hosts", [
    ("node01", ["node01"]),
    ("a,b", ["a", "b"]),
    ("node[01-04]", ["node01", "node02", "node03", "node04"]),
    ("gpu[8-10,15],cpu-x", ["gpu8", "gpu9", "gpu10", "gpu15", "cpu-x"]),
    ("rack1-n[007-008]-ib,login", ["rack1-n007-ib", "rack1-n008-ib", "login"]),
])
def test_expand_nodelist(nodelist, hosts):
  assert dist.expand_nodelist(nodelist) == hosts


@pytest.mark.parametrize("bad", ["node[01-02", "n[a-b]", "x[1]y[2]", ","])
def test_expand_nodelist_rejects(bad):
  with pytest.raises(ValueError, match="SLURM node list"):
    dist.expand_nodelist(bad)


def test_single_process_when_nothing_is_set():
  assert dist.detect({}) == dist.Launch("single")
  assert dist.detect({"SLURM_NTASKS": "1", "SLURM_PROCID": "0",
                      "SLURM_JOB_NODELIST": "n1"}).kind == "single"
  assert dist.detect({"TPU_WORKER_HOSTNAMES": "only-one"}).kind == "single"


def test_explicit_args_and_env():
  env = {"RL_JAX_COORDINATOR": "10.0.0.1:1234", "RL_JAX_NUM_PROCESSES": "4",
         "RL_JAX_PROCESS_ID": "3", "SLURM_NTASKS": "8", "SLURM_PROCID": "5",
         "SLURM_JOB_NODELIST": "n[1-2]"}
  assert dist.detect(env) == dist.Launch("explicit", "10.0.0.1:1234", 4, 3)  # beats SLURM
  # Explicit arguments override the environment field by field.
  assert dist.detect(env, process_id=1).process_id == 1
  assert dist.detect({}, "h:1", 2, 0).initialize_kwargs() == dict(
      coordinator_address="h:1", num_processes=2, process_id=0)
  with pytest.raises(ValueError, match=r"missing \['process_id'\]"):
    dist.detect({"RL_JAX_COORDINATOR": "h:1", "RL_JAX_NUM_PROCESSES": "2"})
  with pytest.raises(ValueError, match="process_id < num_processes"):
    dist.detect({}, "h:1", 2, 2)
  with pytest.raises(ValueError, match="host:port"):
    dist.detect({}, "h", 2, 0)
  with pytest.raises(ValueError, match="RL_JAX_NUM_PROCESSES|num_processes must be an integer"):
    dist.detect({}, "h:1", "two", 0)


def test_slurm_detection():
  env = {"SLURM_JOB_ID": "4097", "SLURM_NTASKS": "8", "SLURM_PROCID": "5",
         "SLURM_JOB_NODELIST": "gpu[03-04]"}
  # Port: job id 4097 % 4096 + 61440 = 61441 (JAX's SLURM range).
  assert dist.detect(env) == dist.Launch("slurm", "gpu03:61441", 8, 5)
  # srun's step variables win over the job's; an explicit port wins over the derived one.
  env.update(SLURM_STEP_NUM_TASKS="2", SLURM_STEP_NODELIST="b7,b9", RL_JAX_COORDINATOR_PORT="99")
  assert dist.detect(env) == dist.Launch("slurm", "b7:99", 2, 5)


def test_tpu_detection():
  assert dist.detect({"TPU_WORKER_HOSTNAMES": "w0,w1,w2,w3"}).kind == "tpu"
  assert dist.detect({"MEGASCALE_COORDINATOR_ADDRESS": "x:1"}).kind == "tpu"
  assert dist.detect({"CLOUD_TPU_TASK_ID": "0"}).initialize_kwargs() == {}


_CHILD = textwrap.dedent("""
    import json
    import numpy as np
    from rl_jax import distributed
    info = distributed.maybe_initialize()
    import jax, jax.numpy as jnp
    from jax.experimental import multihost_utils
    from jax.sharding import NamedSharding, PartitionSpec as P
    from rl_jax import sharding
    gathered = multihost_utils.process_allgather(np.array([10 * info.process_index + 1]))
    mesh = sharding.make_mesh(sharding.MeshCfg(1, -1, 1))
    local = np.full((jax.local_device_count(),), info.process_index + 1.0, np.float32)
    x = jax.make_array_from_process_local_data(NamedSharding(mesh, sharding.batch_spec()), local)
    total = jax.jit(jnp.sum, out_shardings=NamedSharding(mesh, P()))(x)
    print("RESULT " + json.dumps(dict(
        index=info.process_index, count=info.process_count, chief=info.is_chief,
        devices=jax.device_count(), gathered=np.asarray(gathered).ravel().tolist(),
        total=float(total))))
""")


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def test_two_processes_gloo_allgather_and_psum():
  port = _free_port()
  procs = []
  for i in range(2):
    env = dict(os.environ, JAX_PLATFORMS="cpu",
               XLA_FLAGS="--xla_force_host_platform_device_count=2",
               RL_JAX_COORDINATOR=f"127.0.0.1:{port}", RL_JAX_NUM_PROCESSES="2",
               RL_JAX_PROCESS_ID=str(i))
    procs.append(subprocess.Popen([sys.executable, "-c", _CHILD], env=env, text=True,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT))
  outs = []
  try:
    for p in procs:
      outs.append(p.communicate(timeout=90)[0])  # generous: 2 loaded cores; normally ~10 s
  finally:
    for p in procs:
      if p.poll() is None:
        p.kill()
  results = []
  for p, out in zip(procs, outs):
    assert p.returncode == 0, out
    line = [l for l in out.splitlines() if l.startswith("RESULT ")]
    assert line, out
    results.append(json.loads(line[0][len("RESULT "):]))
  assert sorted(r["index"] for r in results) == [0, 1]
  for r in results:
    assert r["count"] == 2 and r["devices"] == 4 and r["chief"] == (r["index"] == 0)
    assert r["gathered"] == [1, 11]
    assert r["total"] == 2 * 1.0 + 2 * 2.0  # two devices per process hold pid + 1
