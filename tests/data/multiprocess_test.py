"""Per-process input on a real 2-process gloo run: each process reads only its rows (grain's
ShardByJaxProcess), `to_global` assembles them, and the global batch is the one a single
process reads; packed documents are split between the processes without overlap."""
import json
import os
import socket
import subprocess
import sys
import textwrap

import numpy as np

from rl_jax.data import builders, loader

_CHILD = textwrap.dedent("""
    import json, sys
    import numpy as np
    from rl_jax import distributed
    info = distributed.maybe_initialize()
    import jax
    from rl_jax import sharding
    from rl_jax.data import builders, loader
    sources = builders.prepare(builders.Arithmetic, sys.argv[1],
                               builders.arithmetic_config(2, 1, 20, 0, 0))
    mesh = sharding.make_mesh(sharding.MeshCfg(-1, 1, 1))
    examples = loader.example_batches(sources["train"], lambda r, i: (np.asarray(r["operands"]),),
                                      batch_size=8, seed_words=(4,))
    docs = [100 * (i + 1) + np.arange(1 + i % 5) for i in range(30)]  # no token 0
    packed = loader.packed_batches(docs, lambda r, i: r, batch_size=4, row_len=8, seed_words=(4,))
    out = {"index": info.process_index}
    for name, batches in (("examples", examples), ("packed", packed)):
      local = next(batches)
      out[name + "_local_rows"] = int(local[0].shape[0])
      glob = loader.to_global(local, mesh, per_process=batches.per_process)
      out[name] = sharding.to_host(glob[0]).tolist()
    out["tensorflow"] = "tensorflow" in sys.modules
    print("RESULT " + json.dumps(out))
""")


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def test_two_processes_read_their_rows_of_the_same_global_batch(tmp_path):
  port, procs = _free_port(), []
  for i in range(2):
    env = dict(os.environ, JAX_PLATFORMS="cpu",
               XLA_FLAGS="--xla_force_host_platform_device_count=2",
               RL_JAX_COORDINATOR=f"127.0.0.1:{port}", RL_JAX_NUM_PROCESSES="2",
               RL_JAX_PROCESS_ID=str(i))
    procs.append(subprocess.Popen([sys.executable, "-c", _CHILD, str(tmp_path)], env=env,
                                  text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT))
  outs = []
  try:
    for p in procs:
      outs.append(p.communicate(timeout=300)[0])
  finally:
    for p in procs:
      if p.poll() is None:
        p.kill()
  results = []
  for p, out in zip(procs, outs):
    assert p.returncode == 0, out[-3000:]
    results.append(json.loads([l for l in out.splitlines() if l.startswith("RESULT ")][0][7:]))
  # The single-process reference (both children prepared the dataset in one dir, under a lock).
  sources = builders.prepare(builders.Arithmetic, tmp_path,
                             builders.arithmetic_config(2, 1, 20, 0, 0))
  whole = next(loader.example_batches(sources["train"], lambda r, i: (np.asarray(r["operands"]),),
                                      batch_size=8, seed_words=(4,), shard=(0, 1)))[0]
  for r in results:
    assert r["examples_local_rows"] == 4 and r["packed_local_rows"] == 2
    np.testing.assert_array_equal(np.asarray(r["examples"]), whole)
    assert r["packed"] == results[0]["packed"] and not r["tensorflow"]
  # Packed: process p's rows hold documents of its half of the shuffled stream only.
  packed = np.asarray(results[0]["packed"])
  order = np.random.default_rng([4, 0]).permutation(30)
  for p, rows in enumerate((packed[:2], packed[2:])):
    docs = {int(t) // 100 - 1 for t in rows[rows > 0].ravel()}
    assert docs and docs <= set(order[p::2].tolist()), (p, docs)
