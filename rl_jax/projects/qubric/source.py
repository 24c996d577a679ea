"""The prompt source of QUBRIC (docs/qubric.md), registered as "qubric": passes over the task's
items as one arm presents them (`task.ARMS`), leaving out the pairs the arm's filters reject.

- validity (arms with `validity`): items whose rewrite failed the teacher's validity check are
  never drawn.
- learnability (arms with `learnability`): the scorer applies the learnability filter to the
  first visit's G samples of a pair (`scoring.py`), replacing a rejected group's rewards by
  their mean, so the group has no learning signal; this source then retires the pair (a
  first-visit group with equal rewards), so later steps spend no samples on it. The filter's
  n is G and the policy is the one training at the pair's first visit ([I]: the paper's step 5
  filters once before training, with the SFT policy; here the first pass of the first epoch
  does it, at no extra sampling cost; docs/qubric.md).

State (JSON, checkpointed): the epoch position, the visited and the retired item indices.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from rl_jax.data.prompt_sources import PROMPT_SOURCES, EpochSource
from rl_jax.projects.qubric.task import ARMS, arm_of


class QubricSource(EpochSource):

  def __init__(self, ctx, stage: str, arm: str):
    super().__init__(ctx, stage)
    self.arm_name, self.arm = arm, arm_of(arm, "config rl.prompt_source.arm")
    self.problems = [dataclasses.replace(p, arm=arm) for p in self.problems]
    self.invalid = [i for i, p in enumerate(self.problems)
                    if self.arm.validity and not p.item.valid[self.arm.query]]

  def init_state(self) -> dict:
    return {**super().init_state(), "visited": [], "retired": list(self.invalid)}

  def _eligible(self, state, index: int) -> bool:
    return index not in state["retired"]

  def _num_eligible(self, state) -> int:
    return len(self.problems) - len(state["retired"])

  def observe(self, state, problems, rewards_B, group_size):
    state = dict(state, visited=list(state["visited"]), retired=list(state["retired"]))
    groups = np.asarray(rewards_B, np.float64).reshape(-1, group_size)
    if len(groups) != len(state["last"]):
      raise ValueError(f"qubric source observe: {len(groups)} groups of rewards for "
                       f"{len(state['last'])} sampled prompts")
    for index, rewards in zip(state["last"], groups):
      if index in state["visited"]:
        continue
      state["visited"].append(index)
      if self.arm.learnability and np.all(rewards == rewards[0]):
        state["retired"].append(index)
    return state

  def metrics(self, state) -> dict[str, float]:
    return {"qubric/retired_pairs": float(len(state["retired"]) - len(self.invalid)),
            "qubric/invalid_rewrites": float(len(self.invalid)),
            "qubric/visited_pairs": float(len(state["visited"]))}


@PROMPT_SOURCES.register("qubric")
def qubric_source(*, ctx, stage: str, arm: str = "full") -> QubricSource:
  """arm: one of `task.ARMS` (the study's sweep varies it)."""
  return QubricSource(ctx, stage, arm)


__all__ = ["ARMS", "QubricSource"]
