"""Cost-sensitivity evaluation of Translate-R1 (docs/translate_r1.md, §1(b)): Pareto share and
cost-to-match, in plain numpy, plus a PNG plot of the reward/cost plane.

Every policy P has a reward R(P) and a normalised cost C(P) = cost(P) / cost(always-translate).
For a price alpha of one unit of normalised cost its utility is

    U_alpha(P) = R(P) - alpha * C(P).

Pareto share of a target policy = fraction of a uniform grid alpha_0 = 0 < ... < alpha_{n-1} =
alpha_max at which the target has the highest utility. Ties (|U - max U| <= atol) are explicit:

    ties="split"   a tie among k policies gives each 1/k credit (shares of all policies sum to 1)
    ties="weak"    a tied winner gets full credit ("not beaten": the non-dominated variant,
                   `nondominated_share`)
    ties="strict"  a tie gives no credit (the target must be strictly best)

`family_pareto_share` compares families (e.g. the gated sweep over lambda against the ungated
sweep and the fixed baselines): at each alpha a family's utility is that of its best member.
`pareto_front_mask` is the classical alpha-free non-dominance in (R up, C down).
"""
from __future__ import annotations

import os
from typing import Mapping, Sequence

import numpy as np

TIE_MODES = ("split", "weak", "strict")


def alpha_grid(alpha_max: float = 1.0, n_alpha: int = 1001) -> np.ndarray:
  if not alpha_max > 0 or n_alpha < 2:
    raise ValueError(f"alpha grid needs alpha_max > 0 and n_alpha >= 2, got alpha_max="
                     f"{alpha_max}, n_alpha={n_alpha}")
  return np.linspace(0.0, alpha_max, n_alpha)


def _vectors(rewards, costs) -> tuple[np.ndarray, np.ndarray]:
  r = np.asarray(rewards, np.float64)
  c = np.asarray(costs, np.float64)
  if r.ndim != 1 or r.shape != c.shape or r.size == 0:
    raise ValueError(f"rewards and costs must be non-empty 1-D arrays of one length, got shapes "
                     f"{r.shape} and {c.shape}")
  if not (np.isfinite(r).all() and np.isfinite(c).all()):
    raise ValueError("rewards and costs must be finite")
  return r, c


def utilities(rewards, costs, alphas) -> np.ndarray:
  """U[a, p] = R_p - alpha_a * C_p, shape [n_alpha, n_policies]."""
  r, c = _vectors(rewards, costs)
  return r[None, :] - np.asarray(alphas, np.float64)[:, None] * c[None, :]


def _share_of(u_AxP: np.ndarray, target: int, ties: str, atol: float) -> float:
  if ties not in TIE_MODES:
    raise ValueError(f"ties must be one of {TIE_MODES}, got {ties!r}")
  if not 0 <= target < u_AxP.shape[1]:
    raise ValueError(f"target index {target} out of range for {u_AxP.shape[1]} policies")
  best_A = u_AxP.max(axis=1)
  winners_AxP = u_AxP >= best_A[:, None] - atol
  n_win_A = winners_AxP.sum(axis=1)
  target_wins_A = winners_AxP[:, target]
  if ties == "split":
    credit_A = np.where(target_wins_A, 1.0 / n_win_A, 0.0)
  elif ties == "weak":
    credit_A = target_wins_A.astype(np.float64)
  else:
    credit_A = (target_wins_A & (n_win_A == 1)).astype(np.float64)
  return float(credit_A.mean())


def pareto_share(rewards, costs, target: int, *, alphas=None, alpha_max: float = 1.0,
                 n_alpha: int = 1001, ties: str = "split", atol: float = 1e-9) -> float:
  """Share of the alpha grid where policy `target` has the highest U_alpha (ties per `ties`)."""
  alphas = alpha_grid(alpha_max, n_alpha) if alphas is None else np.asarray(alphas, np.float64)
  return _share_of(utilities(rewards, costs, alphas), target, ties, atol)


def nondominated_share(rewards, costs, target: int, **kwargs) -> float:
  """Share of alpha where no other policy has strictly higher utility (ties count as success)."""
  return pareto_share(rewards, costs, target, ties="weak", **kwargs)


