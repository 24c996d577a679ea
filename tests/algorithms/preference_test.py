"""DPO / IPO / SimPO vs the numpy formulas of SPEC §0.5."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rl_jax.algorithms import preference


def make_pairs(seed=0, batch=6):
  rng = np.random.default_rng(seed)
  lens_c = rng.integers(1, 20, batch)
  lens_r = rng.integers(1, 20, batch)
  pc = -rng.uniform(0.5, 2.0, batch) * lens_c
  pr = -rng.uniform(0.5, 2.0, batch) * lens_r
  rc = pc + rng.normal(0, 2.0, batch)
  rr = pr + rng.normal(0, 2.0, batch)
  f32 = lambda x: np.asarray(x, np.float32)
  return f32(pc), f32(pr), f32(rc), f32(rr), lens_c, lens_r


def log_sigmoid(z):
  return -np.log1p(np.exp(-z))


def test_dpo_matches_numpy():
  pc, pr, rc, rr, *_ = make_pairs(0)
  beta = 0.1
  loss_sum, denom, stats = preference.dpo_loss(pc, pr, rc, rr, kind="dpo", beta=beta)
  margin = beta * ((pc - rc) - (pr - rr)).astype(np.float64)
  np.testing.assert_allclose(loss_sum / denom, np.mean(-log_sigmoid(margin)), rtol=1e-5)
  assert denom == 6
  acc = np.mean((beta * (pc - rc)) > (beta * (pr - rr)))
  np.testing.assert_allclose(stats["rewards/accuracy"][0] / stats["rewards/accuracy"][1], acc)
  np.testing.assert_allclose(stats["rewards/margin"][0] / 6, margin.mean(), rtol=1e-5)
  np.testing.assert_allclose(stats["rewards/chosen"][0] / 6, beta * np.mean(pc - rc), rtol=1e-5)


def test_dpo_gradient_matches_analytic():
  # dL/dpc = -beta * sigmoid(-z), z = beta * (Delta_w - Delta_l); the reference gets no gradient.
  pc, pr, rc, rr, *_ = make_pairs(1)
  beta = 0.5
  grads = jax.grad(lambda a, b: preference.dpo_loss(a, pr, b, rr, beta=beta)[0],
                   argnums=(0, 1))(jnp.asarray(pc), jnp.asarray(rc))
  z = beta * ((pc - rc) - (pr - rr))
  np.testing.assert_allclose(grads[0], -beta / (1 + np.exp(z)), rtol=1e-5)
  assert (np.asarray(grads[1]) == 0).all()


def test_ipo_length_normalises_like_trl():
  pc, pr, rc, rr, lc, lr = make_pairs(2)
  beta = 0.2
  loss_sum, denom, _ = preference.dpo_loss(pc, pr, rc, rr, kind="ipo", beta=beta,
                                           chosen_len_B=lc, rejected_len_B=lr)
  h = (pc - rc).astype(np.float64) / lc - (pr - rr).astype(np.float64) / lr
  np.testing.assert_allclose(loss_sum / denom, np.mean((h - 1 / (2 * beta)) ** 2), rtol=1e-5)
  with pytest.raises(ValueError, match="chosen_len_B"):
    preference.dpo_loss(pc, pr, rc, rr, kind="ipo", beta=beta)


def test_simpo_ignores_reference_and_uses_lengths():
  pc, pr, _, _, lc, lr = make_pairs(3)
  beta, gamma = 2.0, 1.0
  loss_sum, denom, stats = preference.dpo_loss(pc, pr, kind="simpo", beta=beta, gamma=gamma,
                                               chosen_len_B=lc, rejected_len_B=lr)
  z = beta * pc.astype(np.float64) / lc - beta * pr.astype(np.float64) / lr - gamma
  np.testing.assert_allclose(loss_sum / denom, np.mean(-log_sigmoid(z)), rtol=1e-5)
  np.testing.assert_allclose(stats["rewards/accuracy"][0] / 6,
                             np.mean(pc / lc > pr / lr))


def test_bad_input():
  pc, pr, rc, rr, *_ = make_pairs(4)
  with pytest.raises(ValueError, match="kind must be one of"):
    preference.dpo_loss(pc, pr, rc, rr, kind="kto", beta=0.1)
  with pytest.raises(ValueError, match="needs ref_chosen_logp_B"):
    preference.dpo_loss(pc, pr, kind="dpo", beta=0.1)
  with pytest.raises(ValueError, match="gamma"):
    preference.dpo_loss(pc, pr, rc, rr, kind="dpo", beta=0.1, gamma=0.5)
  with pytest.raises(ValueError, match="must match"):
    preference.dpo_loss(pc, pr[:3], rc, rr, beta=0.1)
