"""SWAP step penalties, one response at a time (vmapped), written directly from the
SWAP formulas (`formulas.py`).

Independent of `formulas.py` on purpose (segment_sum, jax.nn.softmax, indexing): the kernels are
tested against it and against a numpy loop in the tests. Conventions and formulas: `api.py`.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


def _one_response(logp_Kp1xA, mask_Kp1xA, seg_T, excess, resp, alpha, tau, normalization,
                  weighting):
  k = logp_Kp1xA.shape[0] - 1
  p_Kp1 = jnp.sum(jnp.where(mask_Kp1xA != 0, logp_Kp1xA.astype(jnp.float32), 0.0), axis=-1)
  in_step = (seg_T >= 0) & (seg_T < k)
  lengths = jax.ops.segment_sum(in_step.astype(jnp.int32), jnp.where(in_step, seg_T, k),
                                num_segments=k + 1)[:k]
  present = lengths > 0
  n_present = jnp.sum(present)
  imp = jnp.where(present, jnp.diff(p_Kp1), 0.0)
  lo = jnp.min(jnp.where(present, imp, jnp.inf))
  hi = jnp.max(jnp.where(present, imp, -jnp.inf))
  if normalization == "softmax":
    norm = jax.nn.softmax(jnp.where(present, imp / tau, -jnp.inf))
  else:
    norm = (imp - lo) / (hi - lo)
    norm = jnp.where(hi > lo, norm, 0.0)
  norm = jnp.where(present & (n_present > 0), norm, 0.0)
  length_f = lengths.astype(jnp.float32)
  raw = length_f * (1.0 - norm) if weighting == "linear" else length_f * jnp.exp(-(imp - lo) / tau)
  raw = jnp.where(present, raw, 0.0)
  weights = jnp.where(jnp.sum(raw) > 0, raw / jnp.sum(raw),
                      length_f / jnp.maximum(jnp.sum(length_f), 1.0))
  mass = jnp.where(resp > 0, alpha * excess / resp, 0.0)
  step_pen = jnp.where(present, mass * weights / jnp.maximum(length_f, 1.0), 0.0)
  token_pen = jnp.where(in_step, step_pen[jnp.clip(seg_T, 0, k - 1)], 0.0)
  token_pen = jnp.where((seg_T < -1) | (seg_T >= k), jnp.nan, token_pen)
  return imp, norm, weights, step_pen, lengths, token_pen


def step_penalties(answer_logp_BxKp1xA, answer_mask_BxKp1xA, segment_ids_BxT, excess_len_B,
                   resp_len_B, alpha, tau, *, normalization: str, weighting: str):
  """Same outputs as `xla.step_penalties`."""
  one = lambda lp, m, s, e, r: _one_response(lp, m, s.astype(jnp.int32), e.astype(jnp.float32),
                                             r.astype(jnp.float32), alpha, tau, normalization,
                                             weighting)
  return jax.vmap(one)(answer_logp_BxKp1xA, answer_mask_BxKp1xA, segment_ids_BxT, excess_len_B,
                       resp_len_B)


def random_inputs(seed: int = 0, b: int = 11, k: int = 4, t: int = 40, a: int = 5,
                  max_len: int = 8):
  """Synthetic (answer_logp, answer_mask, segment_ids, excess_len, resp_len) numpy inputs for
  tests and benchmarks: random responses plus the corner cases (rows 0-2: no step, one step,
  K steps; row 3: |o| = 0; row 4: an incorrect response, E = 0). Any K >= 1, B >= 5."""
  rng = np.random.default_rng(seed)
  logp = -rng.gamma(2.0, 1.0, (b, k + 1, a)).astype(np.float32)
  amask = np.zeros((b, k + 1, a), bool)
  seg = np.full((b, t), -1, np.int32)
  for i in range(b):
    amask[i, :, :rng.integers(1, a + 1)] = True
    n_steps = [0, 1, k][i] if i < 3 else int(rng.integers(min(2, k), k + 1))
    start = int(rng.integers(0, 4))
    for s in range(n_steps):
      length = int(rng.integers(1, max_len))
      seg[i, start:start + length] = s
      start += length
  resp = (seg >= 0).sum(1).astype(np.float32) + 3
  resp[3] = 0
  excess = np.where(rng.random(b) < 0.8, rng.integers(1, 20, b), 0).astype(np.float32)
  excess[4] = 0
  return logp, amask, seg, excess, resp
