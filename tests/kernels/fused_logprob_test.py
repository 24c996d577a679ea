"""Fused log-prob: every implementation against a float64 numpy reference (values and grads)."""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rl_jax.kernels.fused_logprob import api
from rl_jax.kernels.fused_logprob import fused_logprob

# Shapes that are multiples of no block size: N=37 tokens, V=300 (not a multiple of 128).
N, D, V = 37, 16, 300
TEMP = 0.7


def _numpy_reference(h, w, y, mask, temp, g_logp, g_ent):
  """Values and analytic gradients in float64: the independent reference.

  z = h W / T, p = softmax(z), log p(y) = z_y - lse, H = lse - sum_j p_j z_j;
  dL/dz = g (onehot - p) - gH p (z - E_p z);  dh = dz W^T / T, dW = h^T dz / T,
  dT = -(1/T) sum dz * z.  Masked rows contribute nothing.
  """
  h, w = np.asarray(h, np.float64), np.asarray(w, np.float64)
  keep = np.asarray(mask) != 0
  z = h @ w / temp
  m = z.max(axis=1, keepdims=True)
  lse = (m + np.log(np.exp(z - m).sum(axis=1, keepdims=True)))[:, 0]
  p = np.exp(z - lse[:, None])
  ez = (p * z).sum(axis=1)
  y_safe = np.where(keep, y, 0)
  logp = np.where(keep, z[np.arange(len(y)), y_safe] - lse, 0.0)
  ent = np.where(keep, lse - ez, 0.0)
  g = np.where(keep, g_logp, 0.0)[:, None]
  ge = np.where(keep, g_ent, 0.0)[:, None]
  onehot = np.eye(w.shape[1])[y_safe]
  dz = g * (onehot - p) - ge * p * (z - ez[:, None])
  return logp, ent, dz @ w.T / temp, h.T @ dz / temp, -(dz * z).sum() / temp


def _inputs(dtype=jnp.float32, seed=0):
  k_h, k_w, k_y, k_m, k_g = jax.random.split(jax.random.key(seed), 5)
  h = jax.random.normal(k_h, (N, D), jnp.float32).astype(dtype)
  w = (jax.random.normal(k_w, (D, V), jnp.float32) * 0.6).astype(dtype)
  y = jax.random.randint(k_y, (N,), 0, V)
  mask = jax.random.bernoulli(k_m, 0.8, (N,)).at[0].set(False)
  y = y.at[0].set(-100)   # a padding id under the mask must be ignored
  g_logp, g_ent = jax.random.normal(k_g, (2, N))
  return h, w, y, mask, g_logp, g_ent


def _values_and_grads(h, w, y, mask, g_logp, g_ent, **kw):
  @jax.jit
  def run(h, w, temp):
    f = lambda h, w, t: fused_logprob(h, w, y, mask, temperature=t, return_entropy=True, **kw)
    out, vjp_fn = jax.vjp(f, h, w, temp)
    return out, vjp_fn((g_logp, g_ent))
  (logp, ent), (dh, dw, dt) = run(h, w, jnp.float32(TEMP))
  return logp, ent, dh, dw, dt


def _assert_close(actual, expected, tol, name):
  actual = np.asarray(jnp.asarray(actual, jnp.float32), np.float64)
  scale = max(np.max(np.abs(expected)), 1e-30)
  np.testing.assert_allclose(actual, expected, rtol=tol, atol=tol * scale, err_msg=name)


def _check_against_numpy(tol, dtype=jnp.float32, **kw):
  h, w, y, mask, g_logp, g_ent = _inputs(dtype)
  got = _values_and_grads(h, w, y, mask, g_logp, g_ent, **kw)
  want = _numpy_reference(np.asarray(h.astype(jnp.float32)), np.asarray(w.astype(jnp.float32)),
                          np.asarray(y), np.asarray(mask), TEMP, np.asarray(g_logp),
                          np.asarray(g_ent))
  for name, a, b in zip(("logp", "entropy", "dh", "dw", "dtemperature"), got, want):
    _assert_close(a, b, tol, name)
  assert got[2].dtype == dtype and got[3].dtype == dtype
  # Masked tokens: exactly 0 log-prob and entropy, exactly zero gradient.
  masked = ~np.asarray(mask)
  assert masked.sum() >= 2
  for x in got[:3]:
    assert np.all(np.asarray(x)[masked] == 0)


F32_CASES = {
    "naive": dict(implementation="naive"),
    "xla_small_blocks": dict(implementation="xla", block_n=16, block_v=128),
    "xla_default_blocks": dict(implementation="xla"),
    "pallas_grid": dict(implementation="pallas", block_n=8, block_v=128, schedule="grid",
                        interpret=True),
    "pallas_loop": dict(implementation="pallas", block_n=16, block_v=128, schedule="loop",
                        interpret=True),
}


@pytest.mark.parametrize("case", sorted(F32_CASES))
def test_f32_values_and_grads_match_numpy(case):
  _check_against_numpy(1e-5, **F32_CASES[case])


@pytest.mark.parametrize("kw", [dict(implementation="naive"),
                                dict(implementation="xla", block_n=16, block_v=128),
                                dict(implementation="pallas", block_n=16, block_v=128,
                                     interpret=True)], ids=["naive", "xla", "pallas"])
