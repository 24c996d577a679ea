"""QUBRIC's rubric formulas (arXiv 2606.03968, an [I] design from the abstract; docs/qubric.md):
criterion kinds and weights, the weighted rubric reward, the consistency filter and the
learnability filter. Pure functions on numbers; the judge's per-criterion scores come in.

Weights follow Rubrics-as-Rewards (arXiv 2507.17746): Essential 1.0, Important 0.7,
Optional 0.3, Pitfall -0.5 (configurable as `KIND_WEIGHTS` of the rubric generator).

  R(o; C) = clip( sum_j w_j J(o, c_j) / sum_{j: w_j > 0} w_j , 0, 1 )

Consistency (OpenRubrics CRG, arXiv 2510.07743): a rubric is kept iff
R(a_T; C) > R(a_pi; C): it prefers the teacher's answer to the policy's.

Learnability: a query-rubric pair is kept iff p_low < mean_i R_i < p_high and
std_i R_i > sigma_min over n policy samples (population std), which drops the pairs that every
sample fails (fabricated or unverifiable references: the vanishing signal) or passes.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

KIND_WEIGHTS: dict[str, float] = {"essential": 1.0, "important": 0.7, "optional": 0.3,
                                  "pitfall": -0.5}


def check_rubric(rubric: Sequence[Mapping[str, Any]], where: str) -> None:
  """A rubric is a non-empty list of {"criterion": str, "weight": float, ...} with at least one
  positive weight (else the reward's denominator is 0)."""
  if not rubric:
    raise ValueError(f"{where}: empty rubric")
  for i, item in enumerate(rubric):
    if not isinstance(item, Mapping) or not isinstance(item.get("criterion"), str) or \
        not isinstance(item.get("weight"), (int, float)):
      raise ValueError(f"{where}: item {i} must be {{'criterion': str, 'weight': number}}, got "
                       f"{item!r}")
  if not any(item["weight"] > 0 for item in rubric):
    raise ValueError(f"{where}: no criterion has a positive weight: {list(rubric)!r}")


def rubric_reward(scores: Sequence[float], weights: Sequence[float]) -> float:
  """R = clip(sum_j w_j s_j / sum_{w_j > 0} w_j, 0, 1) (module docstring)."""
  s = np.asarray(scores, np.float64)
  w = np.asarray(weights, np.float64)
  if s.shape != w.shape:
    raise ValueError(f"rubric_reward: {s.size} scores for {w.size} criteria")
  positive = w[w > 0].sum()
  if positive <= 0:
    raise ValueError("rubric_reward: no criterion has a positive weight")
  return float(np.clip((w * s).sum() / positive, 0.0, 1.0))


def consistent(reward_teacher: float, reward_policy: float) -> bool:
  """The consistency filter: the rubric must score the teacher's answer strictly higher."""
  return reward_teacher > reward_policy


def learnable(rewards_N: Sequence[float], p_low: float, p_high: float, sigma_min: float) -> bool:
  """The learnability filter over one pair's n sampled rewards (module docstring)."""
  r = np.asarray(rewards_N, np.float64)
  return bool(p_low < r.mean() < p_high and r.std() > sigma_min)
