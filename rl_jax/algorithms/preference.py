"""Pairwise preference losses: DPO (with conservative label smoothing), IPO and SimPO, on
sequence log-probabilities.

Inputs are per-pair sequence log-probs (sum over the response tokens, computed by the caller with
its loss mask: `rl_jax.preference_step`). For a pair (x, y_w, y_l), with
Delta(y) = log pi_theta(y|x) - log pi_ref(y|x) and h = Delta(y_w) - Delta(y_l):

  dpo:   L = -(1 - eps) log sigma(beta h) - eps log sigma(-beta h)
         (Rafailov et al. 2023, arXiv 2305.18290; eps > 0 is conservative DPO, the label-noise
         smoothing of Mitchell 2023 as in TRL's DPOTrainer; eps = 0 is plain DPO)
  ipo:   L = (Delta(y_w)/|y_w| - Delta(y_l)/|y_l| - 1/(2 beta))^2
         (Azar et al. 2023, arXiv 2310.12036; the log-ratios are length-normalised first, as
         TRL's DPOTrainer does)
  simpo: L = -(1 - eps) log sigma(z) - eps log sigma(-z),
         z = beta/|y_w| log pi(y_w) - beta/|y_l| log pi(y_l) - gamma
         (Meng et al. 2024, arXiv 2405.14734; no reference model, gamma an absolute margin,
         typical beta 2-2.5 and gamma/beta 0.5)

Every kind can add a likelihood term on the chosen response (`nll_coef` = alpha > 0):

  L += alpha * (-log pi_theta(y_w|x) / |y_w|)
  (RPO / iterative RPO: Pang et al. 2024, arXiv 2404.19733, TRL's `rpo_alpha`; it keeps the
  chosen response likely while the margin grows: without it DPO can lower both log-probs,
  Razin et al. 2024, arXiv 2410.08847)

Reference-free DPO / IPO (`reference_free=True`) use log pi_ref = 0 for every response (a
reference that is uniform over responses: TRL's `reference_free`), so Delta(y) = log pi(y|x).
SimPO is reference-free by definition.

Loss contract as in losses.py: returns (loss_sum, denom, stats) with denom = number of pairs,
so summing over micro-batches and dividing once gives the full-batch mean; every stat is a
(numerator, denominator) pair summed the same way.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

KINDS = ("dpo", "ipo", "simpo")


def _f32(x, name):
  x = jnp.asarray(x, jnp.float32)
  if x.ndim != 1:
    raise ValueError(f"{name} must be [B], got shape {x.shape} (in dpo_loss)")
  return x


def _is_nonzero_constant(x) -> bool:
  return isinstance(x, (int, float)) and x != 0.0


def dpo_loss(policy_chosen_logp_B, policy_rejected_logp_B, ref_chosen_logp_B=None,
             ref_rejected_logp_B=None, *, kind: str = "dpo", beta, gamma=0.0,
             label_smoothing=0.0, nll_coef=0.0, reference_free: bool = False,
             chosen_len_B=None, rejected_len_B=None):
  """Preference loss of one micro-batch of pairs as (loss_sum, denom, stats).

  Args:
    policy_chosen_logp_B, policy_rejected_logp_B: [B] sequence log-probs under pi_theta.
    ref_chosen_logp_B, ref_rejected_logp_B: [B] under pi_ref (constants: no gradient); unused
      by simpo and by reference_free dpo / ipo.
    kind: "dpo" | "ipo" | "simpo" (static).
    beta: inverse temperature (may be traced).
    gamma: SimPO target margin (may be traced); must stay 0 for dpo/ipo.
    label_smoothing: eps in [0, 0.5), the assumed probability that a label is flipped
      (conservative DPO; dpo and simpo; may be traced); must stay 0 for ipo, whose loss is a
      regression and has no label to smooth.
    nll_coef: alpha of the chosen response's per-token NLL added to every pair's loss (may be
      traced); needs chosen_len_B when not 0.
    reference_free: dpo / ipo with log pi_ref = 0 (static).
    chosen_len_B, rejected_len_B: [B] response token counts; required by ipo and simpo (and
      by nll_coef != 0).

  Returns:
    loss_sum, denom (= B) and stats name -> (numerator, denominator): rewards/chosen,
    rewards/rejected (beta * the implicit reward, i.e. beta * the normalised log-ratio for ipo
    and beta * the normalised log-prob for simpo), rewards/margin (chosen - rejected),
    rewards/accuracy (fraction of pairs with chosen reward > rejected reward), logps/chosen and
    logps/rejected (the policy's sequence log-probs), and nll/chosen (the chosen response's
    per-token NLL) whenever lengths are used.
  """
  if kind not in KINDS:
    raise ValueError(f"kind must be one of {KINDS}, got {kind!r} (in dpo_loss)")
  pc = _f32(policy_chosen_logp_B, "policy_chosen_logp_B")
  pr = _f32(policy_rejected_logp_B, "policy_rejected_logp_B")
  if pr.shape != pc.shape:
    raise ValueError(f"policy_rejected_logp_B {pr.shape} must match policy_chosen_logp_B "
                     f"{pc.shape} (in dpo_loss)")
  if kind != "simpo" and _is_nonzero_constant(gamma):
    raise ValueError(f"gamma is a SimPO margin; kind={kind!r} needs gamma=0 (in dpo_loss)")
  if kind == "ipo" and _is_nonzero_constant(label_smoothing):
    raise ValueError("label_smoothing smooths the sigmoid losses (dpo, simpo); kind='ipo' needs "
                     "label_smoothing=0 (in dpo_loss)")
  if isinstance(label_smoothing, (int, float)) and not 0.0 <= label_smoothing < 0.5:
    raise ValueError(f"label_smoothing must be in [0, 0.5), got {label_smoothing} (in dpo_loss)")
  beta = jnp.asarray(beta, jnp.float32)
  gamma = jnp.asarray(gamma, jnp.float32)
  eps = jnp.asarray(label_smoothing, jnp.float32)

  needs_len = kind in ("ipo", "simpo") or not (isinstance(nll_coef, (int, float))
                                                and nll_coef == 0.0)
  if needs_len:
    if chosen_len_B is None or rejected_len_B is None:
      raise ValueError(f"kind={kind!r} (or nll_coef) length-normalises: pass chosen_len_B and "
                       "rejected_len_B (in dpo_loss)")
    len_c = _f32(chosen_len_B, "chosen_len_B")
    len_r = _f32(rejected_len_B, "rejected_len_B")
    if len_c.shape != pc.shape or len_r.shape != pc.shape:
      raise ValueError(f"lengths {len_c.shape}/{len_r.shape} must match {pc.shape} (in dpo_loss)")
    # Guard empty responses (length 0) against division by zero; such a pair has logp 0 anyway.
    len_c, len_r = jnp.maximum(len_c, 1.0), jnp.maximum(len_r, 1.0)

  if kind == "simpo":
    chosen, rejected = pc / len_c, pr / len_r
  else:
    if reference_free:
      rc = rr = jnp.zeros_like(pc)
    else:
      if ref_chosen_logp_B is None or ref_rejected_logp_B is None:
        raise ValueError(f"kind={kind!r} needs ref_chosen_logp_B and ref_rejected_logp_B, or "
                         "reference_free=True (in dpo_loss)")
      rc = jax.lax.stop_gradient(_f32(ref_chosen_logp_B, "ref_chosen_logp_B"))
      rr = jax.lax.stop_gradient(_f32(ref_rejected_logp_B, "ref_rejected_logp_B"))
      if rc.shape != pc.shape or rr.shape != pc.shape:
        raise ValueError(f"ref log-probs {rc.shape}/{rr.shape} must match {pc.shape} "
                         "(in dpo_loss)")
    chosen, rejected = pc - rc, pr - rr
    if kind == "ipo":
      chosen, rejected = chosen / len_c, rejected / len_r

  if kind == "ipo":
    losses_B = jnp.square(chosen - rejected - 1.0 / (2.0 * beta))
  else:
    margin = gamma if kind == "simpo" else 0.0
    z = beta * (chosen - rejected) - margin
    # -log sigma(z) = softplus(-z), stable for large |z|; the eps term is -log sigma(-z).
    losses_B = (1.0 - eps) * jax.nn.softplus(-z) + eps * jax.nn.softplus(z)
  if needs_len:  # the chosen's per-token NLL, weighted by nll_coef (0 adds exactly 0)
    losses_B = losses_B + jnp.asarray(nll_coef, jnp.float32) * (-pc / len_c)

  reward_c = jax.lax.stop_gradient(beta * chosen)
  reward_r = jax.lax.stop_gradient(beta * rejected)
  n = jnp.asarray(pc.shape[0], jnp.float32)
  stats = {
      "rewards/chosen": (reward_c.sum(), n),
      "rewards/rejected": (reward_r.sum(), n),
      "rewards/margin": ((reward_c - reward_r).sum(), n),
      "rewards/accuracy": ((reward_c > reward_r).sum().astype(jnp.float32), n),
      "logps/chosen": (jax.lax.stop_gradient(pc).sum(), n),
      "logps/rejected": (jax.lax.stop_gradient(pr).sum(), n),
  }
  if needs_len:  # the chosen's per-token NLL (the nll_coef term before weighting)
    stats["nll/chosen"] = (jax.lax.stop_gradient(-pc / len_c).sum(), n)
  return losses_B.sum(), n, stats

