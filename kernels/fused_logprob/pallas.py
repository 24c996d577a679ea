"""Pallas fused log-prob: three kernels (stats, dh, dW) over [block_n, block_v] tiles.

Per-tile math is `tiles.py`, the custom VJP `vjp.py`. Each kernel reduces over one axis of the
(token block i, vocabulary tile j) plane, and that reduction is scheduled one of two ways:

  schedule="grid" (TPU Mosaic, the default off GPU): a 2-D grid whose LAST axis is the reduction
      (dimension semantics "parallel", "arbitrary"). The output block is revisited along that
      axis and stays resident, so it is the accumulator (the flash-attention-on-TPU pattern).
      The last vocabulary block may run past V: its columns are masked, and W's out-of-range
      columns are zeroed before the dh matmul (they hold unspecified values).

        stats: grid (N/bn, V/bv) -> m, s, t, z_y  [N, 1]      (online log-sum-exp over j)
        dh:    grid (N/bn, V/bv) -> dh [N, D], dzz [N, 1]     (sum over j)
        dW:    grid (V/bv, N/bn) -> dW [D, V]                 (sum over i)

  schedule="loop" (GPU, where grid programs run concurrently and must not share an
      accumulator): a 1-D grid over the parallel axis and an in-kernel `fori_loop` over the
      reduction axis, reading tiles of the whole W (or h) with `pl.ds`. The last vocabulary tile
      is shifted to end at V, `start = min(j*bv, V - bv)`, never reading out of bounds; in the
      stats and dh kernels its columns below j*bv are masked (tile j-1 counted them); the dW
      kernel computes them again and writes the same values.

Both schedules run under `interpret=True` on CPU (how the tests check them). The compiled Triton
("loop") lowering was checked once on an H200 (docs/benchmarks.md "Pallas on GPU"): exact, but
only with tiles that fit in shared memory (e.g. 64 x 128 at D = 128), since a whole [D, block_v]
weight tile is staged; Triton also needs power-of-two block sizes and D (checked in `api.py`).
The TPU (Mosaic) lowering has not been run.
Token counts are padded to a multiple of block_n with mask-0 rows (cheap: [N, D]); W never is.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import lax
from jax.experimental import pallas as pl

from rl_jax.kernels.fused_logprob import tiles
from rl_jax.kernels.fused_logprob import vjp

SCHEDULES = ("grid", "loop")
DEFAULT_BLOCK_N = 256
DEFAULT_BLOCK_V = 512


def _cdiv(a: int, b: int) -> int:
  return -(-a // b)


def _grid_tile(w_ref, j, bv: int, v: int):
  """The grid schedule's block j of W (already sliced by its BlockSpec), its columns, validity."""
  cols_1xv = j * bv + lax.broadcasted_iota(jnp.int32, (1, bv), 1)
  return w_ref[...], cols_1xv, cols_1xv < v


def _loop_tile(w_ref, j, bv: int, v: int, dedupe: bool = True):
  """Tile j of the whole W, shifted left to end at V; `dedupe` masks columns tile j-1 holds."""
  lo = j * bv
  start = jnp.minimum(lo, v - bv)
  cols_1xv = start + lax.broadcasted_iota(jnp.int32, (1, bv), 1)
  valid_1xv = cols_1xv >= lo if dedupe else cols_1xv >= 0
  return w_ref[:, pl.ds(start, bv)], cols_1xv, valid_1xv


def _reduce(schedule: str, n_steps: int, step_fn, init_fn):
  """Runs `step_fn(k)` for every reduction step k: one per grid step, or all in a loop."""
  if schedule == "grid":
    k = pl.program_id(1)
    pl.when(k == 0)(init_fn)
    step_fn(k)
  else:
    init_fn()
    lax.fori_loop(0, n_steps, lambda k, c: (step_fn(k), c)[1], 0)


def _stats_kernel(inv_t_ref, h_ref, w_ref, y_ref, m_ref, s_ref, t_ref, zy_ref, *,
                  schedule: str, bv: int, v: int):
  refs = (m_ref, s_ref, t_ref, zy_ref)
  tile = _grid_tile if schedule == "grid" else _loop_tile

  def init():
    for ref, x in zip(refs, tiles.init_stats(m_ref.shape[0])):
      ref[...] = x

  def step(j):
    w, cols, valid = tile(w_ref, j, bv, v)
    z = tiles.tile_logits(h_ref[...], w, inv_t_ref[0, 0])
    new = tiles.update_stats(tuple(r[...] for r in refs), z, valid, cols, y_ref[...])
    for ref, x in zip(refs, new):
      ref[...] = x

  _reduce(schedule, _cdiv(v, bv), step, init)


