"""Confidence-gated cost-sensitive rewards and advantages for Translate-R1
(docs/translate_r1.md, steps 4-6).

Per rollout i of a group q (G consecutive rows, one prompt in one language): base reward r_i,
translated_i in {0,1} (did it call the translate tool), tool cost c_i, correct_i in {0,1}.

  Step 4, group statistics:
      n_native_q = #{i in q : not translated_i}
      p_native_q = #{i in q : correct_i and not translated_i} / max(1, n_native_q)
    and a confidence conf_q chosen by the gate (registry `GATES`):
      "none"            no confidence, g_q = 1 (the ungated cost penalty)
      "native_success"  conf_q = p_native_q
      "verbal_conf"     conf_q = mean_{i in q} verbal_conf_i          (the model's stated confidence)
      "logprob_conf"    conf_q = exp(mean_{i in q} first_token_logp_i) (policy probability of the
                                                                       no-translate first token)
    gate, mode "hard":  g_q = 1[conf_q >= tau_q] * 1[n_native_q >= m_min]
          mode "soft":  g_q = sigmoid(kappa (conf_q - tau_q)) * 1[n_native_q >= m_min]
    threshold [I], "fixed":      tau_q = tau (docs/translate_r1.md)
                   "tool_gain":  tau_q = p_tool_q - lam * cbar_q,
      p_tool_q = #{i in q : correct_i and called_i} / #{i in q : called_i} over the calls that
      ran (pooled with a tool history like p_native, below; 1 without any call: an untried tool
      is not priced out) and cbar_q the mean cost of the group's calls:
      the cost is charged where native answers are within the price of the tool's accuracy,
      i.e. where the tool's measured gain p_tool - p_native is below its price lam * c. With a
      fixed tau the charged set does not depend on lam, so a lambda sweep of gated policies
      lands at one cost; with "tool_gain" a higher price also charges the cells the model
      solves natively well enough (a Low language at lam = 0.5, not at 0.1), and translating
      stays free where the tool's gain exceeds its price (XLow, unseen languages).
                   "tool_gain_floor":  tau_q = max(tau, p_tool_q - lam * cbar_q): "tool_gain"
      with tau as a floor, so a cell whose native accuracy is below tau is never charged, even
      while the tool's sampled accuracy is still low early in training (docs/translate_r1.md §5).
    The n_native >= m_min factor applies to every confidence gate: the cost is charged only when
    the group has *shown* native attempts; m_min = 0 switches it off. A group whose rollouts all
    translated has p_native = 0, so a hard native_success gate is 0 there: translating is free
    exactly where the model cannot (or does not) solve natively, which keeps the cost from
    suppressing tool use on incomprehensible inputs (the over-suppression the paper describes).

  Running native evidence [I] (`NativeHistory`): a group can carry little native evidence of its
  own (once a policy calls the tool in most rollouts, few answer natively). The recipe can then
  pool the group's counts with a decayed history of earlier steps, one per cell (a language, or
  a language and domain: the caller's integer ids),
      p_native_q = (hits_q + s_l H_l) / max(1, n_native_q + s_l N_l),
      n_native_q <- n_native_q + s_l N_l,   s_l = min(1, w / N_l),
      H_l <- decay * (H_l + sum_{q in l} hits_q),   N_l <- decay * (N_l + sum_{q in l} n_native_q),
    l the cell of group q; decay = 0 is the group alone (docs/translate_r1.md). w caps the history's
    weight at w native answers (w = inf: the full counts): with a small w the cell's rate breaks
    the ties of a group's few answers instead of overruling them. For the "tool_gain"
    thresholds the recipe keeps a second history of the calls (correct calls and calls,
    `native_counts` with translated_B flipped) pooled into p_tool_q the same way.

  Calls carry the cost (c_i = 0 for a rollout that did not call), so g_q matters only in groups
  with calls; a group without calls has p_tool_q from its history alone.

  Step 5, gated reward:   R_i = r_i - lam * c_i * g_q
  Step 6, advantage:      A_i = (R_i - mean_q R) / (std_q R + eps)   or Dr.-style R_i - mean_q R

The result feeds the GSPO update unchanged (`losses.preset("gspo")`: sequence ratio,
eps 3e-4 / 4e-4, beta 0; tool-response tokens carry loss_mask = 0).

Static: gate name, mode, m_min, group size, normalisation (`GateCfg`). Traced: lam, tau, kappa
(`GateKnobs`), so one compiled program serves a whole cost-sensitivity sweep.

Reference: Translate-R1, arXiv 2606.06835 (abstract only; the gate formula is the [I] design of
docs/translate_r1.md). GSPO: Zheng et al. 2025, arXiv 2507.18071.
"""
from __future__ import annotations

