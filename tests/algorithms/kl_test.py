"""KL estimators vs the formulas of SPEC §0.6 (Schulman's k1, k2, k3)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rl_jax.algorithms import kl


def test_estimators_match_numpy_and_k3_is_nonnegative():
  rng = np.random.default_rng(0)
  logp = -rng.uniform(0.01, 5.0, (8, 7)).astype(np.float32)
  ref = (logp + rng.normal(0.0, 1.0, (8, 7))).astype(np.float32)
  log_r = ref.astype(np.float64) - logp
  expected = {"k1": -log_r, "k2": 0.5 * log_r ** 2, "k3": np.exp(log_r) - 1 - log_r}
  for name, want in expected.items():
    np.testing.assert_allclose(kl.kl_estimate(logp, ref, name), want, rtol=1e-4, atol=1e-6)
  assert (np.asarray(kl.kl_estimate(logp, ref, "k3")) >= 0).all()
  assert (np.asarray(kl.kl_estimate(logp, ref, "k1")) < 0).any()  # k1 can be negative


def test_k3_is_accurate_near_zero_and_clamped_far_away():
  logp = np.array([[-1.0, -1.0, 0.0]], np.float32)
  ref = np.array([[-1.0 + 1e-4, -1.0, 50.0]], np.float32)
  got = np.asarray(kl.kl_estimate(logp, ref, "k3"))
  # 1e-4 in f32 is not exact; k3 ~ x^2/2 for the actual difference x.
  x = np.float64(ref[0, 0]) - np.float64(logp[0, 0])
  np.testing.assert_allclose(got[0, 0], x * x / 2, rtol=1e-3)
  assert got[0, 1] == 0.0
  np.testing.assert_allclose(got[0, 2], np.expm1(20.0) - 20.0, rtol=1e-6)  # log r clamped to 20


def test_k3_gradient_matches_analytic():
  # d/dlogp [exp(ref - logp) - 1 - (ref - logp)] = 1 - exp(ref - logp).
  logp = jnp.array([[-1.0, -2.0, -0.5]])
  ref = jnp.array([[-1.5, -1.0, -0.5]])
  grad = jax.grad(lambda lp: kl.kl_estimate(lp, ref, "k3").sum())(logp)
  np.testing.assert_allclose(grad, 1 - np.exp(np.asarray(ref - logp)), rtol=1e-5)


def test_bad_input():
  with pytest.raises(ValueError, match="k1"):
    kl.kl_estimate(np.zeros((1, 2)), np.zeros((1, 2)), "low_var_kl")
  with pytest.raises(ValueError, match="same shape"):
    kl.kl_estimate(np.zeros((1, 2)), np.zeros((1, 3)), "k3")
