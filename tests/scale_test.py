"""Scale-out acceptance: sharded meshes, two processes, SIGKILL + restart (in the RL stage and in
the middle of the SFT stage) and a damaged checkpoint all reproduce one reference run of the
quickstart `runlocal` config on one device.

The reference is `python -m rl_jax.main` on one CPU device, started once per module in the
background (it runs on the second core while the in-process mesh runs compile). Subprocesses
share a persistent compilation cache, so a restarted run does not recompile what the reference
compiled; a cached executable is the same program, so this does not weaken the bitwise checks.
"""
import json
import os
import pathlib
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import time

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest
from jax.sharding import SingleDeviceSharding

from rl_jax import main, metrics

REPO = pathlib.Path(__file__).resolve().parent.parent
CONFIG = "configs/quickstart.py:runlocal"
STEPS = 3
SFT_STEPS = 5
# runlocal (which starts from the bundled SFT checkpoint `arith_tiny_sft`, so rewards vary
# within groups) plus: 5 SFT steps (enough to kill the SFT stage between its checkpoints), a
# held-out eval after every RL step (eval/* metrics per step), and the DAPO soft overlong
# penalty (rewards also differ by response length: the path of a length-shaped reward runs too).
OVERRIDES = {"rl.steps": STEPS, "sft.steps": SFT_STEPS, "eval.every": 1,
             "rl.overlong_max_len": 10, "rl.overlong_cache_len": 8}
TIMEOUT_S = 400  # generous: 2 shared cores; every run here normally takes 5-30 s


def _config(**overrides):
  sys.path.insert(0, str(REPO))
  try:
    from configs import quickstart  # pylint: disable=g-import-not-at-top
  finally:
    sys.path.remove(str(REPO))
  c = quickstart.get_config("runlocal")
  for dotted, value in {**OVERRIDES, **overrides}.items():
    section, name = dotted.rsplit(".", 1) if "." in dotted else ("", dotted)
    target = c
    for part in filter(None, section.split(".")):
      target = target[part]
    target[name] = value
  return c


def _env(cache_dir, num_devices: int) -> dict:
  env = {k: v for k, v in os.environ.items() if not k.startswith(("RL_JAX_", "SLURM_"))}
  env.update(JAX_PLATFORMS="cpu", XLA_FLAGS=f"--xla_force_host_platform_device_count={num_devices}",
             JAX_DEFAULT_MATMUL_PRECISION="highest",  # as tests/conftest.py
             JAX_DISABLE_MOST_OPTIMIZATIONS="true",   # as the in-process runs (fast compiles)
             JAX_COMPILATION_CACHE_DIR=str(cache_dir),
             JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
             JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="-1")
  return env


def _overrides(**extra) -> list[str]:
  return [f"--config.{k}={v}" for k, v in {**OVERRIDES, **extra}.items()]


def _main_cmd(workdir, **extra) -> list[str]:
  return [sys.executable, "-m", "rl_jax.main", f"--config={CONFIG}", f"--workdir={workdir}",
          *_overrides(**extra)]


# `python -m rl_jax.main` whose SFT stage stops (sleeps) when it is about to save checkpoint
# `RL_JAX_TEST_HOLD_AT`, so that a SIGKILL sent once an earlier checkpoint exists lands in the
# middle of the SFT stage, not after it (SFT steps of the tiny model take milliseconds).
_HELD_MAIN = """
import os, sys, time
from absl import app
from rl_jax import checkpoint, main
hold_at = int(os.environ["RL_JAX_TEST_HOLD_AT"])
save = checkpoint.Checkpointer.save
def held_save(self, step, *args, **kwargs):
  if str(self.directory).rstrip("/").endswith("/sft") and step == hold_at:
    time.sleep(3600)
  return save(self, step, *args, **kwargs)
checkpoint.Checkpointer.save = held_save
app.run(main.main, argv=sys.argv)
"""


def _start(cmd, env, log_prefix) -> subprocess.Popen:
  # Output goes to files: an unread pipe can fill up and stall the child.
  out = open(f"{log_prefix}.out", "w")
  err = open(f"{log_prefix}.err", "w")
  with out, err:
    return subprocess.Popen(cmd, cwd=REPO, env=env, stdout=out, stderr=err, text=True)


def _logs(log_prefix) -> tuple[str, str]:
  return (pathlib.Path(f"{log_prefix}.out").read_text(),
          pathlib.Path(f"{log_prefix}.err").read_text())