def family_pareto_share(rewards, costs, families: Sequence[str], target_family: str, *,
                        alphas=None, alpha_max: float = 1.0, n_alpha: int = 1001,
                        ties: str = "split", atol: float = 1e-9) -> float:
  """Pareto share of a family, whose utility at each alpha is its best member's."""
  r, c = _vectors(rewards, costs)
  if len(families) != r.size:
    raise ValueError(f"families has {len(families)} labels for {r.size} policies")
  names = list(dict.fromkeys(families))
  if target_family not in names:
    raise ValueError(f"target_family {target_family!r} not among families {names}")
  alphas = alpha_grid(alpha_max, n_alpha) if alphas is None else np.asarray(alphas, np.float64)
  u_AxP = utilities(r, c, alphas)
  labels = np.asarray(families)
  u_AxF = np.stack([u_AxP[:, labels == f].max(axis=1) for f in names], axis=1)
  return _share_of(u_AxF, names.index(target_family), ties, atol)


def pareto_front_mask(rewards, costs) -> np.ndarray:
  """True where no other policy has R >= and C <= with at least one strict (alpha-free)."""
  r, c = _vectors(rewards, costs)
  ge_PxP = (r[None, :] >= r[:, None]) & (c[None, :] <= c[:, None])
  gt_PxP = (r[None, :] > r[:, None]) | (c[None, :] < c[:, None])
  return ~(ge_PxP & gt_PxP).any(axis=1)


def cost_to_match(lams, rewards, costs, target_reward: float) -> float:
  """Smallest normalised cost at which a lambda-sweep reaches `target_reward` (docs/translate_r1.md:
  "full reward at 63% of the cost" is cost_to_match(..., R(always-translate)) = 0.63).

  The sweep points are ordered by lambda and joined by straight segments in the (C, R) plane
  (linear interpolation between policies trained at adjacent lambdas). Candidates are every
  point with R >= target and, on every segment whose reward crosses the target, the crossing
  C = C_i + (target - R_i) / (R_j - R_i) * (C_j - C_i). Returns the smallest candidate cost, or
  NaN if the sweep never reaches the target.
  """
  r, c = _vectors(rewards, costs)
  lam = np.asarray(lams, np.float64)
  if lam.shape != r.shape:
    raise ValueError(f"lams has shape {lam.shape}, rewards {r.shape}")
  order = np.argsort(lam, kind="stable")
  r, c = r[order], c[order]
  candidates = list(c[r >= target_reward])
  for i in range(r.size - 1):
    lo, hi = sorted((r[i], r[i + 1]))
    if lo < target_reward <= hi and r[i] != r[i + 1]:
      t = (target_reward - r[i]) / (r[i + 1] - r[i])
      candidates.append(c[i] + t * (c[i + 1] - c[i]))
  return float(min(candidates)) if candidates else float("nan")


def plot_pareto(points: Mapping[str, Sequence[Sequence[float]]], path: str, *,
                title: str | None = None) -> str:
  """Writes a PNG of reward vs normalised cost: one line per family of (cost, reward) points,
  and the alpha-free Pareto front over all points as a dashed step line. Returns `path`.

  Uses the Agg canvas directly, so the global matplotlib backend is left untouched.
  """
  from matplotlib.backends.backend_agg import FigureCanvasAgg
  from matplotlib.figure import Figure

  fig = Figure(figsize=(5.5, 4.0), dpi=100)
  FigureCanvasAgg(fig)
  ax = fig.add_subplot(1, 1, 1)
  all_c, all_r = [], []
  for label, pts in points.items():
    arr = np.asarray(pts, np.float64).reshape(-1, 2)
    if arr.size == 0:
      raise ValueError(f"plot_pareto: family {label!r} has no points")
    arr = arr[np.argsort(arr[:, 0], kind="stable")]
    ax.plot(arr[:, 0], arr[:, 1], marker="o", label=label)
    all_c.extend(arr[:, 0])
    all_r.extend(arr[:, 1])
  front = pareto_front_mask(all_r, all_c)
  fc, fr = np.asarray(all_c)[front], np.asarray(all_r)[front]
  order = np.argsort(fc, kind="stable")
  ax.step(fc[order], fr[order], where="post", linestyle="--", color="gray", label="Pareto front")
  ax.set_xlabel("normalised cost C = cost / cost(always-translate)")
  ax.set_ylabel("reward R")
  if title:
    ax.set_title(title)
  ax.grid(True, alpha=0.3)
  ax.legend(fontsize=8)
  fig.tight_layout()
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  fig.savefig(path)
  return path
