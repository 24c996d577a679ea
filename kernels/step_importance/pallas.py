"""SWAP step penalties as one fused Pallas kernel per block of responses.

One grid step owns `block_b` whole responses: it sums the answer log-probs of every prefix,
reduces the segment ids to step lengths, computes importance, normalisation and the penalty
redistribution (`formulas.py`), and broadcasts the step penalties back to tokens, so the
[B, T] segment ids are read once and the [B, T] penalty written once, with nothing in between.

The segment reduction and the broadcast are static loops over K with compares and selects
(no scatter/gather), which is what TPU vector units do well; every block keeps the full T, K
and A extents, so only the batch axis is tiled (padded to a multiple of block_b with empty
responses). Tested with `interpret=True`; the compiled TPU lowering could not be run here.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl

from rl_jax.kernels.step_importance import formulas

DEFAULT_BLOCK_B = 8


def _kernel(knobs_ref, logp_ref, amask_ref, seg_ref, excess_ref, resp_ref,
            imp_ref, norm_ref, weights_ref, step_pen_ref, len_ref, pen_ref, *,
            normalization: str, weighting: str):
  knobs = knobs_ref[...]
  alpha, tau = knobs[0, 0], knobs[0, 1]
  num_steps = imp_ref.shape[1]
  seg = seg_ref[...]
  p_bxKp1 = formulas.answer_logp(logp_ref[...], amask_ref[...])
  len_bxK = formulas.segment_lengths_onehot(seg, num_steps)
  imp, norm, weights, step_pen = formulas.step_weights(
      p_bxKp1, len_bxK, excess_ref[...], resp_ref[...], alpha, tau,
      normalization=normalization, weighting=weighting)
  imp_ref[...] = imp
  norm_ref[...] = norm
  weights_ref[...] = weights
  step_pen_ref[...] = step_pen
  len_ref[...] = len_bxK
  pen_ref[...] = formulas.flag_bad_segments(formulas.broadcast_onehot(step_pen, seg), seg,
                                            num_steps)


def step_penalties(answer_logp_BxKp1xA, answer_mask_BxKp1xA, segment_ids_BxT, excess_len_B,
                   resp_len_B, alpha, tau, *, normalization: str, weighting: str,
                   block_b: int = DEFAULT_BLOCK_B, interpret: bool = False):
  """Same outputs as `xla.step_penalties`, from a kernel tiled over the batch."""
  b, k1, a = answer_logp_BxKp1xA.shape
  k, t = k1 - 1, segment_ids_BxT.shape[1]
  b_pad = -(-b // block_b) * block_b

  def pad(x, value=0):
    return jnp.pad(x, [(0, b_pad - b)] + [(0, 0)] * (x.ndim - 1), constant_values=value)

  knobs_1x2 = jnp.stack([jnp.asarray(alpha, jnp.float32), jnp.asarray(tau, jnp.float32)])[None]
  args = (knobs_1x2, pad(answer_logp_BxKp1xA.astype(jnp.float32)),
          pad(answer_mask_BxKp1xA.astype(jnp.float32)),
          pad(segment_ids_BxT.astype(jnp.int32), -1),
          pad(excess_len_B.astype(jnp.float32)[:, None]),
          pad(resp_len_B.astype(jnp.float32)[:, None]))
  rows = lambda *shape: pl.BlockSpec((block_b, *shape), lambda i: (i,) + (0,) * len(shape))
  in_specs = [pl.BlockSpec((1, 2), lambda i: (0, 0)), rows(k1, a), rows(k1, a), rows(t),
              rows(1), rows(1)]
  f32 = lambda *shape: jax.ShapeDtypeStruct((b_pad, *shape), jnp.float32)
  out_shape = [f32(k), f32(k), f32(k), f32(k), jax.ShapeDtypeStruct((b_pad, k), jnp.int32),
               f32(t)]
  outs = pl.pallas_call(
      functools.partial(_kernel, normalization=normalization, weighting=weighting),
      grid=(b_pad // block_b,), in_specs=in_specs,
      out_specs=[rows(k)] * 5 + [rows(t)], out_shape=out_shape,
      interpret=interpret, name="swap_step_penalties",
  )(*args)
  return tuple(x[:b] for x in outs)
