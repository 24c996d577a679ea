"""The mixing-law fit recovers known parameters; p* against a brute-force search; the report's
held-out prediction on a synthetic grid."""
import json
import os

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
  spoiled = report.analyse_grid(points, mixing, "joint")
  clean = report.analyse_grid(points, dict(mixing, min_fit_ratio=0.1), "joint")
  assert clean["max_heldout_rel_error"] < 1e-3 < spoiled["max_heldout_rel_error"]
  assert clean["fits"]["agent_loss"]["c"] == pytest.approx(TRUE[0], rel=1e-3)


def test_mean_over_seeds_by_hand():
  rows = [dict(ratio=0.1, width=32, seed=0, n_params=10, agent_loss=1.0, general_loss=2.0),
          dict(ratio=0.1, width=32, seed=1, n_params=10, agent_loss=3.0, general_loss=2.0),
          dict(ratio=0.2, width=32, seed=0, n_params=10, agent_loss=0.5, general_loss=1.5)]
  means = report.mean_over_seeds(rows)
  assert [(m["ratio"], m["n_seeds"]) for m in means] == [(0.1, 2), (0.2, 1)]
  assert means[0]["agent_loss"] == 2.0 and means[0]["general_loss"] == 2.0
  assert means[0]["agent_loss_std"] == pytest.approx(np.sqrt(2.0))  # (1-2)^2 + (3-2)^2, ddof 1
  assert means[1]["agent_loss"] == 0.5 and means[1]["agent_loss_std"] == 0.0


def test_the_law_is_fitted_to_the_seed_means():
  """Two seeds whose losses sit +-0.2 around the law: the fit and the held-out check see the
  means (exact law), not the scattered points."""
  points = [dict(ratio=p, width=w, seed=s, n_params=n,
                 agent_loss=float(truth(n, p)) + (0.2 if s else -0.2),
                 general_loss=float(truth(n, p, (0.9, 0.2, 2.0, 0.5, 1.0))) - (0.2 if s else -0.2))
            for s in (0, 1) for w, n in zip((32, 64, 128), NS) for p in RATIOS]
  out = report.analyse_grid(points, dict(heldout_ratio=0.36, target_width=128, agent_weight=0.5),
                            "joint")
  assert out["max_heldout_rel_error"] < 1e-4
  assert out["fits"]["agent_loss"]["rms"] < 1e-4


def test_grid_runs_each_point_once_per_seed(tmp_path, monkeypatch):
  """run_grid: one loop run per (seed, width, ratio) in its own folder with that seed, none again
  on a rerun; grid.json records the seed of every point."""
  from configs import agent_pretraining_tiny  # pylint: disable=g-import-not-at-top
  from rl_jax import main as main_lib  # pylint: disable=g-import-not-at-top
  from rl_jax.projects.agent_pretraining import study  # pylint: disable=g-import-not-at-top
  calls = []

  def fake_run(config, out, show_progress=False):
    calls.append((config.seed, config.model.overrides.hidden_size, config.task.agent_ratio, out))
    ev = {"eval/agent_loss": config.task.agent_ratio + config.seed,
          "eval/general_loss": 1.0, "eval/loss/text": 1.0}
    (tmp_path / out).mkdir(parents=True, exist_ok=True)
    (tmp_path / out / "summary.json").write_text(json.dumps({"eval": {"pretrain": ev}}))

  monkeypatch.setattr(main_lib, "run", fake_run)
  config = agent_pretraining_tiny.get_config("runlocal")
  config.mixing.seeds = (3, 5)
  records = study.run_grid(config, str(tmp_path))
  assert len(calls) == 2 * 2 * 3 and len(records) == 12
  assert {(s, os.path.basename(o)) for s, _, _, o in calls} >= {
      (3, "p=0_d=16_s=3"), (5, "p=0.7_d=32_s=5")}
  assert all(r["agent_loss"] == r["ratio"] + r["seed"] for r in records)
  study.run_grid(config, str(tmp_path))
  assert len(calls) == 12  # every summary exists: nothing runs again
  saved = json.loads((tmp_path / "grid.json").read_text())["points"]
  assert sorted({p["seed"] for p in saved}) == [3, 5]


def test_per_width_mixing_law_recovers_each_width_and_refuses_other_widths():
  """Per width, L_N(p) = c_N + k_N exp(t_N p) with its own curvature (what the joint law, one t
  for every N, cannot fit): recovered exactly; the held-out ratio predicted; another N refused."""
  truth_of = {20_000.0: (1.2, 0.7, -7.0), 70_000.0: (0.5, 0.9, -2.0), 260_000.0: (0.5, 0.7, -4.0)}
  ratios = (0.1, 0.2, 0.5, 0.7)
  n = [size for size in truth_of for _ in ratios]
  p = [r for _ in truth_of for r in ratios]
  loss = [c + k * np.exp(t * r) for size in truth_of for r in ratios
          for c, k, t in [truth_of[size]]]
  fit = mixing_law.fit("per_width", n, p, loss)
  assert fit.rms < 1e-6
  for size, (c, k, t) in truth_of.items():
    np.testing.assert_allclose(fit.params[size], (c, k, t), rtol=1e-4)
    assert fit.predict(size, 0.36) == pytest.approx(c + k * np.exp(t * 0.36), rel=1e-6)
  with pytest.raises(ValueError, match="mixing.law='per_width'"):
    fit.predict(50_000.0, 0.36)
  with pytest.raises(ValueError, match="3 distinct mixture ratios"):
    mixing_law.fit_mixing([0.1, 0.2, 0.1], [1.0, 0.9, 1.0])
  with pytest.raises(ValueError, match="config mixing.law"):
    mixing_law.fit("cubic", n, p, loss)
  with pytest.raises(ValueError, match="config mixing.law"):
    mixing_law.MixingSection(law="cubic")


def test_report_shows_both_laws_and_uses_the_configured_one(tmp_path):
  """Data with a width-dependent curvature: the per-width law is exact at the held-out ratio, the
  joint law is not; the report's headline follows mixing.law and lists both."""
  curv = {32: -7.0, 64: -2.0, 128: -4.0}
  points = [dict(ratio=p, width=w, seed=0, n_params=n, agent_loss=0.5 + np.exp(curv[w] * p),
                 general_loss=1.5 + 0.05 * np.exp(2.0 * p) + 0.1 / (n / NS[0]), losses={},
                 wall_s=1.0)
            for w, n in zip((32, 64, 128), NS) for p in RATIOS]
  mixing = dict(ratios=RATIOS, widths=(32, 64, 128), heldout_ratio=0.36, grid_steps=1,
                target_width=128, agent_weight=0.5, run_stages=False, min_fit_ratio=0.1,
                law="per_width")
  (tmp_path / "grid.json").write_text(json.dumps({"mixing": mixing, "points": points}))
  results = report.agent_pretraining_report(str(tmp_path))
  assert results["law"] == "per_width" and results["max_heldout_rel_error"] < 1e-4
  assert results["laws"]["joint"]["max_heldout_rel_error"] > 1e-3
  text = (tmp_path / "report.md").read_text()
  assert "fitted per width (config mixing.law" in text and "| law | largest error | p* |" in text
