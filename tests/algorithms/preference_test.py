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


def test_conservative_dpo_label_smoothing_matches_numpy():
  pc, pr, rc, rr, *_ = make_pairs(5)
  beta, eps = 0.3, 0.2
  loss_sum, denom, _ = preference.dpo_loss(pc, pr, rc, rr, beta=beta, label_smoothing=eps)
  h = beta * ((pc - rc).astype(np.float64) - (pr - rr))
  ref = -(1 - eps) * log_sigmoid(h) - eps * log_sigmoid(-h)
  np.testing.assert_allclose(loss_sum / denom, ref.mean(), rtol=1e-5)
  # SimPO smooths the same way around its margin.
  _, _, _, _, lc, lr = make_pairs(5)
  loss_sum, denom, _ = preference.dpo_loss(pc, pr, kind="simpo", beta=2.0, gamma=1.0,
                                           label_smoothing=eps, chosen_len_B=lc,
                                           rejected_len_B=lr)
  z = 2.0 * pc.astype(np.float64) / lc - 2.0 * pr.astype(np.float64) / lr - 1.0
  ref = -(1 - eps) * log_sigmoid(z) - eps * log_sigmoid(-z)
  np.testing.assert_allclose(loss_sum / denom, ref.mean(), rtol=1e-5)
  with pytest.raises(ValueError, match="label_smoothing"):
    preference.dpo_loss(pc, pr, rc, rr, kind="ipo", beta=0.1, label_smoothing=0.1,
                        chosen_len_B=lc, rejected_len_B=lr)
  with pytest.raises(ValueError, match=r"label_smoothing must be in \[0, 0.5\)"):
    preference.dpo_loss(pc, pr, rc, rr, beta=0.1, label_smoothing=0.5)


def test_reference_free_uses_a_uniform_reference():
  pc, pr, rc, rr, lc, lr = make_pairs(6)
  beta = 0.1
  loss_sum, denom, stats = preference.dpo_loss(pc, pr, beta=beta, reference_free=True)
  h = beta * (pc.astype(np.float64) - pr)
  np.testing.assert_allclose(loss_sum / denom, np.mean(-log_sigmoid(h)), rtol=1e-5)
  np.testing.assert_allclose(stats["logps/chosen"][0] / 6, pc.mean(), rtol=1e-5)
  np.testing.assert_allclose(stats["logps/rejected"][0] / 6, pr.mean(), rtol=1e-5)
  loss_sum, denom, _ = preference.dpo_loss(pc, pr, rc, rr, kind="ipo", beta=beta,
                                           reference_free=True, chosen_len_B=lc,
                                           rejected_len_B=lr)
  h = pc.astype(np.float64) / lc - pr.astype(np.float64) / lr
  np.testing.assert_allclose(loss_sum / denom, np.mean((h - 1 / (2 * beta)) ** 2), rtol=1e-5)


def test_dpo_at_policy_equal_reference_is_log_2():
  pc, pr, *_ = make_pairs(7)
  for eps in (0.0, 0.1):  # (1 - eps) log 2 + eps log 2
    loss_sum, denom, stats = preference.dpo_loss(pc, pr, pc, pr, beta=0.1, label_smoothing=eps)
    np.testing.assert_allclose(loss_sum / denom, np.log(2.0), rtol=1e-6)
    assert stats["rewards/margin"][0] == 0 and stats["rewards/accuracy"][0] == 0


@pytest.mark.parametrize("kind,kwargs", [
    ("dpo", dict(beta=0.7, label_smoothing=0.15)),
    ("ipo", dict(beta=0.4)),
    ("simpo", dict(beta=2.0, gamma=0.8, label_smoothing=0.1)),
    ("dpo", dict(beta=0.5, reference_free=True)),
    ("dpo", dict(beta=0.3, nll_coef=0.7)),
])
def test_gradients_match_finite_differences(kind, kwargs):
  # Tiny case: 3 pairs; central differences in float64 numpy of the numpy loss below.
  rng = np.random.default_rng(8)
  pc, pr = -rng.uniform(1, 3, 3), -rng.uniform(1, 3, 3)
  rc, rr = pc + rng.normal(0, 0.5, 3), pr + rng.normal(0, 0.5, 3)
  lc, lr = np.array([2.0, 3.0, 5.0]), np.array([4.0, 1.0, 2.0])
  beta, gamma = kwargs["beta"], kwargs.get("gamma", 0.0)
  eps = kwargs.get("label_smoothing", 0.0)
  free = kwargs.get("reference_free", False)
  alpha = kwargs.get("nll_coef", 0.0)

  def numpy_loss(a, b):
    if kind == "simpo":
      z = beta * a / lc - beta * b / lr - gamma
    else:
      dc, dr = (a, b) if free else (a - rc, b - rr)
      if kind == "ipo":
        return np.mean((dc / lc - dr / lr - 1 / (2 * beta)) ** 2)
      z = beta * (dc - dr)
    return np.mean(-(1 - eps) * log_sigmoid(z) - eps * log_sigmoid(-z) + alpha * (-a / lc))

  def jax_loss(a, b):
    s, d, _ = preference.dpo_loss(a, b, rc, rr, kind=kind, chosen_len_B=lc, rejected_len_B=lr,
                                  **kwargs)
    return s / d

  grads = jax.grad(jax_loss, argnums=(0, 1))(jnp.asarray(pc, jnp.float32),
                                            jnp.asarray(pr, jnp.float32))
  np.testing.assert_allclose(jax_loss(pc, pr), numpy_loss(pc, pr), rtol=1e-5)
  h = 1e-5
  for arg, grad in ((0, grads[0]), (1, grads[1])):
    fd = np.zeros(3)
    for i in range(3):
      e = np.zeros(3)
      e[i] = h
      args_p = [pc, pr]
      args_m = [pc, pr]
      args_p[arg] = args_p[arg] + e
      args_m[arg] = args_m[arg] - e
      fd[i] = (numpy_loss(*args_p) - numpy_loss(*args_m)) / (2 * h)
    assert np.abs(fd).max() > 1e-3  # a gradient that exists
    np.testing.assert_allclose(np.asarray(grad), fd, rtol=1e-4, atol=1e-6)
