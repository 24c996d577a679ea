"""Prompt sources of the RL step: where each step's problems come from.

    source = PROMPT_SOURCES.build(config.rl.prompt_source, where, ctx=ctx, stage=name)
    state = source.init_state()
    problems, state = source.sample(state, n, step, draw)
    state = source.observe(state, problems, rewards_B, group_size)

A source's state is a JSON dict (lists, str keys, Python numbers): the loop saves it in the
checkpoint's host item, so a resumed run makes the same choices as an uninterrupted one. Sources
are deterministic functions of (seed, stage, step, draw, state): on several processes every
process holds the same state (the SPMD host loop), so nothing needs sharding. `observe` sees
every drawn prompt's per-sample rewards after the rollout (dynamic sampling's rejected draws
too), which is where a stateful pool learns.

Registered: "task" (stateless, the task's `sample_rl`), "epochs" (passes over a fixed prompt
set without replacement: `task.train`, or with `pool_size` a set drawn once from the task's RL
sampler, `prompt_pool`), "retire_solved" (epochs that retire prompts every sample of which was
correct `retire_after` visits in a row), "heapa" (HeaPA's heap pool with on-policy augmentation,
`rl_jax.algorithms.heapa`, registered by the import at the end of this module).

A source with a `metrics(state) -> {name: float}` method has them logged every step; one with
`needs_policy = True` gets `observe(..., params=, key=)` (the current policy, e.g. to rewrite
prompts).
"""
from __future__ import annotations

from typing import Any, Protocol, Sequence

import numpy as np

from rl_jax.registry import Registry

PROMPT_SOURCES: Registry = Registry("prompt source")


def stage_id(name: str) -> int:
  """`rl_jax.stages.context.stage_id`, imported on use: importing `rl_jax.stages` registers the
  stage kinds, whose RL stage imports this module (a module-level import would be circular
  when this module is imported first)."""
  from rl_jax.stages import context  # pylint: disable=g-import-not-at-top
  return context.stage_id(name)


class PromptSource(Protocol):
  def init_state(self) -> dict: ...

  def sample(self, state: dict, n: int, step: int, draw: int) -> tuple[list[Any], dict]: ...

  def observe(self, state: dict, problems: Sequence[Any], rewards_B: np.ndarray,
              group_size: int) -> dict: ...


# The numpy stream of a drawn prompt pool: [seed, stage, POOL_STREAM] (the step streams are
# [seed, stage, step, draw] and the epoch orders [seed, stage, epoch]; numpy pads a shorter
# seed with zeros, so a tag far above any step or epoch keeps the pool's stream apart).
POOL_STREAM = 0x706F6F6C


def prompt_pool(ctx, stage: str, pool_size: int, where: str) -> list[Any]:
  """The fixed prompts of a pool source (epochs, retire_solved, heapa).

  pool_size 0: `task.train` (for most tasks also the SFT demonstrations). pool_size N > 0: N
  problems drawn once from the task's own RL sampler (`TaskData.rl_sampler`: for arithmetic,
  fresh sums, never held-out ones) with rng [seed, stage, POOL_STREAM]: the same set at every
  start and resume, and prompts the SFT stage never showed worked solutions for, as an RL
  dataset is in the papers (HeaPA: DAPO-Math after an instruct model's SFT; docs/heapa.md)."""
  task = ctx.task
  if pool_size < 0:
    raise ValueError(f"config {where}.pool_size must be >= 0, got {pool_size}")
  if not pool_size:
    problems = list(task.train)
    if not problems:
      raise ValueError(f"config {where}: task {task.name!r} has no train problems (set "
                       "pool_size to draw a pool from its RL sampler)")
    return problems
  if getattr(task, "rl_sampler", None) is None:
    raise ValueError(f"config {where}.pool_size={pool_size}: task {task.name!r} has no RL "
                     "sampler of its own (its sample_rl redraws task.train); use pool_size=0")
  return list(task.sample_rl(pool_size, np.random.default_rng(
      [ctx.seed, stage_id(stage), POOL_STREAM])))


class TaskSource:
  """Fresh problems from the task (`TaskData.sample_rl`) with rng [seed, stage, step, draw]."""

  def __init__(self, ctx, stage: str):
    self.task, self.seed, self.stage_id = ctx.task, ctx.seed, stage_id(stage)

  def init_state(self) -> dict:
    return {}

  def sample(self, state, n, step, draw):
    rng = np.random.default_rng([self.seed, self.stage_id, step, draw])
    return self.task.sample_rl(n, rng), state

  def observe(self, state, problems, rewards_B, group_size):
    return state


