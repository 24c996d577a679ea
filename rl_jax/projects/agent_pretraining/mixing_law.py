"""The mixing law of the study: held-out loss as a function of agent share p and model size N.

    L(N, p) = c + k * exp(t * p) + A / (N / N0)^alpha

a mixing-law term in p (Ye et al., "Data Mixing Laws", arXiv 2403.16952: L(p) = c + k exp(t p))
plus a size term (Kaplan et al., arXiv 2001.08361) with a shared exponent; N counts non-embedding
parameters and N0 is the smallest model of the grid (so A is the size term's excess at N0).
The Hephaestus paper (arXiv 2502.06589) reports a scaling study over the agent share without
its functional form; this is the form docs/agent_pretraining.md fits. Fitted with
`scipy.optimize.curve_fit` (trust-region reflective, bounds alpha in [0, 4]).
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
  best = None
  for t0 in ((-3.0, -8.0, -1.0) if slope < 0 else (3.0, 8.0, 1.0)):
    start = (float(loss.min()) - 0.1 * span, 0.5 * span * np.sign(slope or 1.0), t0,
             0.3 * span, 0.5)
    try:
      params, _ = optimize.curve_fit(
          f, x, loss, p0=start, maxfev=20000,
          bounds=([-np.inf, -np.inf, -50.0, -np.inf, 0.0], [np.inf, np.inf, 50.0, np.inf, 4.0]))
    except RuntimeError:
      continue
    rms = float(np.sqrt(np.mean((f(x, *params) - loss) ** 2)))
    if best is None or rms < best.rms:
      best = LawFit(tuple(float(v) for v in params), n0, rms)
  if best is None:
    raise RuntimeError("fit_law: curve_fit did not converge from any start")
  return best


def best_ratio(agent: LawFit, general: LawFit, n: float, agent_weight: float,
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
    regime of its own, docs/agent_pretraining.md)."""
  ratios: tuple[float, ...] = (0.0, 0.1, 0.2, 0.36, 0.5, 0.7)
  widths: tuple[int, ...] = (32, 64, 128)
  heldout_ratio: float = 0.36
  grid_steps: int = 250
  target_width: int = 128
  agent_weight: float = 0.5
  run_stages: bool = True
  min_fit_ratio: float = 0.0


experiment.register_section("mixing", MixingSection)
