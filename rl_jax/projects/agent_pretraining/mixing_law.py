"""The mixing law of the study: held-out loss as a function of agent share p and model size N.

    L(N, p) = c + k * exp(t * p) + A / (N / N0)^alpha

a mixing-law term in p (Ye et al., "Data Mixing Laws", arXiv 2403.16952: L(p) = c + k exp(t p))
plus a size term (Kaplan et al., arXiv 2001.08361) with a shared exponent; N counts non-embedding
parameters and N0 is the smallest model of the grid (so A is the size term's excess at N0).
The Hephaestus paper (arXiv 2502.06589) reports a scaling study over the agent share without
its functional form; this is the form docs/agent_pretraining.md fits. Fitted with
`scipy.optimize.curve_fit` (trust-region reflective, bounds alpha in [0, 4]). Since the joint
form shares the curvature t across sizes, `PerSizeFit` also fits the mixing law alone at each size
(config mixing.law, docs/agent_pretraining.md compares the two).
"""
from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np
from scipy import optimize

from rl_jax import experiment

PARAM_NAMES = ("c", "k", "t", "A", "alpha")


def law(n_over_n0, p, c, k, t, a, alpha):
  """L(N, p) (module docstring), elementwise over arrays N / N0 and p."""
  return c + k * np.exp(t * np.asarray(p)) + a / np.power(np.asarray(n_over_n0, float), alpha)


@dataclasses.dataclass(frozen=True)
class LawFit:
  """Fitted parameters (PARAM_NAMES order), N0, and the fit's RMS residual."""
  params: tuple[float, ...]
  n0: float
  rms: float

  def predict(self, n, p):
    return law(np.asarray(n, float) / self.n0, p, *self.params)

  def as_dict(self) -> dict[str, float]:
    return dict(zip(PARAM_NAMES, self.params), n0=self.n0, rms=self.rms)


def fit_law(n: Sequence[float], p: Sequence[float], loss: Sequence[float]) -> LawFit:
  """Least-squares fit of the law to points (N_i, p_i, L_i); needs >= 5 points, >= 2 sizes and
  >= 3 shares. Starts: c = min L - 0.1, k from the loss range, t of the sign of the trend in p."""
  n, p, loss = (np.asarray(x, float) for x in (n, p, loss))
  if not (n.shape == p.shape == loss.shape) or n.size < 5:
    raise ValueError(f"fit_law: needs >= 5 points of equal-length N, p, L; got {n.size}")
  if np.unique(n).size < 2 or np.unique(p).size < 3:
    raise ValueError("fit_law: needs at least 2 model sizes and 3 mixture ratios")
  n0 = float(n.min())
  x = np.stack([n / n0, p])
  f = lambda xy, c, k, t, a, alpha: law(xy[0], xy[1], c, k, t, a, alpha)
  slope = np.polyfit(p, loss, 1)[0]
  span = float(np.ptp(loss)) or 1.0
  starts = [(float(loss.min()) - 0.1 * span, 0.5 * span * np.sign(slope or 1.0), t0, 0.3 * span,
             0.5) for t0 in ((-3.0, -8.0, -1.0) if slope < 0 else (3.0, 8.0, 1.0))]
  params, rms = _best_fit(f, x, loss, starts, ([-np.inf, -np.inf, -50.0, -np.inf, 0.0],
                                               [np.inf, np.inf, 50.0, np.inf, 4.0]), "fit_law")
  return LawFit(params, n0, rms)


def _best_fit(f, x, y, starts, bounds, who: str) -> tuple[tuple[float, ...], float]:
  """(params, rms) of the `curve_fit` of f(x, *params) to y with the lowest RMS residual over
  the starts; starts that do not converge are skipped, none converging is an error."""
  best = None
  for start in starts:
    try:
      params, _ = optimize.curve_fit(f, x, y, p0=start, maxfev=20000, bounds=bounds)
    except RuntimeError:
      continue
    rms = float(np.sqrt(np.mean((f(x, *params) - y) ** 2)))
    if best is None or rms < best[1]:
      best = (tuple(float(v) for v in params), rms)
  if best is None:
    raise RuntimeError(f"{who}: curve_fit did not converge from any start")
  return best


MIXING_PARAM_NAMES = ("c", "k", "t")
LAWS = ("per_width", "joint")  # config mixing.law


@dataclasses.dataclass(frozen=True)
class PerSizeFit:
  """The mixing law L_N(p) = c_N + k_N exp(t_N p) fitted separately at each model size N (Ye et
  al., arXiv 2403.16952, fit their law per model size): `params[N] = (c, k, t)`; `rms` over all
  points. It predicts at the fitted sizes only (no extrapolation in N)."""
  params: dict[float, tuple[float, float, float]]
  rms: float

  def predict(self, n, p):
    n = float(np.asarray(n).reshape(-1)[0])
    if n not in self.params:
      raise ValueError(f"the per-width mixing law was fitted at N in {sorted(self.params)}, "
                       f"not at N = {n:g} (config mixing.law='per_width' does not extrapolate "
                       "in N; 'joint' does)")
    c, k, t = self.params[n]
    return c + k * np.exp(t * np.asarray(p, float))

  def as_dict(self) -> dict:
    return {"per_size": {f"{n:g}": dict(zip(MIXING_PARAM_NAMES, v))
                         for n, v in sorted(self.params.items())}, "rms": self.rms}


