"""The scorer part of seed S4: the graduated reward (or an ablation) of each tool episode, read
from the episode's ledger (`reward.py` has the formulas; docs/tool_orchestration.md).

Registered as scorer "tool_orchestration":
  reward: "graduated" (0.5 R_atomic + 0.5 R_orch, the paper's), "atomic" (R_atomic alone),
          "orchestration" (R_orch alone), "binary" (1 iff the whole workflow is exactly right);
  weight_mode: the orchestration step weights, "uniform" (paper default) or "dependency";
  atomic_match: the trace each call's atomic validity is scored against: "first" (the paper's
          code: the first step with the call's function) or "occurrence" (the k-th call of a
          function against the k-th step with it; equal to "first" unless a workflow calls
          one function twice, docs/tool_orchestration.md);
  malformed_reward: the reward of an episode with a malformed call (invalid JSON, a body over
          the syntax's cap, an unknown function, a call past the budget); None scores it like
          the authors' transcript parser does: the malformed attempt is dropped if its JSON
          failed, counted as an unanswered call (ast 0, sem 0) if it named a function.
Every row's components are extras (logged as means): orch/R_atomic, orch/R_orch, orch/name,
orch/structure, orch/values, orch/semantic, orch/success, orch/turn_accuracy, and the ledger's
tool/* counts (tool/malformed: episodes with a malformed call). "correct" is full-workflow
success, whatever the reward.
"""
from __future__ import annotations

import json
from typing import Any, Sequence

import numpy as np

from rl_jax.projects.tool_orchestration import reward as rw
from rl_jax.projects.tool_orchestration.task import ground_truth
from rl_jax.rewards.scorers import SCORERS, Scores, check_rewards
from rl_jax.tools import EpisodeLedger, episode_extras

COMPONENTS = ("R_atomic", "R_orch", "name", "structure", "values", "semantic", "success",
              "turn_accuracy")


def _json_or_none(text: str) -> Any:
  try:
    return json.loads(text)
  except ValueError:
    return None


def ledger_calls(ledger: EpisodeLedger) -> tuple[list[Any], list[tuple[Any, Any]]]:
  """(calls, pairs) of an episode, as the authors' parser would read its transcript: a
  malformed attempt without a name (syntax error) is dropped; one with a name (unknown
  function, over budget) is a call without response; an executed call is paired with its
  response (the cache's JSON, or the miss's error dict)."""
  calls, pairs = [], []
  for entry in ledger.entries:
    if entry.malformed is not None and not entry.name:
      continue
    call = {"name": entry.name, "arguments": _json_or_none(entry.arguments) or {}}
    calls.append(call)
    if entry.malformed is None:
      response = _json_or_none(entry.response)
      if response is not None:
        pairs.append((call, response))
  return calls, pairs


def episode_scores(item, ledger: EpisodeLedger, *, reward: str, weight_mode: str,
                   atomic_match: str = "first") -> dict[str, float]:
  calls, pairs = ledger_calls(ledger)
  return rw.score(calls, pairs, ground_truth(item), reward=reward, weight_mode=weight_mode,
                  atomic_match=atomic_match)


class OrchestrationScorer:
  def __init__(self, reward: str, weight_mode: str, malformed_reward: float | None,
               atomic_match: str = "first"):
    if reward not in rw.REWARD_NAMES:
      raise ValueError(f"config rl.scorer.reward must be one of {rw.REWARD_NAMES}, got "
                       f"{reward!r}")
    if weight_mode not in rw.WEIGHT_MODES:
      raise ValueError(f"config rl.scorer.weight_mode must be one of {rw.WEIGHT_MODES}, got "
                       f"{weight_mode!r}")
    if atomic_match not in rw.ATOMIC_MATCHES:
      raise ValueError(f"config rl.scorer.atomic_match must be one of {rw.ATOMIC_MATCHES}, got "
                       f"{atomic_match!r}")
    self.reward, self.weight_mode, self.atomic_match = reward, weight_mode, atomic_match
    self.malformed_reward = None if malformed_reward is None else float(malformed_reward)

  def __call__(self, problems: Sequence[Any], out) -> Scores:
    if out.episodes is None:
      raise ValueError("config rl.scorer.name='tool_orchestration' needs rl.rollout.name='tool'")
    extras = episode_extras(out.episodes)
    rows = [episode_scores(p, e.ledger, reward=self.reward, weight_mode=self.weight_mode,
                           atomic_match=self.atomic_match)
            for p, e in zip(problems, out.episodes)]
    reward_B = np.asarray([r["reward"] for r in rows], np.float32)
    if self.malformed_reward is not None:
      reward_B = np.where(extras["tool/malformed"] > 0, np.float32(self.malformed_reward),
                          reward_B)
    for key in COMPONENTS:
      extras[f"orch/{key}"] = np.asarray([r[key] for r in rows], np.float32)
    extras["correct"] = extras["orch/success"].copy()
    return Scores(check_rewards(reward_B, "tool_orchestration scorer"), extras)


@SCORERS.register("tool_orchestration")
def orchestration_scorer(*, ctx=None, section=None, reward: str = "graduated",
                         weight_mode: str = "uniform",
                         malformed_reward: float | None = 0.0,
                         atomic_match: str = "first") -> OrchestrationScorer:
  return OrchestrationScorer(reward, weight_mode, malformed_reward, atomic_match)
