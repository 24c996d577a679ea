"""The mixing-law fit recovers known parameters; p* against a brute-force search; the report's
held-out prediction on a synthetic grid."""
import json

import numpy as np
import pytest

from rl_jax.projects.agent_pretraining import mixing_law, report

TRUE = (1.2, 1.5, -4.0, 0.8, 0.7)  # c, k, t, A, alpha
RATIOS = (0.0, 0.1, 0.2, 0.36, 0.5, 0.7)
NS = (20_000.0, 70_000.0, 260_000.0)


def truth(n, p, params=TRUE, n0=NS[0]):
  c, k, t, a, alpha = params
  return c + k * np.exp(t * p) + a * (n / n0) ** -alpha


def test_fit_recovers_known_parameters():
  n, p = np.meshgrid(NS, RATIOS)
  loss = truth(n.ravel(), p.ravel())
  fit = mixing_law.fit_law(n.ravel(), p.ravel(), loss)
  np.testing.assert_allclose(fit.params, TRUE, rtol=1e-4, atol=1e-6)
  assert fit.rms < 1e-6 and fit.n0 == NS[0]


def test_fit_with_noise_predicts_a_held_out_ratio():
  rng = np.random.default_rng(0)
  n, p = np.meshgrid(NS, [r for r in RATIOS if r != 0.36])
  loss = truth(n.ravel(), p.ravel()) * (1 + 0.003 * rng.standard_normal(n.size))
  fit = mixing_law.fit_law(n.ravel(), p.ravel(), loss)
  for n_i in NS:
    assert abs(fit.predict(n_i, 0.36) / truth(n_i, 0.36) - 1) < 0.01


def test_increasing_law_is_fitted_too():
  params = (0.9, 0.2, 2.0, 0.5, 1.0)
  n, p = np.meshgrid(NS, RATIOS)
  fit = mixing_law.fit_law(n.ravel(), p.ravel(), truth(n.ravel(), p.ravel(), params))
  np.testing.assert_allclose(fit.params, params, rtol=1e-3, atol=1e-5)


def test_fit_needs_enough_points():
  with pytest.raises(ValueError, match="at least 2 model sizes"):
    mixing_law.fit_law([1, 1, 1, 1, 1], [0, .1, .2, .3, .4], [1, 2, 3, 4, 5])
  with pytest.raises(ValueError, match=">= 5 points"):
    mixing_law.fit_law([1, 2], [0, .1], [1, 2])


def test_best_ratio_matches_a_brute_force_minimum():
  agent = mixing_law.LawFit(TRUE, NS[0], 0.0)
  general = mixing_law.LawFit((0.9, 0.2, 2.0, 0.5, 1.0), NS[0], 0.0)
  p_star, value = mixing_law.best_ratio(agent, general, NS[-1], 0.5)
  ps = np.linspace(0, 1, 100_001)
  objective = 0.5 * truth(NS[-1], ps) + 0.5 * truth(NS[-1], ps, (0.9, 0.2, 2.0, 0.5, 1.0))
  assert abs(p_star - ps[np.argmin(objective)]) <= 1e-3
  assert value == pytest.approx(objective.min(), abs=1e-5)


def test_report_fits_the_grid_and_predicts_the_held_out_ratio(tmp_path):
  general = (0.9, 0.2, 2.0, 0.5, 1.0)
  points = [dict(ratio=p, width=w, n_params=n, agent_loss=float(truth(n, p)),
                 general_loss=float(truth(n, p, general)), losses={}, wall_s=1.0)
            for w, n in zip((32, 64, 128), NS) for p in RATIOS]
  mixing = dict(ratios=RATIOS, widths=(32, 64, 128), heldout_ratio=0.36, grid_steps=1,
                target_width=128, agent_weight=0.5, run_stages=False)
  (tmp_path / "grid.json").write_text(json.dumps({"mixing": mixing, "points": points}))
  results = report.agent_pretraining_report(str(tmp_path))
  assert results["max_heldout_rel_error"] < 1e-4
  assert len(results["heldout"]) == 3 and {r["width"] for r in results["heldout"]} == {32, 64, 128}
  best, _ = mixing_law.best_ratio(mixing_law.LawFit(TRUE, NS[0], 0), mixing_law.LawFit(
      general, NS[0], 0), NS[-1], 0.5)
  assert results["p_star"] == pytest.approx(best, abs=2e-3)
  assert (tmp_path / "mixing_law.png").stat().st_size > 1000
  assert "Held-out ratio p = 0.36" in (tmp_path / "report.md").read_text()


def test_min_fit_ratio_leaves_low_ratios_out_of_the_fit():
  """Points at p = 0 far off the law (as unseen-vocabulary losses are) spoil the fit unless
  `min_fit_ratio` leaves them out."""
  points = [dict(ratio=p, width=w, n_params=n, agent_loss=float(truth(n, p)) + (5.0 if p == 0
                                                                                else 0.0),
                 general_loss=float(truth(n, p, (0.9, 0.2, 2.0, 0.5, 1.0))))
            for w, n in zip((32, 64, 128), NS) for p in RATIOS]
  mixing = dict(heldout_ratio=0.36, target_width=128, agent_weight=0.5)
  spoiled = report.analyse_grid(points, mixing)
  clean = report.analyse_grid(points, dict(mixing, min_fit_ratio=0.1))
  assert clean["max_heldout_rel_error"] < 1e-3 < spoiled["max_heldout_rel_error"]
  assert clean["fits"]["agent_loss"]["c"] == pytest.approx(TRUE[0], rel=1e-3)
