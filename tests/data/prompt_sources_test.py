"""Prompt sources: epoch order, retirement of solved prompts, JSON state, clear errors."""
import json
import types
import zlib

import numpy as np
import pytest

from rl_jax.data.prompt_sources import PROMPT_SOURCES

SEED = 7
RL_ID = zlib.crc32(b"rl") & 0x7FFFFFFF  # the stage id of "rl" (a CRC-32 of the name)


def _ctx(problems, sample_rl=None, rl_sampler=None):
  task = types.SimpleNamespace(name="toy", train=list(problems), sample_rl=sample_rl,
                               rl_sampler=rl_sampler)
  return types.SimpleNamespace(task=task, seed=SEED)


def _build(spec, problems, **task):
  return PROMPT_SOURCES.build(spec, "rl.prompt_source", ctx=_ctx(problems, **task), stage="rl")


def _permutation(n, epoch):
  return np.random.default_rng([SEED, RL_ID, epoch]).permutation(n)


def test_task_source_draws_from_the_task_with_the_step_rng():
  seen = []

  def sample_rl(n, rng):
    seen.append(n)
    return list(rng.integers(0, 1000, size=n))

  source = _build({"name": "task"}, ["unused"], sample_rl=sample_rl)
  state = source.init_state()
  problems, state = source.sample(state, 3, 5, 1)
  assert problems == list(np.random.default_rng([SEED, RL_ID, 5, 1]).integers(0, 1000, size=3))
  assert state == {} and seen == [3]
  assert source.observe(state, problems, np.zeros(6), 2) == {}


def test_epochs_visit_every_problem_once_per_epoch_in_the_seeded_order():
  problems = [f"p{i}" for i in range(10)]
  source = _build({"name": "epochs"}, problems)
  state = source.init_state()
  drawn = []
  for step in range(8):  # 8 draws of 4 = 3.2 epochs of 10; draws span epoch boundaries
    batch, state = source.sample(state, 4, step, 0)
    assert len(batch) == 4
    drawn += batch
    state = source.observe(state, batch, np.ones(8), 2)
  want = np.concatenate([_permutation(10, e) for e in range(4)])[:32]
  assert drawn == [problems[i] for i in want]
  for epoch in range(3):
    assert sorted(drawn[10 * epoch:10 * (epoch + 1)]) == sorted(problems), epoch
  assert state["epoch"] == 3 and state["offset"] == 2
  assert state["last"] == [int(i) for i in want[-4:]]


def test_epoch_state_survives_a_json_round_trip():
  problems = list(range(7))
  source = _build({"name": "epochs"}, problems)
  state = source.init_state()
  for step in range(3):
    _, state = source.sample(state, 3, step, 0)
  reloaded = json.loads(json.dumps(state, allow_nan=False))
  a, b = state, reloaded
  for step in range(3, 8):
    batch_a, a = source.sample(a, 3, step, 0)
    batch_b, b = source.sample(b, 3, step, 0)
    assert batch_a == batch_b
  assert a == b


def _solved_rewards(problem, visit, group_size):
  """Hand-built rewards: p0 and p1 always solved; p2 solved on every other visit (never twice
  running); the others half right."""
  if problem in ("p0", "p1") or (problem == "p2" and visit % 2 == 0):
    return [1.0] * group_size
  return [1.0, 0.0, 1.0][:group_size]


def test_retire_solved_retires_after_consecutive_solved_visits():
  g = 3
  problems = [f"p{i}" for i in range(6)]
  source = _build({"name": "retire_solved", "retire_after": 2}, problems)
  state = source.init_state()
  visits = {p: 0 for p in problems}
  streak = {p: 0 for p in problems}
  retired_at = {}  # problem -> step after whose observation it retired
  for step in range(15):
    batch, state = source.sample(state, 2, step, 0)
    assert len(set(batch)) == 2
    for p in batch:
      assert p not in retired_at, (p, step, retired_at)  # never sampled again once retired
    rewards = []
    for p in batch:
      r = _solved_rewards(p, visits[p], g)
      visits[p] += 1
      streak[p] = streak[p] + 1 if min(r) >= 1.0 else 0
      if streak[p] >= 2 and p not in retired_at:
        retired_at[p] = step
      rewards += r
    state = source.observe(state, batch, np.asarray(rewards, np.float32), g)
    assert sorted(problems[i] for i in state["retired"]) == sorted(retired_at)
    state = json.loads(json.dumps(state, allow_nan=False))  # as a checkpoint would
  assert sorted(retired_at) == ["p0", "p1"]
  assert visits["p0"] == 2 and visits["p1"] == 2  # retired after exactly 2 solved visits
  assert visits["p2"] >= 3  # solved on alternate visits only: never retired


