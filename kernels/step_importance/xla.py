"""SWAP step penalties in plain XLA: scatter-add segment lengths, gather the per-token penalty.

O(B*T + B*K*A) work whatever the number of steps K (the Pallas kernel instead uses a static
one-hot loop over K, which suits TPU vector units). Formulas: `formulas.py`.
"""
from __future__ import annotations

import jax.numpy as jnp

from rl_jax.kernels.step_importance import formulas


def step_penalties(answer_logp_BxKp1xA, answer_mask_BxKp1xA, segment_ids_BxT, excess_len_B,
                   resp_len_B, alpha, tau, *, normalization: str, weighting: str):
  """(importance, norm_importance, weights, step_penalty, step_len) [B, K] and token_penalty [B, T]."""
  b, k1, _ = answer_logp_BxKp1xA.shape
  k = k1 - 1
  p_BxKp1 = formulas.answer_logp(answer_logp_BxKp1xA, answer_mask_BxKp1xA)
  seg = segment_ids_BxT.astype(jnp.int32)
  in_step = (seg >= 0) & (seg < k)
  # Tokens outside every step land in an extra column K, dropped after the scatter.
  col = jnp.where(in_step, seg, k)
  len_BxK = jnp.zeros((b, k + 1), jnp.int32).at[jnp.arange(b)[:, None], col].add(1)[:, :k]
  imp, norm, weights, step_pen = formulas.step_weights(
      p_BxKp1, len_BxK, excess_len_B[:, None], resp_len_B[:, None], alpha, tau,
      normalization=normalization, weighting=weighting)
  pen = jnp.take_along_axis(step_pen, jnp.where(in_step, seg, 0), axis=1)
  pen = formulas.flag_bad_segments(jnp.where(in_step, pen, 0.0), seg, k)
  return imp, norm, weights, step_pen, len_BxK, pen
