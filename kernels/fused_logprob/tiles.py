"""Per-tile math of the fused log-prob, shared by the XLA (`xla.py`) and Pallas (`pallas.py`) paths.

A tile is a block of `n` tokens by `v` vocabulary columns. Scaled logits of a tile are

    z_nxv = (h_nxD @ W_Dxv) * inv_t,          inv_t = 1 / temperature

computed in f32 (bf16 inputs are multiplied with f32 accumulation). Tiles never grow to [N, V].

Forward: online log-sum-exp over the vocabulary tiles of a token block (Milakov & Gimelshein
2018, "Online normalizer calculation for softmax", arXiv 1805.02867), with per-row running stats

    m   = max_j z_j                     (running max)
    s   = sum_j exp(z_j - m)            (rescaled by exp(m_old - m_new) when m grows)
    t   = sum_j exp(z_j - m) * z_j      (for the entropy, rescaled the same way)
    z_y = z at the target column        (exactly one tile holds it)

and then  lse = m + log s,  log p(y) = z_y - lse,  H = lse - t / s  (since H = lse - E_p[z]).

Backward, given lse and E_p[z] = lse - H from the forward, and the output cotangents g (for
log p(y)) and g_H (for H), per tile:

    p_j    = exp(z_j - lse)
    dz_j   = g * (1[j = y] - p_j)  -  g_H * p_j * (z_j - E_p[z])
    dh    += (dz @ W_tile^T) * inv_t,     dW_tile += (h^T @ dz) * inv_t
    dzz   += sum_j dz_j * z_j              (d temperature = -inv_t * sum_rows dzz)

Columns outside the vocabulary (or already counted by an overlapping tile) are excluded with a
`valid_1xv` mask, never by padding W (a padded copy of W would cost D*V bytes).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

_NN = (((1,), (0,)), ((), ()))   # [n, D] @ [D, v]
_NT = (((1,), (1,)), ((), ()))   # [n, v] @ [D, v]^T -> [n, D]
_TN = (((0,), (0,)), ((), ()))   # [n, D]^T @ [n, v] -> [D, v]


def precision_for(dtype) -> lax.Precision:
  """f32 inputs ask for full-precision matmuls (TPU would otherwise use bf16 passes)."""
  return lax.Precision.HIGHEST if jnp.dtype(dtype) == jnp.float32 else lax.Precision.DEFAULT


def tile_logits(h_nxD: jax.Array, w_Dxv: jax.Array, inv_t: jax.Array) -> jax.Array:
  """z = (h @ W) * inv_t in f32."""
  z = lax.dot_general(h_nxD, w_Dxv, _NN, precision=precision_for(h_nxD.dtype),
                      preferred_element_type=jnp.float32)
  return z * inv_t


def init_stats(n: int):
  """(m, s, t, z_y) for `n` rows, each [n, 1] f32, before any tile."""
  m = jnp.full((n, 1), -jnp.inf, jnp.float32)
  zero = jnp.zeros((n, 1), jnp.float32)
  return m, zero, zero, zero


def update_stats(stats, z_nxv, valid_1xv, cols_1xv, y_nx1):
  """Folds one tile into the running (m, s, t, z_y); every tile must hold >= 1 valid column."""
  m, s, t, zy = stats
  z_max = jnp.max(jnp.where(valid_1xv, z_nxv, -jnp.inf), axis=1, keepdims=True)
  m_new = jnp.maximum(m, z_max)
  alpha = jnp.exp(m - m_new)             # 0 on the first tile (m = -inf, m_new finite)
  e = jnp.where(valid_1xv, jnp.exp(z_nxv - m_new), 0.0)
  z_valid = jnp.where(valid_1xv, z_nxv, 0.0)   # avoids 0 * (-inf) in t
  s_new = s * alpha + jnp.sum(e, axis=1, keepdims=True)
  t_new = t * alpha + jnp.sum(e * z_valid, axis=1, keepdims=True)
  hit = valid_1xv & (cols_1xv == y_nx1)
  zy_new = zy + jnp.sum(jnp.where(hit, z_nxv, 0.0), axis=1, keepdims=True)
  return m_new, s_new, t_new, zy_new


def finalize_stats(m, s, t, zy):
  """Running stats -> (lse, entropy, z_y), each with the stats' shape."""
  lse = m + jnp.log(s)
  return lse, lse - t / s, zy


def tile_dlogits(z_nxv, valid_1xv, cols_1xv, y_nx1, lse_nx1, ez_nx1, g_nx1, gent_nx1):
  """dz (cotangent of the scaled logits z) of one tile, and the row sums of dz * z.

  Invalid columns get dz = 0 exactly, so garbage there never reaches dh or dW.
  """
  p = jnp.where(valid_1xv, jnp.exp(z_nxv - lse_nx1), 0.0)
  onehot = (valid_1xv & (cols_1xv == y_nx1)).astype(jnp.float32)
  z_valid = jnp.where(valid_1xv, z_nxv, 0.0)
  dz = g_nx1 * (onehot - p) - gent_nx1 * p * (z_valid - ez_nx1)
  dz = jnp.where(valid_1xv, dz, 0.0)
  return dz, jnp.sum(dz * z_valid, axis=1, keepdims=True)


def tile_dh(dz_nxv, w_Dxv, inv_t):
  """(dz @ W^T) * inv_t in f32; dz is cast to W's dtype so bf16 runs on bf16 matmul units."""
  out = lax.dot_general(dz_nxv.astype(w_Dxv.dtype), w_Dxv, _NT,
                        precision=precision_for(w_Dxv.dtype), preferred_element_type=jnp.float32)
  return out * inv_t


def tile_dw(h_nxD, dz_nxv, inv_t):
  """(h^T @ dz) * inv_t in f32."""
  out = lax.dot_general(h_nxD, dz_nxv.astype(h_nxD.dtype), _TN,
                        precision=precision_for(h_nxD.dtype), preferred_element_type=jnp.float32)
  return out * inv_t
