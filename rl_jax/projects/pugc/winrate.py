"""Win rate and length-controlled (LC) win rate of a model against a baseline (docs/pugc.md).

Per instruction i the oracle compares the two responses: w_i = 1 (model better), 0.5 (tie),
0 (baseline better). Win rate = mean w_i.

LC win rate, a simplification of AlpacaEval 2's length-controlled GLM (Dubois et al. 2024,
arXiv 2404.04475), with Δlen_i = |model response_i| - |baseline response_i| in words:

    P(win_i) = σ(θ + φ · tanh(Δlen_i / std(Δlen)))        θ = θ_model - θ_baseline

fitted by maximum likelihood (unpenalised logistic regression, scikit-learn); a tie counts as
half a win and half a loss (two rows of weight 0.5). LC win rate = σ(θ), the predicted win
probability at Δlen = 0. When every length difference is 0 the feature is 0 and the fit gives
σ(θ) = mean w_i exactly.
"""
from __future__ import annotations

import warnings
from typing import Sequence

import numpy as np


def wins(model_scores: Sequence[float], baseline_scores: Sequence[float]) -> np.ndarray:
  """w_i in {0, 0.5, 1} from the oracle's two scores per instruction."""
  a, b = np.asarray(model_scores, float), np.asarray(baseline_scores, float)
  if a.shape != b.shape:
    raise ValueError(f"pugc wins: {a.shape} model scores vs {b.shape} baseline scores")
  return np.where(a > b, 1.0, np.where(a < b, 0.0, 0.5))


def length_feature(delta_len: Sequence[float]) -> np.ndarray:
  """tanh(Δlen / std(Δlen)) (population std); all zeros when std is 0."""
  d = np.asarray(delta_len, float)
  std = d.std()
  return np.zeros_like(d) if std == 0 else np.tanh(d / std)


def fit_glm(w: Sequence[float], delta_len: Sequence[float]) -> tuple[float, float]:
  """(θ, φ) of the module docstring's GLM, maximum likelihood with fractional labels."""
  from sklearn.exceptions import ConvergenceWarning  # pylint: disable=g-import-not-at-top
  from sklearn.linear_model import LogisticRegression  # pylint: disable=g-import-not-at-top
  w = np.asarray(w, float)
  if w.ndim != 1 or not len(w) or np.any((w < 0) | (w > 1)):
    raise ValueError("pugc fit_glm: wins must be a non-empty 1-D array in [0, 1]")
  x = length_feature(delta_len)
  if x.shape != w.shape:
    raise ValueError(f"pugc fit_glm: {w.shape} wins vs {x.shape} length differences")
  # Each instruction as a win row (weight w) and a loss row (weight 1 - w).
  features = np.concatenate([x, x])[:, None]
  labels = np.concatenate([np.ones_like(w), np.zeros_like(w)])
  weights = np.concatenate([w, 1.0 - w])
  keep = weights > 0
  if len(set(labels[keep])) < 2:  # every instruction won (or lost): σ(θ) -> 1 (0)
    return (np.inf if labels[keep][0] == 1 else -np.inf), 0.0
  with warnings.catch_warnings():
    warnings.simplefilter("ignore", ConvergenceWarning)  # near-separable: θ large, still valid
    model = LogisticRegression(C=np.inf, tol=1e-10, max_iter=1000).fit(
        features[keep], labels[keep], sample_weight=weights[keep])
  return float(model.intercept_[0]), float(model.coef_[0, 0])


def sigmoid(z: float) -> float:
  return float(1.0 / (1.0 + np.exp(-z)))


def win_rates(model_scores, baseline_scores, model_lens, baseline_lens) -> dict[str, float]:
  """win_rate, lc_win_rate, theta, phi, tie_rate of a model against a baseline."""
  w = wins(model_scores, baseline_scores)
  theta, phi = fit_glm(w, np.asarray(model_lens, float) - np.asarray(baseline_lens, float))
  return {"win_rate": float(w.mean()), "lc_win_rate": sigmoid(theta), "theta": theta,
          "phi": phi, "tie_rate": float(np.mean(w == 0.5))}
