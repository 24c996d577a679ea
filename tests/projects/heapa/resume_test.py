"""Kill / resume of a HeaPA RL stage with on-policy augmentation: the pool (heaps, archive,
lineage, pending validator jobs) is saved in the checkpoint, and the resumed run ends bitwise
where an uninterrupted one does."""
import importlib.util
import json
import pathlib

import jax
import numpy as np
import pytest

from rl_jax import main as main_lib
from rl_jax import metrics as metrics_lib
from rl_jax.stages import rl as rl_stage

CONFIG = pathlib.Path(__file__).resolve().parents[3] / "configs" / "heapa_tiny_arith.py"


class Killed(Exception):
  pass


def _config():
  spec = importlib.util.spec_from_file_location("heapa_tiny_arith", CONFIG)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  # The policy augmenter: variants depend on the params and the draw's key as well.
  c = module.get_config("heap_aug_policy,runlocal")
  # A validator that refuses every variant: the 12 train prompts drain in 3 steps of 4, so step
  # 3 reinserts the archive (refreshed with PathAgg) from the restored state.
  c.rl.prompt_source = dict(c.rl.prompt_source, refresh="path", max_pool_size=12,
                            validator={"name": "reject_all"})
  c.checkpoint.every = 1
  c.eval.every = 0
  c.eval.at_stage_end = False
  c.report = {}
  return c


def _records(workdir):
  return [{k: v for k, v in r.items() if not k.startswith("time/")}
          for r in metrics_lib.read_metrics(str(workdir / "metrics.jsonl"))]


def _source_state(workdir):
  host = workdir / "checkpoints" / "rl" / "4" / "host"
  (saved,) = [json.loads(p.read_text()) for p in host.iterdir()
              if p.is_file() and '"parts"' in p.read_text()]
  return saved["parts"]["source"]


def test_kill_in_a_heapa_stage_resumes_bitwise(tmp_path, monkeypatch):
  full = main_lib.run(_config(), str(tmp_path / "full"), show_progress=False)
  real = rl_stage.rl_iteration

  def dies_at_step_2(setup, state, ref, part_state, step, key):
    if step == 2:
      raise Killed("killed at RL step 2")
    return real(setup, state, ref, part_state, step, key)

  monkeypatch.setattr(rl_stage, "rl_iteration", dies_at_step_2)
  with pytest.raises(Killed):
    main_lib.run(_config(), str(tmp_path / "resumed"), show_progress=False)
  monkeypatch.setattr(rl_stage, "rl_iteration", real)
  resumed = main_lib.run(_config(), str(tmp_path / "resumed"), show_progress=False)

  for a, b in zip(jax.tree.leaves(full["final_params"]), jax.tree.leaves(resumed["final_params"])):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  assert _records(tmp_path / "full") == _records(tmp_path / "resumed")
  states = [_source_state(tmp_path / "full"), _source_state(tmp_path / "resumed")]
  assert states[0] == states[1]
  state = states[0]
  assert state["metrics"]["proposed"] == 16 and state["metrics"]["aug_tokens"] > 0
  assert state["pool"]["counts"]["reinsertions"] == 1  # at step 3
  assert state["pool"]["counts"]["reinserted"] == 12
  # Every verdict of steps 0-2 was applied (all refused, none inserted); step 3's jobs are
  # pending in the checkpoint.
  assert state["metrics"]["invalid"] == 12 and state["metrics"]["ok"] == 0
  assert len(state["pending"]) == 4
  assert all(r["o"] == "seed" for r in state["pool"]["records"].values())
