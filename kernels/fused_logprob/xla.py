"""Chunked pure-JAX fused log-prob: loops over vocabulary tiles (outer) and token blocks (inner).

The default on CPU. Peak temporary memory is a few [block_n, block_v] f32 tiles plus the [N, D]
gradient accumulator, instead of the naive path's several f32 [N, V] tensors. The math of one
tile lives in `tiles.py`; the custom VJP (recompute the logit tiles in the backward) in `vjp.py`.

Vocabulary tiles never pad W (a padded copy would cost D*V bytes): the last tile is shifted left
to end exactly at V, `start = min(j * block_v, V - block_v)`, and its columns below `j * block_v`
(already counted by tile j-1) are masked out. Token blocks pad h, y (cheap, [N, D]) instead.

Costs: the forward does one N*D*V matmul; the backward recomputes it and adds the dh and dW
matmuls, so 4 matmuls in all against the naive path's 3 (see docs/benchmarks.md).
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import lax

from rl_jax.kernels.fused_logprob import tiles
from rl_jax.kernels.fused_logprob import vjp

# Measured on a 2-core CPU (docs/benchmarks.md): an 8 MiB f32 [1024, 2048] tile stays in cache
# for the elementwise passes, and the matmuls are still large; [4096, 8192] tiles were ~1.5x
# slower at N=2048, V=65536 (fwd+bwd 30 s vs 16 s).
DEFAULT_BLOCK_N = 1024
DEFAULT_BLOCK_V = 2048


def _blocks(n: int, v: int, block_n: int, block_v: int):
  bn, bv = min(block_n, n), min(block_v, v)
  n_pad = -(-n // bn) * bn
  return bn, bv, n_pad, n_pad // bn, -(-v // bv)


def _vocab_tile(w_DxV, j, bv: int):
  """W columns [start, start + bv) with start clamped so the tile ends inside the vocabulary."""
  lo = j * bv
  start = jnp.minimum(lo, w_DxV.shape[1] - bv)
  w_Dxv = lax.dynamic_slice_in_dim(w_DxV, start, bv, axis=1)
  cols_1xv = start + lax.broadcasted_iota(jnp.int32, (1, bv), 1)
  return w_Dxv, cols_1xv, cols_1xv >= lo, start


def _pad_rows(x, n_pad: int):
  return jnp.pad(x, [(0, n_pad - x.shape[0])] + [(0, 0)] * (x.ndim - 1))


def _loop(n_iter: int, body, carry):
  # One iteration: call the body directly (no loop, no dynamic slicing of the carry).
  return body(0, carry) if n_iter == 1 else lax.fori_loop(0, n_iter, body, carry)


def _rows(x, i, bn: int, n_blocks: int):
  return x if n_blocks == 1 else lax.dynamic_slice_in_dim(x, i * bn, bn, axis=0)


def _set_rows(x, x_block, i, bn: int, n_blocks: int):
  return x_block if n_blocks == 1 else lax.dynamic_update_slice_in_dim(x, x_block, i * bn, 0)


def stats(h_NxD, w_DxV, y_N, inv_t, *, block_n: int, block_v: int):
  """(lse_N, entropy_N, z_y_N) by an online log-sum-exp over vocabulary tiles."""
  n, v = h_NxD.shape[0], w_DxV.shape[1]
  bn, bv, n_pad, n_blocks, v_tiles = _blocks(n, v, block_n, block_v)
  h_pxD = _pad_rows(h_NxD, n_pad)
  y_px1 = _pad_rows(y_N.astype(jnp.int32), n_pad)[:, None]

  def vocab_step(j, st):
    w_Dxv, cols_1xv, valid_1xv, _ = _vocab_tile(w_DxV, j, bv)

    def token_step(i, st):
      z = tiles.tile_logits(_rows(h_pxD, i, bn, n_blocks), w_Dxv, inv_t)
      st_b = tuple(_rows(x, i, bn, n_blocks) for x in st)
      st_b = tiles.update_stats(st_b, z, valid_1xv, cols_1xv, _rows(y_px1, i, bn, n_blocks))
      return tuple(_set_rows(x, xb, i, bn, n_blocks) for x, xb in zip(st, st_b))

    return _loop(n_blocks, token_step, st)

  st = _loop(v_tiles, vocab_step, tiles.init_stats(n_pad))
  return tuple(x[:n, 0] for x in tiles.finalize_stats(*st))


def grads(h_NxD, w_DxV, y_N, inv_t, lse_N, ez_N, g_N, gent_N, *, block_n: int, block_v: int):
  """(dh_NxD f32, dw_DxV in W's dtype, dzz_N): recomputes each logit tile once."""
  n, d = h_NxD.shape
  v = w_DxV.shape[1]
  bn, bv, n_pad, n_blocks, v_tiles = _blocks(n, v, block_n, block_v)
  h_pxD = _pad_rows(h_NxD, n_pad)
  y_px1 = _pad_rows(y_N.astype(jnp.int32), n_pad)[:, None]
  # Padded rows get g = gH = 0, hence dz = 0: they add nothing to dW.
  rows_px1 = [_pad_rows(x.astype(jnp.float32), n_pad)[:, None] for x in (lse_N, ez_N, g_N, gent_N)]

  def vocab_step(j, carry):
    dh_pxD, dzz_px1, dw_DxV = carry
    w_Dxv, cols_1xv, valid_1xv, start = _vocab_tile(w_DxV, j, bv)

    def token_step(i, c):
      dh_pxD, dzz_px1, dw_Dxv = c
      h_b = _rows(h_pxD, i, bn, n_blocks)
      z = tiles.tile_logits(h_b, w_Dxv, inv_t)
      lse, ez, g, gent = (_rows(x, i, bn, n_blocks) for x in rows_px1)
      dz, dzz = tiles.tile_dlogits(z, valid_1xv, cols_1xv, _rows(y_px1, i, bn, n_blocks),
                                   lse, ez, g, gent)
      dh_b = _rows(dh_pxD, i, bn, n_blocks) + tiles.tile_dh(dz, w_Dxv, inv_t)
      dzz_b = _rows(dzz_px1, i, bn, n_blocks) + dzz
      return (_set_rows(dh_pxD, dh_b, i, bn, n_blocks), _set_rows(dzz_px1, dzz_b, i, bn, n_blocks),
              dw_Dxv + tiles.tile_dw(h_b, dz, inv_t))

    init = (dh_pxD, dzz_px1, jnp.zeros((d, bv), jnp.float32))
    dh_pxD, dzz_px1, dw_Dxv = _loop(n_blocks, token_step, init)
    # Columns that tile j-1 already wrote keep their value (this tile's dz there is 0).
    old = lax.dynamic_slice_in_dim(dw_DxV, start, bv, axis=1)
    new = jnp.where(valid_1xv, dw_Dxv.astype(dw_DxV.dtype), old)
    return dh_pxD, dzz_px1, lax.dynamic_update_slice_in_dim(dw_DxV, new, start, axis=1)

  init = (jnp.zeros((n_pad, d), jnp.float32), jnp.zeros((n_pad, 1), jnp.float32),
          jnp.zeros((d, v), w_DxV.dtype))
  dh_pxD, dzz_px1, dw_DxV = _loop(v_tiles, vocab_step, init)
  return dh_pxD[:n], dw_DxV, dzz_px1[:n, 0]


def make_passes(*, block_n: int = DEFAULT_BLOCK_N, block_v: int = DEFAULT_BLOCK_V) -> vjp.Passes:
  return vjp.Passes(stats=functools.partial(stats, block_n=block_n, block_v=block_v),
                    grads=functools.partial(grads, block_n=block_n, block_v=block_v))


def fused_logprob_entropy(h_NxD, w_DxV, y_N, mask_N, temperature, *,
                          block_n: int = DEFAULT_BLOCK_N, block_v: int = DEFAULT_BLOCK_V):
  """Differentiable (log p(y)_N, entropy_N); inputs already validated by `api.py`."""
  return vjp.fused_logprob_entropy(make_passes(block_n=block_n, block_v=block_v),
                                   h_NxD, w_DxV, y_N, mask_N, temperature)