def fit_mixing(p: Sequence[float], loss: Sequence[float]) -> tuple[tuple[float, float, float],
                                                                  float]:
  """Least-squares fit of L(p) = c + k exp(t p) to >= 3 points of distinct p; returns
  ((c, k, t), rms), the best of several starts of t (both signs)."""
  p, loss = np.asarray(p, float), np.asarray(loss, float)
  if p.shape != loss.shape or np.unique(p).size < 3:
    raise ValueError(f"fit_mixing: needs >= 3 distinct mixture ratios, got {np.unique(p).size}")
  f = lambda x, c, k, t: c + k * np.exp(t * x)
  span = float(np.ptp(loss)) or 1.0
  slope = np.polyfit(p, loss, 1)[0]
  starts = [(float(loss.min()) - 0.1 * span, span * (1.0 if (slope < 0) == (t0 < 0) else -1.0),
             t0) for t0 in (-3.0, -8.0, -1.0, 1.0, 3.0)]
  return _best_fit(f, p, loss, starts, ([-np.inf, -np.inf, -50.0], [np.inf, np.inf, 50.0]),
                   "fit_mixing")


def fit_per_size(n: Sequence[float], p: Sequence[float], loss: Sequence[float]) -> PerSizeFit:
  """`fit_mixing` at every model size of the points (each needs >= 3 ratios)."""
  n, p, loss = (np.asarray(x, float) for x in (n, p, loss))
  params, sq = {}, []
  for size in np.unique(n):
    at = n == size
    params[float(size)], rms = fit_mixing(p[at], loss[at])
    sq.append(rms ** 2 * at.sum())
  return PerSizeFit(params, float(np.sqrt(np.sum(sq) / n.size)))


def fit(kind: str, n, p, loss):
  """The law `kind` of config mixing.law: "joint" (`fit_law`) or "per_width" (`fit_per_size`)."""
  if kind == "joint":
    return fit_law(n, p, loss)
  if kind == "per_width":
    return fit_per_size(n, p, loss)
  raise ValueError(f"config mixing.law: expected 'joint' or 'per_width', got {kind!r}")


def best_ratio(agent, general, n: float, agent_weight: float,
               grid: int = 1001) -> tuple[float, float]:
  """(p*, objective) minimising agent_weight L_agent(n, p) + (1 - agent_weight) L_general(n, p)
  over p in [0, 1] (a dense grid: the objective is a sum of two exponentials in p)."""
  ps = np.linspace(0.0, 1.0, grid)
  objective = agent_weight * agent.predict(n, ps) + (1 - agent_weight) * general.predict(n, ps)
  i = int(np.argmin(objective))
  return float(ps[i]), float(objective[i])


@dataclasses.dataclass(frozen=True)
class MixingSection:
  """The mixing study (section `mixing`; read by the study driver
  rl_jax.projects.agent_pretraining.study, never by the loop).
  ratios / widths: the grid (agent token share p; model hidden size d, with head_dim d / 4 and
    intermediate size 3 d); heldout_ratio: the ratio left out of the fit and predicted;
  grid_steps: pretrain steps of every grid point (budget = steps x batch x row_len tokens);
  target_width: the width at which p* is chosen; agent_weight: w of the objective
    w L_agent + (1 - w) L_general [I]; run_stages: after the grid, run the config's stages
    with task.agent_ratio = p*; min_fit_ratio: ratios below it are left out of the fit (and of
    the held-out check) [I] (0 keeps all; at p = 0 the agent sources' words are never seen, a
    regime of its own, docs/agent_pretraining.md);
  seeds: run every grid point once per seed (empty: the config's `seed` only); the law is
    fitted to, and checked against, the mean over seeds of each (ratio, width) point's loss;
  law [I]: which fit picks p* and is checked at the held-out ratio (the report shows both):
    "per_width", the mixing law c + k exp(t p) fitted at each width (Ye et al.'s form; p* and the
    check are at the grid's widths), or "joint", L(N, p) above with one size term."""
  ratios: tuple[float, ...] = (0.0, 0.1, 0.2, 0.36, 0.5, 0.7)
  widths: tuple[int, ...] = (32, 64, 128)
  heldout_ratio: float = 0.36
  grid_steps: int = 250
  target_width: int = 128
  agent_weight: float = 0.5
  run_stages: bool = True
  min_fit_ratio: float = 0.0
  seeds: tuple[int, ...] = ()
  law: str = "per_width"

  def __post_init__(self):
    if self.law not in LAWS:
      raise ValueError(f"config mixing.law: expected 'joint' or 'per_width', got {self.law!r}")


experiment.register_section("mixing", MixingSection)
