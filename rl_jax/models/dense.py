"""The projection x @ W of every `Linear`, with a backward pass written for XLA CPU's dots.

    y[..., o] = sum_i x[..., i] W[i, o]
    dx = dy W^T                      (contract o)
    dW = sum over leading axes of x^T dy   (contract every axis but the last, of x and dy)

JAX's own transpose rule forms the weight gradient as dot_general(dy, x) followed by a
transpose of the [O, I] result. XLA CPU's dot wants its left operand's contracting axis minor,
so it first copies dy, [tokens, O], to [O, tokens] in a loop fusion that runs at a few GB/s:
in the GRPO update of docs/benchmarks.md those copies (after the SwiGLU's `mul` and `silu`)
took 6 of its 19 seconds. Here the weight gradient is dot_general(x, dy) in the [I, O] layout
the kernel has; XLA then transposes x (the smaller operand for up / gate projections) or
nothing. The values are the same sums: gradients equal JAX's default bit for bit on CPU
(tests/models/dense_test.py). Reverse mode only (a `custom_vjp`): `jax.jvp` through the
model raises.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp


@jax.custom_vjp
def dense(x_NxI: jax.Array, w_IxO: jax.Array) -> jax.Array:
  """x @ w over the last axis of x (any leading axes N); both already in the compute dtype."""
  return jnp.dot(x_NxI, w_IxO)


def _dense_fwd(x_NxI, w_IxO):
  return jnp.dot(x_NxI, w_IxO), (x_NxI, w_IxO)


def _dense_bwd(residuals, dy_NxO):
  x_NxI, w_IxO = residuals
  last = dy_NxO.ndim - 1
  dx_NxI = jax.lax.dot_general(dy_NxO, w_IxO, (((last,), (1,)), ((), ())))
  leading = tuple(range(last))
  dw_IxO = jax.lax.dot_general(x_NxI, dy_NxO, ((leading, leading), ((), ())))
  return dx_NxI.astype(x_NxI.dtype), dw_IxO.astype(w_IxO.dtype)


dense.defvjp(_dense_fwd, _dense_bwd)