def _dh_kernel(inv_t_ref, h_ref, w_ref, y_ref, lse_ref, ez_ref, g_ref, gent_ref, dh_ref, dzz_ref,
               *, schedule: str, bv: int, v: int):
  tile = _grid_tile if schedule == "grid" else _loop_tile
  inv_t = inv_t_ref[0, 0]

  def init():
    dh_ref[...] = jnp.zeros(dh_ref.shape, jnp.float32)
    dzz_ref[...] = jnp.zeros(dzz_ref.shape, jnp.float32)

  def step(j):
    w, cols, valid = tile(w_ref, j, bv, v)
    if schedule == "grid" and v % bv:
      w = jnp.where(valid, w, jnp.zeros_like(w))   # out-of-range block columns: 0 * garbage
    z = tiles.tile_logits(h_ref[...], w, inv_t)
    dz, dzz = tiles.tile_dlogits(z, valid, cols, y_ref[...], lse_ref[...], ez_ref[...],
                                 g_ref[...], gent_ref[...])
    dh_ref[...] += tiles.tile_dh(dz, w, inv_t)
    dzz_ref[...] += dzz

  _reduce(schedule, _cdiv(v, bv), step, init)


def _dw_kernel(inv_t_ref, h_ref, w_ref, y_ref, lse_ref, ez_ref, g_ref, gent_ref, dw_ref, *,
               schedule: str, bn: int, bv: int, v: int):
  inv_t = inv_t_ref[0, 0]
  j = pl.program_id(0)
  if schedule == "grid":
    w, cols, valid = _grid_tile(w_ref, j, bv, v)
    rows = lambda ref, i: ref[...]
  else:
    w, cols, valid = _loop_tile(w_ref, j, bv, v, dedupe=False)
    rows = lambda ref, i: ref[pl.ds(i * bn, bn), :]

  def partial_dw(i):
    h = rows(h_ref, i)
    z = tiles.tile_logits(h, w, inv_t)
    dz, _ = tiles.tile_dlogits(z, valid, cols, rows(y_ref, i), rows(lse_ref, i),
                               rows(ez_ref, i), rows(g_ref, i), rows(gent_ref, i))
    return tiles.tile_dw(h, dz, inv_t)

  if schedule == "grid":
    def init():
      dw_ref[...] = jnp.zeros(dw_ref.shape, jnp.float32)

    def step(i):
      dw_ref[...] += partial_dw(i)

    _reduce(schedule, 0, step, init)
  else:
    n_blocks = h_ref.shape[0] // bn
    acc = lax.fori_loop(0, n_blocks, lambda i, a: a + partial_dw(i),
                        jnp.zeros((w.shape[0], bv), jnp.float32))
    start = jnp.minimum(j * bv, v - bv)
    dw_ref[:, pl.ds(start, bv)] = acc


def _compiler_params(schedule: str, interpret: bool):
  if interpret:
    return None
  if schedule == "grid":
    from jax.experimental.pallas import tpu as pltpu  # pylint: disable=g-import-not-at-top
    return pltpu.CompilerParams(dimension_semantics=("parallel", "arbitrary"))
  from jax.experimental.pallas import triton as plt  # pylint: disable=g-import-not-at-top
  return plt.CompilerParams(num_warps=4, num_stages=2)


def _specs(schedule: str, bn: int, bv: int, d: int, *, vocab_major: bool = False):
  """BlockSpecs for (inv_t, h, w, one [N, 1] row array) in a kernel's grid coordinates."""
  whole = pl.BlockSpec()
  if schedule == "loop":
    if vocab_major:   # dW: grid over vocabulary tiles, the kernel slices everything itself
      return pl.BlockSpec((1, 1), lambda j: (0, 0)), whole, whole, whole
    return (pl.BlockSpec((1, 1), lambda i: (0, 0)), pl.BlockSpec((bn, d), lambda i: (i, 0)),
            whole, pl.BlockSpec((bn, 1), lambda i: (i, 0)))
  if vocab_major:
    return (pl.BlockSpec((1, 1), lambda j, i: (0, 0)), pl.BlockSpec((bn, d), lambda j, i: (i, 0)),
            pl.BlockSpec((d, bv), lambda j, i: (0, j)), pl.BlockSpec((bn, 1), lambda j, i: (i, 0)))
  return (pl.BlockSpec((1, 1), lambda i, j: (0, 0)), pl.BlockSpec((bn, d), lambda i, j: (i, 0)),
          pl.BlockSpec((d, bv), lambda i, j: (0, j)), pl.BlockSpec((bn, 1), lambda i, j: (i, 0)))


def _prepare(h_NxD, w_DxV, y_N, inv_t, block_n: int, block_v: int):
  n, v = h_NxD.shape[0], w_DxV.shape[1]
  bn, bv = block_n, min(block_v, v)
  n_pad = _cdiv(n, bn) * bn
  h_pxD = jnp.pad(h_NxD, ((0, n_pad - n), (0, 0)))
  y_px1 = jnp.pad(y_N.astype(jnp.int32), (0, n_pad - n))[:, None]
  inv_t_1x1 = jnp.reshape(inv_t, (1, 1)).astype(jnp.float32)
  return bn, bv, n_pad, h_pxD, y_px1, inv_t_1x1


