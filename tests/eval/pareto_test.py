"""Tests of the Pareto-share metric, cost-to-match and the Pareto plot on hand-built cases."""
import math

import numpy as np
import pytest

from rl_jax.eval import pareto

# always-translate (R=1, C=1), never-translate (R=0.5, C=0), gated (R=0.95, C=0.3).
R = [1.0, 0.5, 0.95]
C = [1.0, 0.0, 0.3]


def test_gated_share_hand_computed():
  # Gated beats always-translate iff 0.95 - 0.3a > 1 - a, i.e. a > 1/14; it beats
  # never-translate for every a < 1.5. On the grid a_i = i / 1000 that is i >= 72: 929 of 1001.
  share = pareto.pareto_share(R, C, 2, alpha_max=1.0, n_alpha=1001)
  assert share == pytest.approx(929 / 1001)
  assert pareto.pareto_share(R, C, 0, alpha_max=1.0, n_alpha=1001) == pytest.approx(72 / 1001)
  assert pareto.pareto_share(R, C, 1, alpha_max=1.0, n_alpha=1001) == 0.0
  # Beyond a = 1.5 never-translate wins. 1000 points on [0, 3] miss both crossings exactly.
  alphas = np.linspace(0.0, 3.0, 1000)
  expected = np.mean((alphas > 1 / 14) & (alphas < 1.5))
  assert pareto.pareto_share(R, C, 2, alphas=alphas) == pytest.approx(expected)


def test_tie_modes_at_a_grid_crossing():
  # U_A = 1 - a, U_B = 0.5: A wins a < 0.5 (5 grid points), tie at 0.5, B wins a > 0.5 (5).
  r, c = [1.0, 0.5], [1.0, 0.0]
  kw = dict(alpha_max=1.0, n_alpha=11)
  assert pareto.pareto_share(r, c, 0, ties="split", **kw) == pytest.approx(5.5 / 11)
  assert pareto.pareto_share(r, c, 0, ties="weak", **kw) == pytest.approx(6 / 11)
  assert pareto.pareto_share(r, c, 0, ties="strict", **kw) == pytest.approx(5 / 11)
  assert pareto.nondominated_share(r, c, 1, **kw) == pytest.approx(6 / 11)


def test_identical_policies_split_and_shares_sum_to_one():
  r, c = [0.9, 0.9, 0.2], [0.5, 0.5, 0.0]
  kw = dict(alpha_max=1.0, n_alpha=101)
  # 0.9 - 0.5a > 0.2 for all a <= 1: the twins share every grid point.
  assert pareto.pareto_share(r, c, 0, **kw) == pytest.approx(0.5)
  assert pareto.pareto_share(r, c, 0, ties="weak", **kw) == pytest.approx(1.0)
  assert pareto.pareto_share(r, c, 0, ties="strict", **kw) == 0.0
  rng = np.random.default_rng(0)
  r, c = rng.uniform(size=6), rng.uniform(size=6)
  total = sum(pareto.pareto_share(r, c, p, alpha_max=2.0, n_alpha=201) for p in range(6))
  assert total == pytest.approx(1.0)


def test_family_share():
  # Gated sweep (two lambdas) vs always-translate vs never-translate.
  r = [1.0, 0.5, 0.95, 0.8]
  c = [1.0, 0.0, 0.3, 0.1]
  fam = ["always", "never", "gated", "gated"]
  alphas = np.linspace(0, 1, 1001)
  u = np.stack([np.asarray(r) - a * np.asarray(c) for a in alphas])
  best_gated = u[:, 2:].max(axis=1)
  expected = np.mean(best_gated > np.maximum(u[:, 0], u[:, 1]))
  got = pareto.family_pareto_share(r, c, fam, "gated", alphas=alphas)
  assert got == pytest.approx(expected) and got > pareto.pareto_share(r, c, 2, alphas=alphas)
  with pytest.raises(ValueError, match="target_family"):
    pareto.family_pareto_share(r, c, fam, "ungated", alphas=alphas)


def test_pareto_front_mask():
  r = [1.0, 0.5, 0.95, 0.9, 0.5]
  c = [1.0, 0.0, 0.3, 0.4, 0.2]
  # 0.9@0.4 is dominated by 0.95@0.3; 0.5@0.2 by 0.5@0.0.
  np.testing.assert_array_equal(pareto.pareto_front_mask(r, c), [True, True, True, False, False])


def test_cost_to_match():
  lams = [2.0, 0.0, 1.0, 0.5]  # unordered on purpose
  rewards = [0.6, 1.0, 0.9, 0.98]
  costs = [0.1, 1.0, 0.4, 0.7]
  # lambda order: (C, R) = (1.0, 1.0), (0.7, 0.98), (0.4, 0.9), (0.1, 0.6). Target 0.95 is
  # crossed on the middle segment at t = 0.03 / 0.08 = 0.375: C = 0.7 - 0.375 * 0.3 = 0.5875.
  assert pareto.cost_to_match(lams, rewards, costs, 0.95) == pytest.approx(0.5875)
  assert pareto.cost_to_match(lams, rewards, costs, 0.98) == pytest.approx(0.7)
  assert pareto.cost_to_match(lams, rewards, costs, 0.5) == pytest.approx(0.1)
  assert math.isnan(pareto.cost_to_match(lams, rewards, costs, 1.01))


def test_input_validation():
  with pytest.raises(ValueError, match="same|one length"):
    pareto.pareto_share([1.0, 0.5], [1.0], 0)
  with pytest.raises(ValueError, match="ties"):
    pareto.pareto_share(R, C, 0, ties="coin")
  with pytest.raises(ValueError, match="target index 5"):
    pareto.pareto_share(R, C, 5)
  with pytest.raises(ValueError, match="alpha_max"):
    pareto.alpha_grid(0.0)


def test_plot_pareto_writes_png(tmp_path):
  path = tmp_path / "sub" / "pareto.png"
  out = pareto.plot_pareto({"gated": [(0.3, 0.95), (0.1, 0.8)], "always": [(1.0, 1.0)],
                            "never": [(0.0, 0.5)]}, str(path), title="test")
  assert out == str(path)
  data = path.read_bytes()
  assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 1000
