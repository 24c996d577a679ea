"""The length-controlled win rate GLM against closed forms and an independent scipy fit."""
import numpy as np
import pytest
from scipy import optimize, special

from rl_jax.projects.pugc import winrate


def test_wins_are_one_half_zero():
  np.testing.assert_array_equal(winrate.wins([1, 0, 0.5], [0, 0, 1]), [1, 0.5, 0])


def test_equal_lengths_give_the_raw_win_rate():
  # Feature 0 everywhere: the MLE intercept is logit(mean w), so LC WR = (1 + 1 + 0 + .5) / 4.
  out = winrate.win_rates([2, 2, 0, 1], [1, 1, 1, 1], [5, 5, 5, 5], [5, 5, 5, 5])
  assert out["win_rate"] == 0.625
  assert out["lc_win_rate"] == pytest.approx(0.625, abs=1e-6)


def test_two_length_groups_closed_form():
  # Δlen = +1 on 10 questions (8 wins), -1 on 10 (4 wins): std = 1, feature = ±tanh(1). The
  # saturated fit gives σ(θ ± φ tanh 1) = 0.8 / 0.4, so θ = (logit 0.8 + logit 0.4) / 2 and
  # LC WR = σ(ln(8/3) / 2) = sqrt(8/3) / (1 + sqrt(8/3)) = 0.62020..., while the raw win
  # rate is 0.6.
  w = np.array([1] * 8 + [0] * 2 + [1] * 4 + [0] * 6, float)
  d = np.array([1] * 10 + [-1] * 10, float)
  theta, phi = winrate.fit_glm(w, d)
  assert theta == pytest.approx(np.log(8 / 3) / 2, abs=1e-4)
  assert phi * np.tanh(1) == pytest.approx((np.log(4) - np.log(2 / 3)) / 2, abs=1e-4)
  assert winrate.sigmoid(theta) == pytest.approx(np.sqrt(8 / 3) / (1 + np.sqrt(8 / 3)), abs=1e-5)


def test_matches_an_independent_scipy_fit_with_ties():
  rng = np.random.default_rng(0)
  d = rng.normal(0, 3, 200).round()
  w = np.where(rng.random(200) < special.expit(0.3 + 0.8 * np.tanh(d / d.std())), 1.0, 0.0)
  w[rng.random(200) < 0.2] = 0.5
  x = np.tanh(d / d.std())

  def nll(p):  # fractional labels: w log σ + (1 - w) log (1 - σ)
    z = p[0] + p[1] * x
    return -np.sum(w * special.log_expit(z) + (1 - w) * special.log_expit(-z))

  ref = optimize.minimize(nll, np.zeros(2), method="BFGS", options={"gtol": 1e-9}).x
  theta, phi = winrate.fit_glm(w, d)
  np.testing.assert_allclose([theta, phi], ref, atol=1e-3)


def test_all_wins_is_an_lc_win_rate_of_one():
  out = winrate.win_rates([1, 1], [0, 0], [3, 4], [3, 3])
  assert out["win_rate"] == 1.0 and out["lc_win_rate"] == 1.0