import dataclasses

import flax.struct
import jax
import jax.numpy as jnp

from rl_jax.algorithms import advantages as adv_lib

GATES = ("none", "native_success", "verbal_conf", "logprob_conf")
MODES = ("hard", "soft")
THRESHOLDS = ("fixed", "tool_gain", "tool_gain_floor")
COST_IN = ("reward", "advantage")


@dataclasses.dataclass(frozen=True)
class GateCfg:
  """Static gate configuration (hashable: bind with functools.partial or static_argnames).

  Attributes:
    gate: one of `GATES`.
    mode: "hard" (indicator) or "soft" (sigmoid with slope kappa).
    threshold: "fixed" (tau), "tool_gain" (tau_q = p_tool_q - lam * cbar_q) or "tool_gain_floor"
      (tau_q = max(tau, p_tool_q - lam * cbar_q)); module docstring.
    m_min: minimum number of non-translating rollouts in the group for the gate to open.
    group_size: G, rollouts per prompt (consecutive rows).
    normalize: advantage normalisation, "std" (GRPO) or "none" (Dr. GRPO).
    eps: added to the group std.
    std_ddof: ddof of the group std (1, as TRL/verl/Tunix and `advantages.group_advantages`).
    cost_in: where the gated cost enters [I]. "reward" (docs/translate_r1.md): the advantage of
      R_i = r_i - lam c_i g_q. "advantage": A_i = norm(r)_i - lam c_i g_q, the cost added after
      the group normalisation, so it is neither rescaled by a small group std (a 0.1 cost in an
      all-correct group is not blown up to a unit advantage) nor cancelled by the group mean (a
      group where every rollout calls still feels the price).
  """
  gate: str = "native_success"
  mode: str = "hard"
  threshold: str = "fixed"
  m_min: int = 1
  group_size: int = 8
  normalize: str = "std"
  eps: float = 1e-6
  std_ddof: int = 1
  cost_in: str = "reward"

  @property
  def uses_tool_stats(self) -> bool:
    """Whether the threshold reads the group's calls (tool_B, cost_B and the call priors)."""
    return self.threshold != "fixed"

  def __post_init__(self):
    if self.cost_in not in COST_IN:
      raise ValueError(f"GateCfg.cost_in must be one of {COST_IN}, got {self.cost_in!r}")
    if self.gate not in GATES:
      raise ValueError(f"GateCfg.gate: unknown gate {self.gate!r}; registered gates: "
                       f"{', '.join(GATES)}")
    if self.mode not in MODES:
      raise ValueError(f"GateCfg.mode must be one of {MODES}, got {self.mode!r}")
    if self.threshold not in THRESHOLDS:
      raise ValueError(f"GateCfg.threshold must be one of {THRESHOLDS}, got {self.threshold!r}")
    if self.normalize not in adv_lib.NORMALIZE_MODES:
      raise ValueError(f"GateCfg.normalize must be one of {adv_lib.NORMALIZE_MODES}, "
                       f"got {self.normalize!r}")
    if not isinstance(self.m_min, int) or self.m_min < 0:
      raise ValueError(f"GateCfg.m_min must be an int >= 0, got {self.m_min!r}")
    if not isinstance(self.group_size, int) or self.group_size < 1:
      raise ValueError(f"GateCfg.group_size must be an int >= 1, got {self.group_size!r}")


