"""Kill / resume of an RL stage that uses the tool rollout, a stateful prompt source and the
stateful gated advantage: the resumed run ends bitwise where an uninterrupted one does."""
import importlib.util
import json
import pathlib

import jax
import numpy as np
import pytest

from rl_jax import main as main_lib
from rl_jax import metrics as metrics_lib
from rl_jax.stages import rl as rl_stage

CONFIG = pathlib.Path(__file__).resolve().parents[3] / "configs" / "gated_gspo_tiny_cipher.py"


class Killed(Exception):
  pass


def _config():
  spec = importlib.util.spec_from_file_location("gated_gspo_tiny_cipher", CONFIG)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  c = module.get_config("runlocal")
  c.rl.steps = 4
  c.rl.sweep = {}
  c.rl.advantage.lam = 0.5
  c.rl.advantage.history_decay = 0.9  # the gate's history is part of the checkpointed state
  # Retires a prompt after one visit: the source's state (epoch position, retired prompts)
  # decides every later draw, so a resume that lost it would draw other prompts.
  c.rl.prompt_source = {"name": "retire_solved", "retire_after": 1, "threshold": 0.0}
  c.checkpoint.every = 1
  c.eval.every = 0
  c.report = {}
  return c


def _records(workdir):
  return [{k: v for k, v in r.items() if not k.startswith("time/")}
          for r in metrics_lib.read_metrics(str(workdir / "metrics.jsonl"))]


def test_kill_in_the_rl_stage_resumes_bitwise(tmp_path, monkeypatch):
  full = main_lib.run(_config(), str(tmp_path / "full"), show_progress=False)

  real = rl_stage.rl_iteration

  def dies_at_step_2(setup, state, ref, part_state, step, key):
    if step == 2:
      raise Killed("killed at RL step 2")
    return real(setup, state, ref, part_state, step, key)

  monkeypatch.setattr(rl_stage, "rl_iteration", dies_at_step_2)
  with pytest.raises(Killed):
    main_lib.run(_config(), str(tmp_path / "resumed"), show_progress=False)
  # The stop kept the checkpoint of step 2 (the in-flight async save was finished).
  assert (tmp_path / "resumed" / "checkpoints" / "rl" / "2").is_dir()
  monkeypatch.setattr(rl_stage, "rl_iteration", real)
  resumed = main_lib.run(_config(), str(tmp_path / "resumed"), show_progress=False)

  for a, b in zip(jax.tree.leaves(full["final_params"]), jax.tree.leaves(resumed["final_params"])):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  assert _records(tmp_path / "full") == _records(tmp_path / "resumed")
  assert full["eval"] == resumed["eval"]
  rl_steps = [r["step"] for r in _records(tmp_path / "resumed") if r.get("stage") == "rl"]
  assert rl_steps == [0, 1, 2, 3]  # each step written once

  def source_state(workdir):
    host = workdir / "checkpoints" / "rl" / "4" / "host"
    (saved,) = [json.loads(p.read_text()) for p in host.iterdir()
                if p.is_file() and '"parts"' in p.read_text()]
    return saved["parts"]

  states = [source_state(tmp_path / "full"), source_state(tmp_path / "resumed")]
  assert states[0] == states[1]
  assert len(states[0]["source"]["retired"]) == 8  # 4 steps x 2 prompts, each retired once
  assert any(x > 0 for x in states[0]["advantage"]["native_n"])
