"""Scorer parts of the RL step: episodes -> a reward per row plus named per-row extras.

    scorer = SCORERS.build(config.rl.scorer, where, ctx=ctx, section=rl_section)
    scores = scorer(problems_per_row, rollout_output)      # Scores

Extras are float32 [B] arrays named like metrics ("correct", "tool/cost", "tool/attempted",
...): the advantage part reads what it needs (a gated advantage reads cost and correctness), and
every extra is logged as its mean. Rewards are computed on the host, outside any jitted or
differentiated function; a non-finite reward stops the run naming the row.

Registered:
  "task":     the task's `reward_fn(problem, text)`; extra "correct" = the reward.
  "weighted": sum_k w_k * reward_k(prompt, completion, **task.columns_fn(problem)) over
              functions of the reward registry (`rl_jax.rewards.registry`); extra per function.
  "episode":  tool episodes: the task's reward of the transcript, `malformed_reward` for an
              episode with a malformed call; extras "correct" and the ledger's tool metrics.
"""
from __future__ import annotations

import dataclasses
import inspect
from typing import Any, Mapping, Sequence

import numpy as np

from rl_jax.registry import Registry
from rl_jax.rewards import registry as reward_registry
from rl_jax.tools.scoring import episode_extras

SCORERS: Registry = Registry("scorer")


@dataclasses.dataclass
class Scores:
  """reward_B: float32 [B] (what the advantage turns into a learning signal; DAPO's overlong
  penalty is added after scoring). extras: name -> float32 [B], "correct" always present.
  metrics: scalars the scorer wants logged as they are (e.g. per-tier rates)."""
  reward_B: np.ndarray
  extras: dict[str, np.ndarray]
  metrics: dict[str, float] = dataclasses.field(default_factory=dict)


def check_rewards(reward_B: np.ndarray, where: str) -> np.ndarray:
  reward_B = np.asarray(reward_B, np.float32)
  bad = np.flatnonzero(~np.isfinite(reward_B))
  if bad.size:
    raise ValueError(f"{where}: reward of row {int(bad[0])} is {reward_B[bad[0]]}")
  return reward_B


def _accepted_columns(fn, columns: Mapping[str, list]) -> dict[str, list]:
  """The task's columns that `fn` takes as keyword arguments (all of them for **kwargs)."""
  params = inspect.signature(fn).parameters
  if any(p.kind == p.VAR_KEYWORD for p in params.values()):
    return dict(columns)
  return {k: v for k, v in columns.items() if k in params}


class TaskScorer:
  def __init__(self, ctx):
    self.task = ctx.task

  def __call__(self, problems: Sequence[Any], out) -> Scores:
    reward_B = self.task.rewards(problems, out.texts)
    return Scores(reward_B, {"correct": reward_B.copy()})


class WeightedScorer:
  """Several reward-registry functions with weights (`rewards`: {name: weight})."""

  def __init__(self, ctx, rewards: Mapping[str, float]):
    if not rewards:
      raise ValueError("config rl.scorer.rewards must name at least one reward function")
    self.fns = {name: reward_registry.get_reward(name) for name in rewards}
    self.weights = dict(rewards)
    self.task, self.ctx = ctx.task, ctx

  def __call__(self, problems, out) -> Scores:
    prompts = [self.task.prompt_fn(p) for p in problems]
    columns = {}
    if self.task.columns_fn is not None:
      per_row = [self.task.columns_fn(p) for p in problems]
      columns = {k: [row[k] for row in per_row] for k in (per_row[0] if per_row else {})}
    total_B = np.zeros(len(problems), np.float32)
    extras = {}
    for name, fn in self.fns.items():
      params = _accepted_columns(fn, columns)
      value_B = reward_registry.batch_rewards(fn, prompts, out.texts, **params)
      extras[f"reward/{name}"] = value_B
      total_B += np.float32(self.weights[name]) * value_B
    extras["correct"] = total_B.copy()
    return Scores(check_rewards(total_B, "weighted scorer"), extras)


class EpisodeScorer:
  """Tool episodes: reward = task.reward_fn(problem, transcript), or `malformed_reward` if the
  episode made a malformed call (the model's failure: configured, counted, never a crash)."""

  def __init__(self, ctx, malformed_reward: float):
    self.task, self.malformed_reward = ctx.task, float(malformed_reward)

  def __call__(self, problems, out) -> Scores:
    if out.episodes is None:
      raise ValueError("config rl.scorer.name='episode' needs rl.rollout.name='tool'")
    extras = episode_extras(out.episodes)
    malformed_B = extras["tool/malformed"] > 0
    correct_B = np.asarray([0.0 if bad else float(self.task.reward_fn(p, text))
                            for p, text, bad in zip(problems, out.texts, malformed_B)],
                           np.float32)
    reward_B = np.where(malformed_B, np.float32(self.malformed_reward), correct_B)
    extras["correct"] = correct_B
    return Scores(check_rewards(reward_B, "episode scorer"), extras)


@SCORERS.register("task")
def task_scorer(*, ctx, section=None) -> TaskScorer:
  return TaskScorer(ctx)


@SCORERS.register("weighted")
def weighted_scorer(*, ctx, section=None, rewards: Mapping[str, float] = None) -> WeightedScorer:
  return WeightedScorer(ctx, rewards or {})


@SCORERS.register("episode")
def episode_scorer(*, ctx, section=None, malformed_reward: float = 0.0) -> EpisodeScorer:
  return EpisodeScorer(ctx, malformed_reward)