@flax.struct.dataclass
class GateKnobs:
  """Traced f32 scalars. lam: cost weight; tau: confidence threshold; kappa: soft-gate slope."""
  lam: jax.Array
  tau: jax.Array
  kappa: jax.Array

  @classmethod
  def create(cls, *, lam=0.1, tau=0.5, kappa=10.0) -> "GateKnobs":
    for name, value in (("lam", lam), ("kappa", kappa)):
      if isinstance(value, (int, float)) and not value >= 0:
        raise ValueError(f"GateKnobs.{name} must be >= 0, got {value!r}")
    f32 = lambda x: jnp.asarray(x, jnp.float32)
    return cls(lam=f32(lam), tau=f32(tau), kappa=f32(kappa))


def _rows(x_B, name: str, batch: int | None, where: str) -> jax.Array:
  x_B = jnp.asarray(x_B).astype(jnp.float32)
  if x_B.ndim != 1:
    raise ValueError(f"{name} must have rank 1 [B], got shape {x_B.shape} (in {where})")
  if batch is not None and x_B.shape[0] != batch:
    raise ValueError(f"{name} has {x_B.shape[0]} rows, expected {batch} (in {where})")
  return x_B


def native_counts(correct_B, translated_B, *, group_size: int) -> tuple[jax.Array, jax.Array]:
  """(hits_Q, n_native_Q): correct native answers and native answers per group."""
  where = "native_counts"
  correct_B = _rows(correct_B, "correct_B", None, where)
  translated_B = _rows(translated_B, "translated_B", correct_B.shape[0], where)
  num_groups = adv_lib.check_group_shape(correct_B.shape[0], group_size, where)
  native_QxG = (1.0 - translated_B).reshape(num_groups, group_size)
  hits_Q = (correct_B.reshape(num_groups, group_size) * native_QxG).sum(axis=1)
  return hits_Q, native_QxG.sum(axis=1)


def native_stats(correct_B, translated_B, *, group_size: int, prior_hits_Q=None,
                 prior_n_Q=None) -> tuple[jax.Array, jax.Array]:
  """(p_native_Q, n_native_Q) per group of `group_size` consecutive rows (formulas above),
  pooled with prior counts (`NativeHistory.prior`) when given."""
  hits_Q, n_native_Q = native_counts(correct_B, translated_B, group_size=group_size)
  if (prior_hits_Q is None) != (prior_n_Q is None):
    raise ValueError("native_stats: pass both prior_hits_Q and prior_n_Q, or neither")
  if prior_hits_Q is not None:
    for name, x in (("prior_hits_Q", prior_hits_Q), ("prior_n_Q", prior_n_Q)):
      if jnp.shape(x) != hits_Q.shape:
        raise ValueError(f"native_stats: {name} must have shape {hits_Q.shape} (one per group), "
                         f"got {jnp.shape(x)}")
    hits_Q = hits_Q + jnp.asarray(prior_hits_Q, jnp.float32)
    n_native_Q = n_native_Q + jnp.asarray(prior_n_Q, jnp.float32)
  return hits_Q / jnp.maximum(n_native_Q, 1.0), n_native_Q


@flax.struct.dataclass
class NativeHistory:
  """Decayed native evidence per cell [I]: hits_K (correct native answers) and n_K (native
  answers) for K cells (integer ids chosen by the caller: a language, or a language and domain).
  Pure: `update` returns a new one."""
  hits_K: jax.Array
  n_K: jax.Array

  @classmethod
  def create(cls, num_cells: int) -> "NativeHistory":
    zeros_K = jnp.zeros((num_cells,), jnp.float32)
    return cls(hits_K=zeros_K, n_K=zeros_K)

  def prior(self, cell_Q, max_weight=None) -> tuple[jax.Array, jax.Array]:
    """(prior_hits_Q, prior_n_Q) for groups whose cells are `cell_Q` (int ids).

    max_weight [I]: the history counts as at most this many native answers: both counts are
    scaled by min(1, max_weight / N_l), which keeps the cell's rate H_l / N_l and caps its
    weight, so a group's own answers are not drowned by a long history (a Beta prior of
    strength max_weight around the cell's rate). None (or inf) = the full decayed counts.
    """
    cell_Q = jnp.asarray(cell_Q, jnp.int32)
    hits_Q, n_Q = self.hits_K[cell_Q], self.n_K[cell_Q]
    if max_weight is None:
      return hits_Q, n_Q
    if isinstance(max_weight, (int, float)) and not max_weight >= 0:
      raise ValueError(f"NativeHistory.prior: max_weight must be >= 0, got {max_weight!r}")
    scale_Q = jnp.minimum(1.0, jnp.float32(max_weight) / jnp.maximum(n_Q, 1e-12))
    return hits_Q * scale_Q, n_Q * scale_Q

  def update(self, cell_Q, hits_Q, n_native_Q, decay) -> "NativeHistory":
    """H <- decay * (H + this step's counts per cell). Groups of one cell add up."""
    num_cells = self.hits_K.shape[0]
    cell_Q = jnp.asarray(cell_Q, jnp.int32)
    add = lambda x_Q: jax.ops.segment_sum(jnp.asarray(x_Q, jnp.float32), cell_Q, num_cells)
    return NativeHistory(hits_K=decay * (self.hits_K + add(hits_Q)),
                         n_K=decay * (self.n_K + add(n_native_Q)))


