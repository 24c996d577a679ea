"""Naive per-token log-prob: materialises the f32 [N, V] logits (the thing the kernels remove).

    z        = (h @ W) / T                         f32 [N, V]
    log p(y) = log_softmax(z)[y]
    H        = -sum_j softmax(z)_j * log_softmax(z)_j

Masked tokens return 0 (log-prob and entropy); unmasked targets outside [0, V) return NaN, the
same conventions as the fused paths (`vjp.py`). Gradients come from plain autodiff.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from rl_jax.kernels.fused_logprob import tiles


def fused_logprob_entropy(h_NxD, w_DxV, y_N, mask_N, temperature):
  """(log p(y)_N, entropy_N), f32, through the full [N, V] log-softmax."""
  vocab = w_DxV.shape[1]
  logits_NxV = jnp.dot(h_NxD, w_DxV, precision=tiles.precision_for(h_NxD.dtype),
                       preferred_element_type=jnp.float32) / jnp.asarray(temperature, jnp.float32)
  logp_NxV = jax.nn.log_softmax(logits_NxV, axis=-1)
  in_range = (y_N >= 0) & (y_N < vocab)
  y_safe = jnp.where(in_range, y_N, 0).astype(jnp.int32)
  logp_N = jnp.take_along_axis(logp_NxV, y_safe[:, None], axis=-1)[:, 0]
  entropy_N = -jnp.sum(jnp.exp(logp_NxV) * logp_NxV, axis=-1)
  keep = mask_N != 0
  # Multiplying (not selecting) by NaN makes the gradient NaN too, as in the fused paths.
  logp_N = jnp.where(keep, logp_N * jnp.where(keep & ~in_range, jnp.nan, 1.0), 0.0)
  return logp_N, jnp.where(keep, entropy_N, 0.0)