def test_retire_solved_threshold_reads_every_sample_of_the_group():
  source = _build({"name": "retire_solved", "retire_after": 1, "threshold": 0.5}, ["a", "b"])
  state = source.init_state()
  batch, state = source.sample(state, 2, 0, 0)
  # Group of batch[0]: every sample >= 0.5 (retires); batch[1]: one sample below.
  state = source.observe(state, batch, np.asarray([0.5, 0.9, 0.7, 0.49]), 2)
  assert state["retired"] == [["a", "b"].index(batch[0])]
  with pytest.raises(ValueError, match=r"2 groups of rewards for 1 sampled prompts"):
    source.observe(dict(state, last=[0]), batch, np.ones(4), 2)


def test_too_few_eligible_prompts_is_a_clear_error():
  problems = ["a", "b", "c"]
  source = _build({"name": "retire_solved", "retire_after": 1}, problems)
  state = source.init_state()
  batch, state = source.sample(state, 2, 0, 0)
  state = source.observe(state, batch, np.ones(4, np.float32), 2)  # both solved: retired
  assert len(state["retired"]) == 2
  with pytest.raises(ValueError, match=r"only 1 of the 3 train problems are eligible, fewer than "
                                       r"prompts_per_step=2"):
    source.sample(state, 2, 1, 0)
  # One prompt a step still works, always the one left.
  left = (set(problems) - set(batch)).pop()
  assert source.sample(state, 1, 1, 0)[0] == [left]


def test_a_drawn_pool_is_fixed_fresh_problems_from_the_rl_sampler():
  calls = []

  def sampler(n, rng):
    calls.append(n)
    return [f"fresh{v}" for v in rng.integers(0, 10**6, size=n)]

  spec = {"name": "epochs", "pool_size": 6}
  source = _build(spec, ["train0", "train1"], sample_rl=sampler, rl_sampler=sampler)
  # Drawn once, with the pool's own stream [seed, stage, POOL_STREAM] (not a step's).
  want = [f"fresh{v}" for v in np.random.default_rng([SEED, RL_ID, 0x706F6F6C]).integers(
      0, 10**6, size=6)]
  assert source.problems == want and calls == [6]
  state, drawn = source.init_state(), []
  for step in range(3):
    batch, state = source.sample(state, 4, step, 0)
    drawn += batch
  assert sorted(drawn[:6]) == sorted(want) and set(drawn) == set(want)  # epochs over the pool
  # Rebuilt (a resume): the same pool.
  assert _build(spec, ["train0"], sample_rl=sampler, rl_sampler=sampler).problems == want
  heap = _build({"name": "heapa", "max_pool_size": 8, "pool_size": 6}, ["t"],
                sample_rl=sampler, rl_sampler=sampler)
  assert heap.problems == want
  with pytest.raises(ValueError, match=r"pool_size=3: task 'toy' has no RL sampler"):
    _build({"name": "epochs", "pool_size": 3}, ["a"])
  with pytest.raises(ValueError, match="pool_size must be >= 0"):
    _build({"name": "retire_solved", "pool_size": -1}, ["a"])


def test_config_errors():
  with pytest.raises(ValueError, match="retire_after must be >= 1"):
    _build({"name": "retire_solved", "retire_after": 0}, ["a"])
  with pytest.raises(ValueError, match="has no train problems"):
    _build({"name": "epochs"}, [])
  with pytest.raises(ValueError, match=r"rl\.prompt_source\.\['retire_afte'\]"):
    _build({"name": "retire_solved", "retire_afte": 2}, ["a"])