def gate_confidence(correct_B, translated_B, *, cfg: GateCfg, verbal_conf_B=None,
                    first_token_logp_B=None, prior_hits_Q=None, prior_n_Q=None
                    ) -> tuple[jax.Array, jax.Array]:
  """(conf_Q, n_native_Q) for the configured gate; conf is all ones for gate "none"."""
  where = f"gate_confidence(gate={cfg.gate!r})"
  p_native_Q, n_native_Q = native_stats(correct_B, translated_B, group_size=cfg.group_size,
                                        prior_hits_Q=prior_hits_Q, prior_n_Q=prior_n_Q)
  num_groups, batch = n_native_Q.shape[0], n_native_Q.shape[0] * cfg.group_size
  if cfg.gate == "none":
    return jnp.ones_like(p_native_Q), n_native_Q
  if cfg.gate == "native_success":
    return p_native_Q, n_native_Q
  if cfg.gate == "verbal_conf":
    if verbal_conf_B is None:
      raise ValueError(f"gate 'verbal_conf' needs verbal_conf_B [B] (in {where})")
    conf_B = _rows(verbal_conf_B, "verbal_conf_B", batch, where)
    return conf_B.reshape(num_groups, cfg.group_size).mean(axis=1), n_native_Q
  if first_token_logp_B is None:
    raise ValueError(f"gate 'logprob_conf' needs first_token_logp_B [B] (in {where})")
  logp_B = _rows(first_token_logp_B, "first_token_logp_B", batch, where)
  return jnp.exp(logp_B.reshape(num_groups, cfg.group_size).mean(axis=1)), n_native_Q


def tool_stats(correct_B, tool_B, cost_B, *, group_size: int, prior_hits_Q=None,
               prior_n_Q=None) -> tuple[jax.Array, jax.Array]:
  """(p_tool_Q, cbar_Q): accuracy of the group's tool calls `tool_B` (pooled with prior counts
  of calls, as `native_stats` pools native ones; 1 where neither the group nor its prior has a
  call: an untried tool is assumed to help, so it is not priced out before it is tried) and the
  mean cost of those calls (0 without calls)."""
  where = "tool_stats"
  tool_B = _rows(tool_B, "tool_B", None, where)
  p_tool_Q, n_tool_Q = native_stats(correct_B, 1.0 - tool_B, group_size=group_size,
                                    prior_hits_Q=prior_hits_Q, prior_n_Q=prior_n_Q)
  cost_B = _rows(cost_B, "cost_B", tool_B.shape[0], where)
  calls_QxG = tool_B.reshape(p_tool_Q.shape[0], group_size)
  spent_Q = (cost_B.reshape(calls_QxG.shape) * calls_QxG).sum(axis=1)
  return (jnp.where(n_tool_Q > 0, p_tool_Q, 1.0),
          spent_Q / jnp.maximum(calls_QxG.sum(axis=1), 1.0))


