"""`dense`: forward and both gradients equal jnp.dot's under JAX's own autodiff (numpy check too)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rl_jax.models.dense import dense


@pytest.mark.parametrize("x_shape", [(6, 5), (2, 3, 5), (2, 2, 3, 5)])
def test_values_and_gradients_equal_jnp_dot(x_shape):
  kx, kw, kc = jax.random.split(jax.random.key(0), 3)
  x = jax.random.normal(kx, x_shape)
  w = jax.random.normal(kw, (5, 7))
  cot = jax.random.normal(kc, x_shape[:-1] + (7,))
  loss = lambda f: lambda x, w: jnp.sum(f(x, w) * cot)
  np.testing.assert_array_equal(dense(x, w), jnp.dot(x, w))
  got = jax.grad(loss(dense), argnums=(0, 1))(x, w)
  want = jax.grad(loss(jnp.dot), argnums=(0, 1))(x, w)
  for g, r in zip(got, want):
    np.testing.assert_allclose(g, r, rtol=1e-6, atol=1e-6)
  # Independent reference: dx = cot W^T, dW = sum over leading axes of x^T cot.
  x2, c2 = np.asarray(x).reshape(-1, 5), np.asarray(cot).reshape(-1, 7)
  np.testing.assert_allclose(got[0], (c2 @ np.asarray(w).T).reshape(x_shape), rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(got[1], x2.T @ c2, rtol=1e-5, atol=1e-5)


def test_bfloat16_gradients_keep_dtypes():
  x = jnp.ones((4, 3), jnp.bfloat16)
  w = jnp.ones((3, 2), jnp.bfloat16)
  dx, dw = jax.grad(lambda x, w: jnp.sum(dense(x, w).astype(jnp.float32)), argnums=(0, 1))(x, w)
  assert dx.dtype == jnp.bfloat16 and dw.dtype == jnp.bfloat16
  np.testing.assert_array_equal(np.asarray(dw, np.float32), np.full((3, 2), 4.0))


def test_forward_mode_raises():
  # custom_vjp functions support reverse mode only; forward mode must fail loudly, not silently.
  with pytest.raises(TypeError):
    jax.jvp(lambda x: dense(x, jnp.ones((3, 2))), (jnp.ones((4, 3)),), (jnp.ones((4, 3)),))
