"""The custom VJP shared by every fused implementation (XLA scan and Pallas).

An implementation supplies two passes over [N, V] tiles (see `tiles.py` for the formulas):

    stats(h_NxD, w_DxV, y_N, inv_t)                         -> (lse_N, entropy_N, z_y_N)
    grads(h_NxD, w_DxV, y_N, inv_t, lse_N, ez_N, g_N, gH_N) -> (dh_NxD, dw_DxV, dzz_N)

and `fused_logprob_entropy` turns them into a differentiable function of (h, w, temperature).
Only [N]-sized residuals (lse and E_p[z]) are saved; the backward recomputes the logit tiles,
so nothing of size [N, V] is stored between the passes.

Conventions enforced here, once, for all implementations:
  - masked tokens (mask == 0) return log p = 0 and H = 0 and get exactly zero gradient;
  - an unmasked target id outside [0, V) returns log p = NaN, and its NaN cotangent makes dh
    and dW NaN too, so a bad id can never train silently under jit (the API raises eagerly
    when the ids are concrete);
  - d temperature is exact:  z = raw / T  =>  dL/dT = -(1/T) * sum_{n,j} dz_nj z_nj;
  - y and mask get no gradient.
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Callable

import jax
import jax.numpy as jnp


@dataclasses.dataclass(frozen=True)
class Passes:
  """The two tiled passes of one implementation, with its static block sizes bound in."""
  stats: Callable
  grads: Callable


def _row_masks(y_N, mask_N, vocab: int):
  keep = mask_N != 0
  in_range = (y_N >= 0) & (y_N < vocab)
  return keep, in_range


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def fused_logprob_entropy(passes: Passes, h_NxD, w_DxV, y_N, mask_N, temperature):
  """(log p(y)_N, entropy_N), both f32, with the conventions of the module docstring."""
  out, _ = _fwd(passes, h_NxD, w_DxV, y_N, mask_N, temperature)
  return out


def _fwd(passes, h_NxD, w_DxV, y_N, mask_N, temperature):
  inv_t = 1.0 / jnp.asarray(temperature, jnp.float32)
  lse_N, ent_N, zy_N = passes.stats(h_NxD, w_DxV, y_N, inv_t)
  keep, in_range = _row_masks(y_N, mask_N, w_DxV.shape[1])
  logp_N = jnp.where(keep, jnp.where(in_range, zy_N - lse_N, jnp.nan), 0.0)
  entropy_N = jnp.where(keep, ent_N, 0.0)
  residuals = (h_NxD, w_DxV, y_N, mask_N, inv_t, lse_N, lse_N - ent_N)
  return (logp_N, entropy_N), residuals


def _bwd(passes, residuals, cotangents):
  h_NxD, w_DxV, y_N, mask_N, inv_t, lse_N, ez_N = residuals
  g_N, gent_N = cotangents
  keep, in_range = _row_masks(y_N, mask_N, w_DxV.shape[1])
  g_N = jnp.where(keep, jnp.where(in_range, g_N.astype(jnp.float32), jnp.nan), 0.0)
  gent_N = jnp.where(keep, gent_N.astype(jnp.float32), 0.0)
  dh, dw, dzz_N = passes.grads(h_NxD, w_DxV, y_N, inv_t, lse_N, ez_N, g_N, gent_N)
  dtemp = -inv_t * jnp.sum(dzz_N)
  return dh.astype(h_NxD.dtype), dw.astype(w_DxV.dtype), None, None, dtemp


fused_logprob_entropy.defvjp(_fwd, _bwd)