def gate_threshold(knobs: GateKnobs, *, cfg: GateCfg, num_groups: int, correct_B=None,
                   tool_B=None, cost_B=None, prior_tool_hits_Q=None,
                   prior_tool_n_Q=None) -> jax.Array:
  """tau_Q: knobs.tau for threshold "fixed"; p_tool_Q - lam * cbar_Q for "tool_gain"; the
  larger of the two for "tool_gain_floor"."""
  if not cfg.uses_tool_stats:
    return jnp.broadcast_to(knobs.tau, (num_groups,))
  if cost_B is None:
    raise ValueError(f"gate threshold {cfg.threshold!r} needs cost_B [B] (in gate_threshold)")
  p_tool_Q, cbar_Q = tool_stats(correct_B, tool_B, cost_B, group_size=cfg.group_size,
                                prior_hits_Q=prior_tool_hits_Q, prior_n_Q=prior_tool_n_Q)
  gain_tau_Q = p_tool_Q - knobs.lam * cbar_Q
  if cfg.threshold == "tool_gain_floor":
    return jnp.maximum(knobs.tau, gain_tau_Q)
  return gain_tau_Q


def compute_gate(correct_B, translated_B, knobs: GateKnobs, *, cfg: GateCfg, verbal_conf_B=None,
                 first_token_logp_B=None, prior_hits_Q=None, prior_n_Q=None, cost_B=None,
                 tool_B=None, prior_tool_hits_Q=None, prior_tool_n_Q=None) -> jax.Array:
  """g_Q in [0, 1], one per group (formulas in the module docstring). cost_B, tool_B (rows
  whose tool call ran; default translated_B) and the tool priors are read by the "tool_gain"
  thresholds only."""
  conf_Q, n_native_Q = gate_confidence(correct_B, translated_B, cfg=cfg,
                                       verbal_conf_B=verbal_conf_B,
                                       first_token_logp_B=first_token_logp_B,
                                       prior_hits_Q=prior_hits_Q, prior_n_Q=prior_n_Q)
  if cfg.gate == "none":
    return jnp.ones_like(conf_Q)
  tau_Q = gate_threshold(knobs, cfg=cfg, num_groups=conf_Q.shape[0], correct_B=correct_B,
                         tool_B=translated_B if tool_B is None else tool_B, cost_B=cost_B,
                         prior_tool_hits_Q=prior_tool_hits_Q, prior_tool_n_Q=prior_tool_n_Q)
  enough_Q = (n_native_Q >= cfg.m_min).astype(jnp.float32)
  if cfg.mode == "hard":
    open_Q = (conf_Q >= tau_Q).astype(jnp.float32)
  else:
    open_Q = jax.nn.sigmoid(knobs.kappa * (conf_Q - tau_Q))
  return open_Q * enough_Q