def stats(h_NxD, w_DxV, y_N, inv_t, *, block_n: int, block_v: int, schedule: str,
          interpret: bool):
  """(lse_N, entropy_N, z_y_N) from the stats kernel."""
  n, d = h_NxD.shape
  v = w_DxV.shape[1]
  bn, bv, n_pad, h_pxD, y_px1, inv_t_1x1 = _prepare(h_NxD, w_DxV, y_N, inv_t, block_n, block_v)
  t_spec, h_spec, w_spec, row_spec = _specs(schedule, bn, bv, d)
  grid = (n_pad // bn, _cdiv(v, bv)) if schedule == "grid" else (n_pad // bn,)
  col = jax.ShapeDtypeStruct((n_pad, 1), jnp.float32)
  st = pl.pallas_call(
      functools.partial(_stats_kernel, schedule=schedule, bv=bv, v=v),
      grid=grid, in_specs=[t_spec, h_spec, w_spec, row_spec], out_specs=[row_spec] * 4,
      out_shape=[col] * 4, interpret=interpret, name="fused_logprob_stats",
      compiler_params=_compiler_params(schedule, interpret),
  )(inv_t_1x1, h_pxD, w_DxV, y_px1)
  return tuple(x[:n, 0] for x in tiles.finalize_stats(*st))


def grads(h_NxD, w_DxV, y_N, inv_t, lse_N, ez_N, g_N, gent_N, *, block_n: int, block_v: int,
          schedule: str, interpret: bool):
  """(dh_NxD f32, dw_DxV f32, dzz_N) from the dh and dW kernels."""
  n, d = h_NxD.shape
  v = w_DxV.shape[1]
  bn, bv, n_pad, h_pxD, y_px1, inv_t_1x1 = _prepare(h_NxD, w_DxV, y_N, inv_t, block_n, block_v)
  # Padded rows have g = gH = 0, so dz = 0 there and they add nothing to dW.
  rows = [jnp.pad(x.astype(jnp.float32), (0, n_pad - n))[:, None]
          for x in (lse_N, ez_N, g_N, gent_N)]
  args = (inv_t_1x1, h_pxD, w_DxV, y_px1, *rows)
  params = _compiler_params(schedule, interpret)

  t_spec, h_spec, w_spec, row_spec = _specs(schedule, bn, bv, d)
  grid = (n_pad // bn, _cdiv(v, bv)) if schedule == "grid" else (n_pad // bn,)
  dh_spec = pl.BlockSpec((bn, d), (lambda i, j: (i, 0)) if schedule == "grid" else
                         (lambda i: (i, 0)))
  dh_pxD, dzz_px1 = pl.pallas_call(
      functools.partial(_dh_kernel, schedule=schedule, bv=bv, v=v),
      grid=grid, in_specs=[t_spec, h_spec, w_spec] + [row_spec] * 5,
      out_specs=[dh_spec, row_spec],
      out_shape=[jax.ShapeDtypeStruct((n_pad, d), jnp.float32),
                 jax.ShapeDtypeStruct((n_pad, 1), jnp.float32)],
      interpret=interpret, name="fused_logprob_dh", compiler_params=params,
  )(*args)

  t_spec, h_spec, w_spec, row_spec = _specs(schedule, bn, bv, d, vocab_major=True)
  if schedule == "grid":
    grid, dw_spec = (_cdiv(v, bv), n_pad // bn), pl.BlockSpec((d, bv), lambda j, i: (0, j))
  else:
    grid, dw_spec = (_cdiv(v, bv),), pl.BlockSpec()
  dw_DxV = pl.pallas_call(
      functools.partial(_dw_kernel, schedule=schedule, bn=bn, bv=bv, v=v),
      grid=grid, in_specs=[t_spec, h_spec, w_spec] + [row_spec] * 5, out_specs=dw_spec,
      out_shape=jax.ShapeDtypeStruct((d, v), jnp.float32),
      interpret=interpret, name="fused_logprob_dw", compiler_params=params,
  )(*args)
  return dh_pxD[:n], dw_DxV, dzz_px1[:n, 0]


def make_passes(*, block_n: int = DEFAULT_BLOCK_N, block_v: int = DEFAULT_BLOCK_V,
                schedule: str = "grid", interpret: bool = False) -> vjp.Passes:
  kw = dict(block_n=block_n, block_v=block_v, schedule=schedule, interpret=interpret)
  return vjp.Passes(stats=functools.partial(stats, **kw), grads=functools.partial(grads, **kw))


def fused_logprob_entropy(h_NxD, w_DxV, y_N, mask_N, temperature, *,
                          block_n: int = DEFAULT_BLOCK_N, block_v: int = DEFAULT_BLOCK_V,
                          schedule: str = "grid", interpret: bool = False):
  """Differentiable (log p(y)_N, entropy_N); inputs already validated by `api.py`."""
  passes = make_passes(block_n=block_n, block_v=block_v, schedule=schedule, interpret=interpret)
  return vjp.fused_logprob_entropy(passes, h_NxD, w_DxV, y_N, mask_N, temperature)
