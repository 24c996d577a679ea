"""Scorer parts: task rewards per row, weighted reward-registry sums, non-finite rewards."""
import types
import uuid

import numpy as np
import pytest

from rl_jax import tasks
from rl_jax.rewards import registry as reward_registry
from rl_jax.rewards.scorers import SCORERS


def _ctx(task):
  return types.SimpleNamespace(task=task)


def _out(texts):
  return types.SimpleNamespace(texts=list(texts))


def test_task_scorer_is_the_task_reward_per_row():
  task = tasks.make_task("arithmetic", num_operands=2, num_digits=1, train_size=6, eval_size=2)
  problems = [p for p in task.train[:3] for _ in range(2)]
  # Per problem: its worked solution (correct) and a wrong answer.
  texts = [t for p in task.train[:3] for t in (p.completion, p.completion + "9")]
  scores = SCORERS.build({"name": "task"}, "rl.scorer", ctx=_ctx(task), section=None)(
      problems, _out(texts))
  want = np.asarray([task.reward_fn(p, t) for p, t in zip(problems, texts)], np.float32)
  assert want.tolist() == [1.0, 0.0] * 3  # the reference is not trivially constant
  np.testing.assert_array_equal(scores.reward_B, want)
  assert scores.reward_B.dtype == np.float32
  np.testing.assert_array_equal(scores.extras["correct"], want)


def _toy_task(reward_fn=lambda p, text: 0.0):
  return tasks.TaskData(name="toy", train=[], eval=[], prompt_fn=lambda p: p["q"],
                        completion_fn=lambda p: "", reward_fn=reward_fn,
                        columns_fn=lambda p: {"answer": p["a"]})


def test_weighted_scorer_is_the_weighted_sum_of_registered_rewards():
  tag = uuid.uuid4().hex[:8]
  length, match = f"test_length_{tag}", f"test_match_{tag}"

  @reward_registry.register_reward(length)
  def _length(prompt, completion):  # takes no column: the task's "answer" is not passed
    return float(len(completion))

  @reward_registry.register_reward(match)
  def _match(prompt, completion, *, answer):
    return 1.0 if completion.endswith(answer) and prompt.startswith("Q") else 0.0

  problems = [{"q": "Q1", "a": "7"}, {"q": "Q2", "a": "12"}, {"q": "X3", "a": "4"}]
  texts = ["so 7", "13", "4"]
  scorer = SCORERS.build({"name": "weighted", "rewards": {length: 0.5, match: 2.0}},
                         "rl.scorer", ctx=_ctx(_toy_task()), section=None)
  scores = scorer(problems, _out(texts))
  # By hand: lengths 4, 2, 1; matches 1, 0, 0 (the third fails the prompt test).
  want = [0.5 * 4 + 2.0 * 1, 0.5 * 2 + 2.0 * 0, 0.5 * 1 + 2.0 * 0]
  np.testing.assert_allclose(scores.reward_B, want, rtol=0, atol=1e-6)
  np.testing.assert_array_equal(scores.extras[f"reward/{length}"], [4.0, 2.0, 1.0])
  np.testing.assert_array_equal(scores.extras[f"reward/{match}"], [1.0, 0.0, 0.0])
  np.testing.assert_allclose(scores.extras["correct"], want, rtol=0, atol=1e-6)


def test_weighted_scorer_config_errors():
  with pytest.raises(ValueError, match="must name at least one reward function"):
    SCORERS.build({"name": "weighted"}, "rl.scorer", ctx=_ctx(_toy_task()), section=None)
  with pytest.raises(ValueError, match="unknown reward 'no_such_reward'"):
    SCORERS.build({"name": "weighted", "rewards": {"no_such_reward": 1.0}}, "rl.scorer",
                  ctx=_ctx(_toy_task()), section=None)


def test_non_finite_reward_names_the_row():
  reward = lambda p, text: float("nan") if text == "bad" else 1.0
  task = _toy_task(reward)
  problems = [{"q": "Q", "a": "1"}] * 3
  scorer = SCORERS.build({"name": "task"}, "rl.scorer", ctx=_ctx(task), section=None)
  with pytest.raises(ValueError, match=r"reward of sample 2 is nan"):
    scorer(problems, _out(["ok", "ok", "bad"]))

  name = f"test_inf_{uuid.uuid4().hex[:8]}"
  reward_registry.register_reward(name)(
      lambda prompt, completion: float("inf") if completion == "bad" else 0.0)
  weighted = SCORERS.build({"name": "weighted", "rewards": {name: 1.0}}, "rl.scorer",
                           ctx=_ctx(task), section=None)
  with pytest.raises(ValueError, match=r"reward of sample 1: expected a finite"):
    weighted(problems, _out(["ok", "bad", "ok"]))


@pytest.mark.filterwarnings("ignore:overflow encountered")
def test_overflowing_weighted_sum_names_the_row():
  name = f"test_big_{uuid.uuid4().hex[:8]}"
  reward_registry.register_reward(name)(lambda prompt, completion: float(len(completion)))
  weighted = SCORERS.build({"name": "weighted", "rewards": {name: 1e38}}, "rl.scorer",
                           ctx=_ctx(_toy_task()), section=None)
  # Each reward is finite; 1e38 * 10 is not a float32.
  with pytest.raises(ValueError, match=r"weighted scorer: reward of row 1 is inf"):
    weighted([{"q": "Q", "a": "1"}] * 2, _out(["a", "aaaaaaaaaa"]))