def test_bf16_inputs_match_f32_reference(kw):
  _check_against_numpy(2e-2, dtype=jnp.bfloat16, **kw)


def test_leading_dims_and_default_mask():
  h, w, y, _, _, _ = _inputs()
  y = jnp.where(y < 0, 3, y)
  f = jax.jit(functools.partial(fused_logprob, implementation="xla", block_v=128))
  flat = f(h[:36], w, y[:36])
  batched = f(h[:36].reshape(4, 9, D), w, y[:36].reshape(4, 9))
  assert batched.shape == (4, 9) and batched.dtype == jnp.float32
  np.testing.assert_array_equal(np.asarray(batched).reshape(-1), np.asarray(flat))


def test_out_of_range_id_raises_eagerly():
  h, w, y, mask, _, _ = _inputs()
  bad = y.at[5].set(V).at[6].set(-1)
  mask = mask.at[5].set(True).at[6].set(True)
  with pytest.raises(ValueError, match=r"y\[5\] = 300 is outside \[0, V = 300\)"):
    fused_logprob(h, w, bad, mask, implementation="xla")


@pytest.mark.parametrize("impl", ["naive", "xla"])
def test_out_of_range_id_under_jit_is_nan(impl):
  h, w, y, mask, _, _ = _inputs()
  mask = mask.at[5].set(True)
  bad = y.at[5].set(V + 7)
  f = jax.jit(lambda h, w, y: fused_logprob(h, w, y, mask, implementation=impl))
  logp = np.asarray(f(h, w, bad))
  assert np.isnan(logp[5]) and np.all(np.isfinite(np.delete(logp, 5)))
  dh, dw = jax.jit(jax.grad(lambda h, w, y: jnp.sum(f(h, w, y)), argnums=(0, 1)))(h, w, bad)
  assert np.isnan(np.asarray(dh)[5]).all() and np.isnan(np.asarray(dw)).any()


@pytest.mark.parametrize("kwargs, match", [
    (dict(w=jnp.ones((D + 1, V))), r"h must be \[\.\.\., D\]"),
    (dict(w=jnp.ones((D, V), jnp.bfloat16)), "share one float dtype"),
    (dict(y=jnp.zeros((N,), jnp.float32)), "integer token ids"),
    (dict(y=jnp.zeros((N + 1,), jnp.int32)), "y must have shape"),
    (dict(mask=jnp.ones((N - 1,))), "mask must have y's shape"),
    (dict(temperature=0.0), "temperature must be > 0"),
    (dict(temperature=jnp.ones((2,))), "temperature must be a scalar"),
    (dict(implementation="triton"), "implementation='triton'"),
    (dict(implementation="pallas", block_v=100), "block_v=100 must be a multiple of 128"),
    (dict(implementation="pallas", block_n=12), "block_n=12 must be a multiple of 8"),
    (dict(implementation="xla", block_n=0), "block_n=0; expected a positive int"),
    (dict(implementation="pallas", schedule="rows"), "schedule='rows'"),
    (dict(implementation="xla", interpret=True), "apply to implementation='pallas' only"),
])
def test_bad_input_raises(kwargs, match):
  h, w, y, mask, _, _ = _inputs()
  args = dict(h=h, w=w, y=jnp.where(mask, y, 0), mask=mask)
  args.update({k: kwargs.pop(k) for k in ("w", "y", "mask") if k in kwargs})
  with pytest.raises(ValueError, match=match):
    fused_logprob(args["h"], args["w"], args["y"], args["mask"], **kwargs)


def test_auto_is_xla_on_cpu_and_pallas_on_accelerators():
  assert api.resolve_implementation("auto", "cpu") == "xla"
  assert api.resolve_implementation("auto", "tpu") == "pallas"
  assert api.resolve_implementation("auto", "gpu") == "xla"  # see docs/benchmarks.md


def test_temperature_is_traced_no_recompile():
  h, w, y, mask, _, _ = _inputs()
  traces = []

  @jax.jit
  def f(h, w, t):
    traces.append(1)
    return fused_logprob(h, w, y, mask, temperature=t, implementation="xla", block_v=128)

  a, b = f(h, w, jnp.float32(0.5)), f(h, w, jnp.float32(2.0))
  assert len(traces) == 1
  assert not np.allclose(np.asarray(a), np.asarray(b))


def test_xla_path_never_materialises_logits():
  """Compiled fwd+bwd scratch of the XLA path is a small fraction of the naive path's."""
  n, d, v = 512, 32, 32768
  shapes = (jax.ShapeDtypeStruct((n, d), jnp.float32), jax.ShapeDtypeStruct((d, v), jnp.float32),
            jax.ShapeDtypeStruct((n,), jnp.int32))

  def temp_bytes(**kw):
    loss = lambda h, w, y: jnp.sum(fused_logprob(h, w, y, **kw))
    fn = jax.jit(jax.grad(loss, argnums=(0, 1)))
    return fn.lower(*shapes).compile().memory_analysis().temp_size_in_bytes

  naive = temp_bytes(implementation="naive")
  fused = temp_bytes(implementation="xla", block_n=512, block_v=2048)
  assert naive >= 2 * n * v * 4          # at least two f32 [N, V] buffers
  assert fused < 0.15 * naive, (fused, naive)