class EpochSource:
  """Passes over a fixed prompt set (`prompt_pool`) without replacement; epoch e is the
  permutation drawn from [seed, stage, e]. State: {"epoch", "offset", "last": indices of the
  last draw} plus what subclasses keep."""

  def __init__(self, ctx, stage: str, pool_size: int = 0):
    self.problems = prompt_pool(ctx, stage, pool_size, f"{stage}.prompt_source")
    self.seed, self.stage_id = ctx.seed, stage_id(stage)

  def init_state(self) -> dict:
    return {"epoch": 0, "offset": 0, "last": []}

  def _order(self, epoch: int) -> np.ndarray:
    return np.random.default_rng([self.seed, self.stage_id, epoch]).permutation(
        len(self.problems))

  def _eligible(self, state, index: int) -> bool:
    return True

  def _num_eligible(self, state) -> int:
    return len(self.problems)

  def sample(self, state, n, step, draw):
    state = dict(state)
    eligible = self._num_eligible(state)
    # Fewer eligible prompts than a draw needs would repeat prompts within it (a draw larger
    # than the whole train set spans epochs, as plain epochs do).
    if eligible < min(n, len(self.problems)):
      raise ValueError(f"prompt source: only {eligible} of the {len(self.problems)} train "
                       f"problems are eligible, fewer than prompts_per_step={n} (every other "
                       "prompt is retired); lower retire_after or add problems")
    picked: list[int] = []
    while len(picked) < n:
      order = self._order(state["epoch"])
      while state["offset"] < len(order) and len(picked) < n:
        index = int(order[state["offset"]])
        state["offset"] += 1
        if self._eligible(state, index):
          picked.append(index)
      if state["offset"] >= len(order):
        state["epoch"] += 1
        state["offset"] = 0
    state["last"] = picked
    return [self.problems[i] for i in picked], state

  def observe(self, state, problems, rewards_B, group_size):
    return state


class RetireSolvedSource(EpochSource):
  """`EpochSource` that stops drawing a prompt after every one of its G samples reached
  `threshold` on `retire_after` consecutive visits: the budget goes to prompts that still
  teach (a zero-variance all-correct group adds no gradient to GRPO-family losses)."""

  def __init__(self, ctx, stage: str, retire_after: int, threshold: float, pool_size: int = 0):
    super().__init__(ctx, stage, pool_size)
    if retire_after < 1:
      raise ValueError(f"prompt_source.retire_after must be >= 1, got {retire_after}")
    self.retire_after, self.threshold = retire_after, threshold

  def init_state(self) -> dict:
    return {**super().init_state(), "streak": {}, "retired": []}

  def _eligible(self, state, index):
    return index not in state["retired"]

  def _num_eligible(self, state) -> int:
    return len(self.problems) - len(state["retired"])

  def observe(self, state, problems, rewards_B, group_size):
    state = dict(state, streak=dict(state["streak"]), retired=list(state["retired"]))
    solved_N = (np.asarray(rewards_B).reshape(-1, group_size) >= self.threshold).all(axis=1)
    if len(solved_N) != len(state["last"]):
      raise ValueError(f"prompt source observe: {len(solved_N)} groups of rewards for "
                       f"{len(state['last'])} sampled prompts")
    for index, solved in zip(state["last"], solved_N):
      key = str(index)
      streak = state["streak"].get(key, 0) + 1 if solved else 0
      state["streak"][key] = streak
      if streak >= self.retire_after and index not in state["retired"]:
        state["retired"].append(index)
    return state


@PROMPT_SOURCES.register("task")
def task_source(*, ctx, stage: str) -> TaskSource:
  return TaskSource(ctx, stage)


@PROMPT_SOURCES.register("epochs")
def epoch_source(*, ctx, stage: str, pool_size: int = 0) -> EpochSource:
  """pool_size: 0 = task.train, N = N prompts drawn once from the task's RL sampler
  (`prompt_pool`)."""
  return EpochSource(ctx, stage, pool_size)


@PROMPT_SOURCES.register("retire_solved")
def retire_solved_source(*, ctx, stage: str, retire_after: int = 2, threshold: float = 1.0,
                         pool_size: int = 0) -> RetireSolvedSource:
  return RetireSolvedSource(ctx, stage, retire_after, threshold, pool_size)


# Imported last: heapa imports this module's registry (registers "heapa").
from rl_jax.algorithms import heapa  # pylint: disable=g-import-not-at-top,wrong-import-position,unused-import
