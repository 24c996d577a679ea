"""Asynchronous RL through the one loop (`rl_jax.main.run`, configs/grpo_async_tiny_arith.py at
runlocal size, RL stage only from the bundled SFT checkpoint, 4 rollout + 4 training devices of
the 8 fake CPU devices): stale batches are corrected and train with non-zero rewards and
gradients; a run killed while a rollout is in flight resumes bitwise (nothing dropped or
regenerated)."""
import importlib.util
import pathlib

import jax
import numpy as np
import pytest

from rl_jax import main, metrics
from rl_jax.rewards import scorers

REPO = pathlib.Path(__file__).resolve().parents[2]
_KILL_SCORER = "async_rl_test_kill"


class Killed(RuntimeError):
  pass


def _kill_scorer(*, ctx, section=None, kill_call: int = -1):
  """The task scorer; its `kill_call`-th call (0-based) raises, as a kill would stop the run:
  with off_policy_steps=1, call 0 scores step 0's batch (generated up front), call c >= 1 the
  batch of step c generated during update c - 1."""
  base, calls = scorers.TaskScorer(ctx), []

  def score(problems, out):
    if len(calls) == kill_call:
      raise Killed(f"killed in scorer call {kill_call}")
    calls.append(None)
    return base(problems, out)

  return score


if _KILL_SCORER not in scorers.SCORERS:
  scorers.SCORERS.register(_KILL_SCORER)(_kill_scorer)


def _config():
  spec = importlib.util.spec_from_file_location("grpo_async_cfg",
                                                REPO / "configs" / "grpo_async_tiny_arith.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  c = module.get_config("runlocal")
  c.stages = ("rl",)  # from the bundled SFT checkpoint: rewards vary within groups already
  c.rl.rollout_devices = 4  # separate device groups: rollout t + 1 runs while update t does
  c.checkpoint.every = 1
  c.checkpoint.keep = 10
  c.eval.every = 0
  return c


def _rl_records(workdir):
  return [{k: v for k, v in r.items() if not k.startswith("time/")}
          for r in metrics.read_metrics(str(workdir / "metrics.jsonl")) if r["stage"] == "rl"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
  """An uninterrupted run, and one killed during step 2's rollout (update 1 in flight, step 1's
  batch saved in the step-1 checkpoint as in flight) then rerun with the same command."""
  ref_dir, kill_dir = tmp_path_factory.mktemp("ref"), tmp_path_factory.mktemp("kill")
  c = _config()
  c.rl.scorer = {"name": _KILL_SCORER}
  ref = main.run(c, str(ref_dir), show_progress=False)
  c.rl.scorer = {"name": _KILL_SCORER, "kill_call": 2}
  with pytest.raises(Killed) as e:
    main.run(c, str(kill_dir), show_progress=False)
  c.rl.scorer = {"name": _KILL_SCORER}
  resumed = main.run(c, str(kill_dir), show_progress=False)
  return dict(ref=ref, ref_dir=ref_dir, resumed=resumed, kill_dir=kill_dir, error=e.value)


def test_stale_steps_train_with_rewards_gradients_and_weights(runs):
  records = _rl_records(runs["ref_dir"])
  assert [r["step"] for r in records] == [0, 1, 2]
  assert [r["offpolicy/staleness"] for r in records] == [0.0, 1.0, 1.0]
  assert [r["offpolicy/stale_frac"] for r in records] == [0.0, 1.0, 1.0]
  assert records[0]["offpolicy/weight_mean"] == 1.0
  for r in records[1:]:  # pi_prox != mu after an update: weights near, not at, 1
    assert 0.5 < r["offpolicy/weight_mean"] < 2.0 and r["offpolicy/weight_mean"] != 1.0
  assert any(r["reward/mean"] > 0 for r in records)
  assert all(r["grad/norm"] > 0 for r in records)
  assert all(r["reward/std"] > 0 or r["grad/norm"] > 0 for r in records)


def test_kill_with_a_rollout_in_flight_resumes_bitwise(runs):
  assert "(at step 1 of stage 'rl')" in runs["error"].__notes__
  ckpt = runs["kill_dir"] / "checkpoints" / "rl"
  # The rerun resumed from the step-1 checkpoint, whose in-flight batch (step 1's, sampled by
  # the step-0 params) it trained on instead of regenerating it with the step-1 params.
  assert sorted(int(p.name) for p in ckpt.iterdir() if p.name.isdigit()) == [1, 2, 3]
  assert _rl_records(runs["kill_dir"]) == _rl_records(runs["ref_dir"])
  for a, b in zip(jax.tree.leaves(runs["resumed"]["final_params"]),
                  jax.tree.leaves(runs["ref"]["final_params"])):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
