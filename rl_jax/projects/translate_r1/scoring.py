"""The Translate-R1 scorer: the generic episode scorer plus per-tier training metrics.

Registered as scorer "translate_r1_episode": rewards and extras are those of the "episode"
scorer (`rl_jax.rewards.scorers`: exact-match reward, `malformed_reward` for a malformed call,
extras "correct", "tool/cost", "tool/used", "tool/attempted", ...); the metrics add, per trained
tier, the sampled translate rate ("tool/translate_rate_<tier>") and the native accuracy of the
rows that did not attempt a call ("tool/native_acc_<tier>": what the gate sees), which the
report's over-suppression table reads.
"""
from __future__ import annotations

import numpy as np

from rl_jax.projects.translate_r1.evaluation import TRAINED_TIERS
from rl_jax.rewards.scorers import SCORERS, EpisodeScorer, Scores


class TierScorer:
  def __init__(self, ctx, malformed_reward: float):
    self.episode = EpisodeScorer(ctx, malformed_reward)

  def __call__(self, problems, out) -> Scores:
    scores = self.episode(problems, out)
    ex = scores.extras
    tier_B = np.asarray([p.tier for p in problems])
    metrics = {"tool/malformed_rate": float(ex["tool/malformed"].mean())}
    for tier in TRAINED_TIERS:
      sel = tier_B == tier
      if sel.any():
        metrics[f"tool/translate_rate_{tier}"] = float(ex["tool/used"][sel].mean())
        native = sel & (ex["tool/attempted"] == 0)
        if native.any():
          metrics[f"tool/native_acc_{tier}"] = float(ex["correct"][native].mean())
    scores.metrics.update(metrics)
    return scores


@SCORERS.register("translate_r1_episode")
def translate_r1_scorer(*, ctx, section=None, malformed_reward: float = 0.0) -> TierScorer:
  return TierScorer(ctx, malformed_reward)