def gated_reward(r_B, cost_B, g_Q, lam) -> jax.Array:
  """R_i = r_i - lam * c_i * g_{q(i)}; the group size is B / len(g_Q) (consecutive rows)."""
  where = "gated_reward"
  r_B = _rows(r_B, "r_B", None, where)
  cost_B = _rows(cost_B, "cost_B", r_B.shape[0], where)
  g_Q = jnp.asarray(g_Q, jnp.float32)
  if g_Q.ndim != 1 or g_Q.shape[0] == 0 or r_B.shape[0] % g_Q.shape[0]:
    raise ValueError(f"g_Q must be [num_groups] with B={r_B.shape[0]} a multiple of num_groups, "
                     f"got shape {g_Q.shape} (in {where})")
  g_B = jnp.repeat(g_Q, r_B.shape[0] // g_Q.shape[0])
  return r_B - lam * cost_B * g_B


def gated_advantages(gated_reward_B, *, cfg: GateCfg) -> jax.Array:
  """Group-normalised advantages of the gated reward (`advantages.group_advantages`)."""
  return adv_lib.group_advantages(gated_reward_B, group_size=cfg.group_size,
                                  normalize=cfg.normalize, eps=cfg.eps, std_ddof=cfg.std_ddof)


def gated_gspo_advantages(reward_B, cost_B, correct_B, translated_B, knobs: GateKnobs, *,
                          cfg: GateCfg, verbal_conf_B=None, first_token_logp_B=None,
                          prior_hits_Q=None, prior_n_Q=None, tool_B=None, prior_tool_hits_Q=None,
                          prior_tool_n_Q=None) -> tuple[jax.Array, dict[str, jax.Array]]:
  """Steps 4-6 end to end: (advantages_B, metrics). Jit with `cfg` static.

  Args:
    reward_B: base reward r_i (1[correct], or `malformed_reward` for malformed episodes).
    cost_B: tool cost c_i of each rollout.
    correct_B, translated_B: 0/1 per rollout (bool accepted).
    knobs: traced lam, tau, kappa.
    verbal_conf_B, first_token_logp_B: inputs of the "verbal_conf" / "logprob_conf" gates.
    prior_hits_Q, prior_n_Q: native evidence pooled into each group's (`NativeHistory.prior`).
    tool_B, prior_tool_hits_Q, prior_tool_n_Q: rows whose tool call ran (default translated_B)
      and prior counts of calls (the "tool_gain" thresholds).
  """
  prior = dict(prior_hits_Q=prior_hits_Q, prior_n_Q=prior_n_Q)
  g_Q = compute_gate(correct_B, translated_B, knobs, cfg=cfg, verbal_conf_B=verbal_conf_B,
                     first_token_logp_B=first_token_logp_B, cost_B=cost_B, tool_B=tool_B,
                     prior_tool_hits_Q=prior_tool_hits_Q, prior_tool_n_Q=prior_tool_n_Q, **prior)
  p_native_Q, n_native_Q = native_stats(correct_B, translated_B, group_size=cfg.group_size,
                                        **prior)
  gated_B = gated_reward(reward_B, cost_B, g_Q, knobs.lam)
  if cfg.cost_in == "reward":
    adv_B = gated_advantages(gated_B, cfg=cfg)
  else:  # the charge lam * c_i * g_q, added after the normalisation of the base reward
    adv_B = gated_advantages(reward_B, cfg=cfg) - (jnp.asarray(reward_B, jnp.float32) - gated_B)
  metrics = {
      "gate/mean": g_Q.mean(),
      "gate/p_native_mean": p_native_Q.mean(),
      "gate/n_native_mean": n_native_Q.mean(),
      "reward/base_mean": jnp.asarray(reward_B, jnp.float32).mean(),
      "reward/gated_mean": gated_B.mean(),
      "cost/mean": jnp.asarray(cost_B, jnp.float32).mean(),
      "tool/translate_rate": jnp.asarray(translated_B, jnp.float32).mean(),
  }
  return adv_B, metrics


def decision_weighted_advantages(adv_B, decision_BxL, weight) -> jax.Array:
  """Per-token advantages that scale the call decision's gradient alone [I].

      A_{i,t} = A_i * (1 + (weight - 1) * d_{i,t}),   d_{i,t} = 1 on the decision token.

  Fed to GSPO-token (`losses.preset("gspo_token")`: s_{i,t} = sg[s_i] pi(y_t) / sg[pi(y_t)],
  token mean per sequence), the ratios and clipping are GSPO's (every s_{i,t} equals s_i, and a
  positive weight never moves a token to the other side of the clip), and the gradient is
  GSPO's with the decision token's entry times `weight` (weight 1: GSPO's loss and gradient).

  Why: in GSPO the one token that decides whether to call shares the sequence's 1/|y_i| credit
  with every answer token, so under Adam the shared weights move mostly for the answers. At a
  learning rate small enough to keep the native answers from drifting, the decision is then
  learned too slowly for the price (docs/translate_r1.md §5); weighting it makes the decision
  fast without a larger step on the answers.

  Args:
    adv_B: [B] sequence advantages.
    decision_BxL: [B, L] 0/1 marks of the decision token (at most one per row).
    weight: scale of the decision token's advantage (1 = plain GSPO).
  """
  adv_B = jnp.asarray(adv_B, jnp.float32)
  decision_BxL = jnp.asarray(decision_BxL, jnp.float32)
  if adv_B.ndim != 1 or decision_BxL.shape[:1] != adv_B.shape:
    raise ValueError(f"decision_weighted_advantages: expected adv_B [B] and decision_BxL [B, L] "
                     f"with the same B, got {adv_B.shape} and {decision_BxL.shape}")
  return adv_B[:, None] * (1.0 + (jnp.asarray(weight, jnp.float32) - 1.0) * decision_BxL)