def _wait_ok(proc, log_prefix) -> tuple[str, str]:
  try:
    proc.wait(timeout=TIMEOUT_S)
  finally:
    if proc.poll() is None:
      proc.kill()
      proc.wait()
  out, err = _logs(log_prefix)
  assert proc.returncode == 0, (
      f"{proc.args} failed ({proc.returncode}):\n{out[-3000:]}\n{err[-5000:]}")
  return out, err


def _run(cmd, env, log_prefix) -> tuple[str, str]:
  return _wait_ok(_start(cmd, env, log_prefix), log_prefix)


def _read_state(step_dir) -> dict:
  """The saved state item of a checkpoint step as numpy, read with plain Orbax (no rl_jax code)."""
  path = pathlib.Path(step_dir) / "state"
  device = SingleDeviceSharding(jax.devices()[0])
  with ocp.StandardCheckpointer() as reader:
    tree = reader.metadata(path).item_metadata.tree
    target = jax.tree.map(lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=device), tree)
    return jax.tree.map(np.asarray, reader.restore(path, target))


def _flat(tree) -> dict:
  return {jax.tree_util.keystr(p): np.asarray(x) for p, x in jax.tree.leaves_with_path(tree)}


def _records(workdir):
  """(sft records, rl records) of metrics.jsonl, wall-clock timings dropped."""
  records = [{k: v for k, v in r.items() if not k.startswith("time/")}
             for r in metrics.read_metrics(os.path.join(workdir, "metrics.jsonl"))]
  sft = [r for r in records if r["stage"] == "sft"]
  rl = [r for r in records if r["stage"] == "rl"]
  assert len(sft) + len(rl) == len(records), records
  assert all(any(k.startswith("sft/") for k in r) for r in sft)
  assert all("loss/total" in r for r in rl)
  return sft, rl


def _assert_records_close(got, want, atol):
  assert [r["step"] for r in got] == [r["step"] for r in want]
  for g, w in zip(got, want):
    assert set(g) == set(w), (set(g) ^ set(w))
    for name in w:
      if isinstance(w[name], str):
        assert g[name] == w[name], name
      else:
        # rtol too: norms of the trained checkpoint's gradients are O(1-10), and a sharded
        # float32 reduction sums in another order (observed: 2.6e-6 relative).
        np.testing.assert_allclose(g[name], w[name], rtol=atol, atol=atol,
                                   err_msg=f"{name} at step {w['step']}")


def _flat_eval(summary) -> dict:
  return {f"{stage}/{k}": v for stage, m in summary["eval"].items() for k, v in m.items()}


def _assert_summary_close(got, want, atol):
  got, want = _flat_eval(got), _flat_eval(want)
  assert got.keys() == want.keys()
  np.testing.assert_allclose([got[k] for k in want], list(want.values()), rtol=0, atol=atol)


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


class _Reference:
  """The one-device CLI run everything is compared with; started early, awaited on first use."""

  def __init__(self, root):
    self.cache = root / "jax_cache"
    self.workdir = root / "reference"
    self._log = root / "reference"
    self._proc = _start(_main_cmd(self.workdir, **{"checkpoint.every": 1}), _env(self.cache, 1),
                        self._log)
    self._done = False

  def wait(self):
    if not self._done:
      _wait_ok(self._proc, self._log)
      self.summary = json.loads((self.workdir / "summary.json").read_text())
      self.sft, self.rl = _records(self.workdir)
      self.state = _read_state(self.workdir / "checkpoints" / "rl" / str(STEPS))
      self._done = True
    return self

  def stop(self):
    if self._proc.poll() is None:
      self._proc.kill()
      self._proc.wait()


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
  ref = _Reference(tmp_path_factory.mktemp("scale"))
  yield ref
  ref.stop()


@pytest.fixture
def fast_compile():
  """The same XLA setting as the subprocesses (backend optimizations off), restored after."""
  before = jax.config.values["jax_disable_most_optimizations"]
  jax.config.update("jax_disable_most_optimizations", True)
  yield
  jax.config.update("jax_disable_most_optimizations", before)


