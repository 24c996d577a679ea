"""DAPO's host-side pieces: the soft overlong penalty and dynamic sampling (numpy, not jitted).

Both run on the host between rollout and update (docs/architecture.md); the DAPO *loss* is
`losses.preset("dapo")` (token mean, clip-higher 0.2 / 0.28, no KL).

Reference: Yu et al. 2025, "DAPO: An Open-Source LLM Reinforcement Learning System at Scale",
arXiv 2503.14476, §3.2 (dynamic sampling) and §3.4 (overlong reward shaping).
"""
from __future__ import annotations

from typing import Any, Callable

import jax
import numpy as np

from rl_jax.algorithms.advantages import check_group_shape


def overlong_penalty(lengths_tokens_B, *, max_len: int, cache_len: int) -> np.ndarray:
  """Soft overlong punishment R_len(L), added to the task reward (DAPO Eq. 13).

    R_len(L) = 0                                  if L <= max_len - cache_len
             = ((max_len - cache_len) - L) / cache_len   if max_len - cache_len < L <= max_len
             = -1                                 if L > max_len

  L is the response length in TOKENS (Tunix measured characters of the decoded string against
  token thresholds; integer input is required so a float/char length is not passed by mistake).
  Paper values: max_len 20480, cache_len 4096.

  Returns:
    [B] float32 penalties in [-1, 0].
  """
  lengths = np.asarray(lengths_tokens_B)
  if lengths.ndim != 1 or not np.issubdtype(lengths.dtype, np.integer):
    raise ValueError("lengths_tokens_B must be a 1-D integer array of token counts, got "
                     f"dtype {lengths.dtype} shape {lengths.shape} (in overlong_penalty)")
  if not 0 < cache_len <= max_len:
    raise ValueError(f"need 0 < cache_len <= max_len, got cache_len={cache_len}, "
                     f"max_len={max_len} (in overlong_penalty)")
  if (lengths < 0).any():
    raise ValueError(f"token lengths must be >= 0, got min {lengths.min()} (in overlong_penalty)")
  soft_start = max_len - cache_len
  ramp = (soft_start - lengths.astype(np.float64)) / cache_len
  penalty = np.where(lengths <= soft_start, 0.0, np.where(lengths <= max_len, ramp, -1.0))
  return penalty.astype(np.float32)


def dynamic_sampling_keep(rewards_B, *, group_size: int) -> np.ndarray:
  """[num_groups] bool: True where a group's rewards are not all equal (DAPO dynamic sampling).

  A group whose responses all get the same reward (all correct or all wrong) has zero advantage
  under group normalisation and so no gradient; DAPO drops it and samples more. Equality is
  tested exactly (max != min), so no variance tolerance is involved.
  """
  rewards = np.asarray(rewards_B, dtype=np.float64)
  if rewards.ndim != 1:
    raise ValueError(f"rewards_B must be 1-D, got shape {rewards.shape} (in dynamic_sampling_keep)")
  if not np.isfinite(rewards).all():
    raise ValueError("rewards_B contains NaN/inf (in dynamic_sampling_keep)")
  num_groups = check_group_shape(rewards.shape[0], group_size, "dynamic_sampling_keep")
  r_NxG = rewards.reshape(num_groups, group_size)
  return r_NxG.max(axis=1) != r_NxG.min(axis=1)


def _take_rows(payload: Any, rows: np.ndarray, batch: int) -> Any:
  def take(leaf):
    leaf = np.asarray(leaf)
    if leaf.ndim == 0 or leaf.shape[0] != batch:
      raise ValueError(f"every payload leaf must have leading dimension B={batch}, got shape "
                       f"{leaf.shape} (in fill_groups)")
    return leaf[rows]
  return jax.tree.map(take, payload)


def fill_groups(draw: Callable[[], tuple[Any, Any]], *, group_size: int, target_groups: int,
                max_draws: int) -> tuple[np.ndarray, Any, dict[str, int]]:
  """Calls `draw()` until `target_groups` groups with non-constant rewards are collected.

  `draw()` returns (rewards_B, payload): rewards of consecutive groups of `group_size` rows, and
  any pytree (dict of arrays, Rollout, ...) whose leaves have leading dimension B. Kept groups are
  concatenated in draw order; surplus kept groups of the last draw are dropped, so exactly
  `target_groups * group_size` rows come back (as verl's DAPO recipe truncates the batch).

  Raises:
    RuntimeError if `max_draws` draws do not yield enough groups (the prompts are too easy or too
      hard for the policy; raise max_draws or the rollout batch).

  Returns:
    rewards [target_groups * group_size] float32, payload with the kept rows, and info with
    num_draws, groups_seen, groups_kept (before truncation).
  """
  if target_groups < 1 or max_draws < 1:
    raise ValueError(f"need target_groups >= 1 and max_draws >= 1, got {target_groups}, "
                     f"{max_draws} (in fill_groups)")
  kept_rewards, kept_payloads = [], []
  groups_seen = groups_kept = 0
  for num_draws in range(1, max_draws + 1):
    rewards_B, payload = draw()
    rewards_B = np.asarray(rewards_B, dtype=np.float32)
    keep_N = dynamic_sampling_keep(rewards_B, group_size=group_size)
    rows = np.flatnonzero(np.repeat(keep_N, group_size))
    kept_rewards.append(rewards_B[rows])
    kept_payloads.append(_take_rows(payload, rows, rewards_B.shape[0]))
    groups_seen += keep_N.size
    groups_kept += int(keep_N.sum())
    if groups_kept >= target_groups:
      n_rows = target_groups * group_size
      rewards = np.concatenate(kept_rewards)[:n_rows]
      payload = jax.tree.map(lambda *xs: np.concatenate(xs)[:n_rows], *kept_payloads)
      info = dict(num_draws=num_draws, groups_seen=groups_seen, groups_kept=groups_kept)
      return rewards, payload, info
  raise RuntimeError(
      f"dynamic sampling kept {groups_kept} of {groups_seen} groups in {max_draws} draws, "
      f"short of target_groups={target_groups}: nearly every group has identical rewards; "
      "raise max_draws or the rollout batch, or check the reward function (in fill_groups)")
