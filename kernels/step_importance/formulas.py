"""SWAP step-importance formulas on [b, K] rows, shared by the XLA and Pallas paths.

Indices are 0-based: step k in [0, K) is the spec's step k+1, and prefix column k in [0, K]
is "the response cut after k steps" (column 0 = no reasoning). For one response
(SWAP's step importance and redistribution):

    P_k      = sum_a m_a * logp_{k,a}                 answer log-prob after k steps, k = 0..K
    L_k      = #{t : seg_t = k}                       step length; step k exists iff L_k > 0
    I_k      = P_{k+1} - P_k                          importance (0 for absent steps)
    I~_k     = softmax_k(I_k / tau)                   normalization="softmax" (over present steps)
             = (I_k - min I) / (max I - min I)        normalization="minmax"  (0 if max == min)
    r_k      = L_k * (1 - I~_k)                       weighting="linear"
             = L_k * exp(-(I_k - min I) / tau)        weighting="exp"  (the shift cancels below)
    u_k      = r_k / sum_j r_j                        or L_k / sum_j L_j when sum_j r_j = 0
                                                      (one step under softmax, all weight zero)
    M        = alpha * E / |o|                        penalty mass (0 when |o| = 0)
    p_k      = M * u_k / L_k                          per-token penalty of step k
    pen_t    = p_{seg_t}  (0 where seg_t = -1)        so sum_t pen_t = M when a step exists

Everything here is elementwise or a reduction over K on [b, K] arrays, so it runs unchanged
inside a Pallas kernel block and on the whole batch in XLA.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

NORMALIZATIONS = ("softmax", "minmax")
WEIGHTINGS = ("linear", "exp")


def answer_logp(answer_logp_bxKp1xA, answer_mask_bxKp1xA):
  """P_bxKp1 = sum over answer tokens of the masked per-token log-probs."""
  keep = answer_mask_bxKp1xA != 0
  return jnp.sum(jnp.where(keep, answer_logp_bxKp1xA.astype(jnp.float32), 0.0), axis=-1)


def _masked_max(x, valid, axis=-1):
  return jnp.max(jnp.where(valid, x, -jnp.inf), axis=axis, keepdims=True)


def step_weights(p_bxKp1, len_bxK, excess_bx1, resp_bx1, alpha, tau, *, normalization: str,
                 weighting: str):
  """(I, I~, u, p), each [b, K] f32, from prefix log-probs and step lengths (module docstring)."""
  len_f = len_bxK.astype(jnp.float32)
  valid = len_bxK > 0
  any_valid = jnp.any(valid, axis=-1, keepdims=True)
  imp = jnp.where(valid, p_bxKp1[:, 1:] - p_bxKp1[:, :-1], 0.0)
  hi = jnp.where(any_valid, _masked_max(imp, valid), 0.0)
  lo = jnp.where(any_valid, -_masked_max(-imp, valid), 0.0)

  if normalization == "softmax":
    logits = imp / tau
    top = jnp.where(any_valid, _masked_max(logits, valid), 0.0)
    e = jnp.where(valid, jnp.exp(logits - top), 0.0)
    norm = e / jnp.maximum(jnp.sum(e, axis=-1, keepdims=True), 1e-30)
  else:
    span = hi - lo
    norm = jnp.where(valid & (span > 0), (imp - lo) / jnp.where(span > 0, span, 1.0), 0.0)

  if weighting == "linear":
    raw = len_f * (1.0 - norm)
  else:
    raw = len_f * jnp.exp(-(imp - lo) / tau)
  raw = jnp.where(valid, raw, 0.0)
  raw_sum = jnp.sum(raw, axis=-1, keepdims=True)
  len_sum = jnp.sum(len_f, axis=-1, keepdims=True)
  weights = jnp.where(raw_sum > 0, raw / jnp.where(raw_sum > 0, raw_sum, 1.0),
                      len_f / jnp.maximum(len_sum, 1.0))

  resp = resp_bx1.astype(jnp.float32)
  mass = jnp.where(resp > 0, alpha * excess_bx1.astype(jnp.float32) / jnp.where(resp > 0, resp,
                                                                                  1.0), 0.0)
  step_pen = jnp.where(valid, mass * weights / jnp.maximum(len_f, 1.0), 0.0)
  return imp, norm, weights, step_pen


def segment_lengths_onehot(seg_bxT, num_steps: int):
  """L_bxK by one compare-and-sum per step (static loop over K; no scatter, kernel-friendly)."""
  k_1xK = jax.lax.broadcasted_iota(jnp.int32, (1, num_steps), 1)
  lengths = jnp.zeros((seg_bxT.shape[0], num_steps), jnp.int32)
  for k in range(num_steps):
    count = jnp.sum((seg_bxT == k).astype(jnp.int32), axis=1, keepdims=True)
    lengths = lengths + jnp.where(k_1xK == k, count, 0)
  return lengths


def broadcast_onehot(step_pen_bxK, seg_bxT):
  """pen_bxT = step_pen[seg] (0 where seg = -1), by one select per step (static loop over K)."""
  out = jnp.zeros(seg_bxT.shape, jnp.float32)
  for k in range(step_pen_bxK.shape[1]):
    out = jnp.where(seg_bxT == k, step_pen_bxK[:, k:k + 1], out)
  return out


def flag_bad_segments(pen_bxT, seg_bxT, num_steps: int):
  """NaN where a segment id is outside [-1, K): visible under jit, where nothing can raise."""
  bad = (seg_bxT < -1) | (seg_bxT >= num_steps)
  return jnp.where(bad, jnp.nan, pen_bxT)