@pytest.mark.parametrize("mesh", [(8, 1, 1), (2, 2, 2), (1, 2, 4)])
def test_sharded_meshes_match_one_device(mesh, reference, fast_compile, tmp_path):
  data, fsdp, tensor = mesh
  summary = main.run(_config(**{"mesh.data": data, "mesh.fsdp": fsdp, "mesh.tensor": tensor}),
                     str(tmp_path), show_progress=False)
  params = summary["final_params"]
  # Really sharded: per-device blocks of the weights follow the (fsdp, tensor) split of the rules.
  q = params["layers"]["attn"]["q_proj"]["kernel"]  # [L=2, D=64, H*Hd=32], P(None, fsdp, tensor)
  emb = params["embed"]["embedding"]                # [V=24, D=64], P(tensor, fsdp)
  assert q.sharding.shard_shape(q.shape) == (2, 64 // fsdp, 32 // tensor)
  assert emb.sharding.shard_shape(emb.shape) == (24 // tensor, 64 // fsdp)
  assert len(q.sharding.device_set) == 8

  ref = reference.wait()
  want = _flat(ref.state["train"]["params"])
  got = _flat(jax.device_get(params))
  assert set(got) == set(want)
  for name in want:
    np.testing.assert_allclose(got[name], want[name], rtol=0, atol=1e-5, err_msg=name)
  sft, rl = _records(str(tmp_path))
  assert [r["step"] for r in rl] == list(range(STEPS))
  _assert_records_close(sft, ref.sft, atol=1e-5)
  _assert_records_close(rl, ref.rl, atol=1e-5)
  # The gradient is not trivially zero (see OVERRIDES), so matching params mean something.
  assert all(r["grad/norm"] > 0.1 for r in rl)
  assert set(summary["eval"]) == {"sft", "rl"}
  _assert_summary_close(summary, ref.summary, atol=1e-5)


@pytest.mark.slow
def test_two_processes_match_one_process(reference, tmp_path):
  """2 processes x 2 CPU devices over gloo (mesh data=2 x fsdp=2) vs the one-process reference."""
  workdir = tmp_path / "mp"
  cmd = ["bash", str(REPO / "launch" / "local_multiprocess.sh"), "--num-processes", "2",
         "--cpu-devices", "2", "--port", str(_free_port()), "--python", sys.executable,
         "--config", CONFIG, "--workdir", str(workdir), "--",
         *_overrides(**{"mesh.data": 2, "mesh.fsdp": 2, "checkpoint.every": STEPS})]
  proc = _start(cmd, _env(reference.cache, 2), tmp_path / "launcher")
  try:
    proc.wait(timeout=TIMEOUT_S)
  finally:
    if proc.poll() is None:
      proc.send_signal(signal.SIGTERM)  # the launcher's trap stops both processes
      proc.wait(timeout=30)
  logs = "".join(p.read_text()[-3000:] for p in sorted((workdir / "logs").glob("*.log")))
  assert proc.returncode == 0, logs
  ref = reference.wait()
  summary = json.loads((workdir / "summary.json").read_text())
  _assert_summary_close(summary, ref.summary, atol=1e-5)
  # Only process 0 wrote: one record per step, no copy from process 1.
  sft, rl = _records(workdir)
  _assert_records_close(sft, ref.sft, atol=1e-5)
  _assert_records_close(rl, ref.rl, atol=1e-5)
  state = _read_state(workdir / "checkpoints" / "rl" / str(STEPS))  # saved collectively
  want = _flat(ref.state["train"]["params"])
  got = _flat(state["train"]["params"])
  for name in want:
    np.testing.assert_allclose(got[name], want[name], rtol=0, atol=1e-5, err_msg=name)


def _kill_after_checkpoint(proc, marker, log_prefix) -> None:
  """SIGKILLs `proc` as soon as `marker` (a committed checkpoint's file) exists."""
  deadline = time.monotonic() + TIMEOUT_S
  try:
    while not marker.exists():
      assert proc.poll() is None, (proc.returncode, _logs(log_prefix))
      assert time.monotonic() < deadline, f"no {marker} after {TIMEOUT_S} s"
      time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
  finally:
    if proc.poll() is None:
      proc.kill()
    proc.wait()


def _assert_bitwise_equal_to_reference(workdir, ref, what):
  got = _flat(_read_state(workdir / "checkpoints" / "rl" / str(STEPS))["train"])
  want = _flat(ref.state["train"])
  assert set(got) == set(want)
  for name in want:  # params, optimizer moments and step: bit for bit
    g, w = got[name], want[name]
    assert g.dtype == w.dtype and g.shape == w.shape and g.tobytes() == w.tobytes(), (
        f"{name} differs by up to {np.max(np.abs(g.astype(np.float64) - w), initial=0)} "
        f"({what})")
  assert json.loads((workdir / "summary.json").read_text()) == ref.summary
  sft, rl = _records(workdir)  # every record once, equal to the uninterrupted run's
  assert sft == ref.sft and rl == ref.rl, what


def _resumed_at(out, stage) -> list[int]:
  prefix = f"[{stage}] resumed from its checkpoint at step "
  return [int(line[len(prefix):]) for line in out.splitlines() if line.startswith(prefix)]


@pytest.mark.slow
def test_sigkill_and_restart_is_bitwise(reference, tmp_path):
  kill_after = random.choice(range(1, STEPS))  # the RL checkpoint step after which to kill
  workdir = tmp_path / "run"
  cmd = _main_cmd(workdir, **{"checkpoint.every": 1})
  env = _env(reference.cache, 1)
  reference.wait()  # its compiled programs are in the cache: the runs below do not recompile
  proc = _start(cmd, env, tmp_path / "killed")
  _kill_after_checkpoint(
      proc, workdir / "checkpoints" / "rl" / str(kill_after) / "_CHECKPOINT_METADATA",
      tmp_path / "killed")
  assert not (workdir / "summary.json").exists(), f"run ended before the kill (step {kill_after})"

  out, err = _run(cmd, env, tmp_path / "restart")
  resumed = _resumed_at(out, "rl")
  assert len(resumed) == 1 and kill_after <= resumed[0] <= STEPS, (kill_after, out)
  # SFT was not trained again: its final checkpoint was restored (no SFT progress bar). Its
  # held-out evaluation is recomputed (the final checkpoint is saved before it); the summary
  # below still equals the reference's.
  assert "[sft] finished earlier: restored its final checkpoint" in out, out
  assert not re.search(r"\bsft: +\d+%", err), err[-2000:]  # tqdm's "sft:  40%|..."
  assert re.search(r"\brl: +\d+%", err), err[-2000:]  # (the pattern does find a bar)
  _assert_bitwise_equal_to_reference(workdir, reference.wait(),
                                     f"killed after RL checkpoint {kill_after}, resumed from "
                                     f"{resumed[0]}")


@pytest.mark.slow
def test_sigkill_in_the_middle_of_sft_and_restart_is_bitwise(reference, tmp_path):
  """Killed after SFT checkpoint 2 of 5 (checkpoint.every=2: the next save is step 4, which the
  killed process is held at); the rerun resumes SFT at step 2 and reproduces the reference."""
  workdir = tmp_path / "run"
  overrides = {"checkpoint.every": 2}
  env = _env(reference.cache, 1)
  reference.wait()
  held = [sys.executable, "-c", _HELD_MAIN, f"--config={CONFIG}", f"--workdir={workdir}",
          *_overrides(**overrides)]
  proc = _start(held, {**env, "RL_JAX_TEST_HOLD_AT": "4"}, tmp_path / "killed")
  _kill_after_checkpoint(proc, workdir / "checkpoints" / "sft" / "2" / "_CHECKPOINT_METADATA",
                         tmp_path / "killed")
  assert sorted(p.name for p in (workdir / "checkpoints").iterdir()) == ["sft"]
  assert [p.name for p in (workdir / "checkpoints" / "sft").iterdir()
          if p.name.isdigit()] == ["2"]
  assert not (workdir / "summary.json").exists()

  out, _ = _run(_main_cmd(workdir, **overrides), env, tmp_path / "restart")
  assert _resumed_at(out, "sft") == [2], out
  assert not _resumed_at(out, "rl"), out
  _assert_bitwise_equal_to_reference(workdir, reference.wait(), "killed in SFT after step 2")


@pytest.mark.slow
def test_damaged_latest_checkpoint_resumes_from_previous(reference, tmp_path):
  ref = reference.wait()
  workdir = tmp_path / "run"
  shutil.copytree(ref.workdir, workdir)
  damaged = workdir / "checkpoints" / "rl" / str(STEPS)
  files = [p for p in (damaged / "state").rglob("*") if p.is_file() and p.parent.name == "d"]
  assert files, f"no OCDBT data files under {damaged}"
  for path in files:
    path.write_bytes(b"\x5a" * path.stat().st_size)

  out, err = _run(_main_cmd(workdir, **{"checkpoint.every": 1, "rl.steps": STEPS + 1}),
                  _env(ref.cache, 1), tmp_path / "rerun")
  warnings = [line for line in err.splitlines() if f"skipping checkpoint step {STEPS}" in line]
  assert len(warnings) == 1 and warnings[0].startswith("W"), err[-3000:]
  assert _resumed_at(out, "rl") == [STEPS - 1], out
  sft, rl = _records(workdir)
  assert sft == ref.sft and [r["step"] for r in rl] == list(range(STEPS + 1))
  assert rl[:STEPS - 1] == ref.rl[:STEPS - 1]  # kept from before the damaged step
  # Step STEPS-1 was redone from checkpoint STEPS-1 and reproduces the original record (which,
  # as the last step then, had no eval/* entries: the final evaluation went to the summary).
  redone, original = rl[STEPS - 1], ref.rl[STEPS - 1]
  _assert_records_close([{k: redone[k] for k in original}], [original], atol=1e-6)
  assert (workdir / "checkpoints" / "rl" / str(STEPS + 1)).is_dir()
