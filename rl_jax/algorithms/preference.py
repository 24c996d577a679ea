"""Pairwise preference losses: DPO, IPO and SimPO, on sequence log-probabilities.

Inputs are per-pair sequence log-probs (sum over the response tokens, computed by the caller with
its loss mask). For a pair (x, y_w, y_l), Delta(y) = log pi_theta(y|x) - log pi_ref(y|x):

  dpo:   L = -log sigma(beta [Delta(y_w) - Delta(y_l)])                      (Rafailov 2023)
  ipo:   L = (Delta(y_w)/|y_w| - Delta(y_l)/|y_l| - 1/(2 beta))^2            (Azar 2023; the
         log-ratios are length-normalised first, as TRL's DPOTrainer does)
  simpo: L = -log sigma(beta/|y_w| log pi(y_w) - beta/|y_l| log pi(y_l) - gamma)  (Meng 2024;
         no reference model, gamma an absolute margin, typical beta 2-2.5, gamma/beta 0.5)

Loss contract as in losses.py: returns (loss_sum, denom, stats) with denom = number of pairs,
so summing over micro-batches and dividing once gives the full-batch mean.

References: arXiv 2305.18290 (DPO), 2310.12036 (IPO), 2405.14734 (SimPO).
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


def dpo_loss(policy_chosen_logp_B, policy_rejected_logp_B, ref_chosen_logp_B=None,
             ref_rejected_logp_B=None, *, kind: str = "dpo", beta, gamma=0.0,
             chosen_len_B=None, rejected_len_B=None):
  """Preference loss of one micro-batch of pairs as (loss_sum, denom, stats).

  Args:
    policy_chosen_logp_B, policy_rejected_logp_B: [B] sequence log-probs under pi_theta.
    ref_chosen_logp_B, ref_rejected_logp_B: [B] under pi_ref (constants); unused by simpo.
    kind: "dpo" | "ipo" | "simpo" (static).
    beta: inverse temperature (may be traced).
    gamma: SimPO target margin (may be traced); must stay 0 for dpo/ipo.
    chosen_len_B, rejected_len_B: [B] response token counts; required by ipo and simpo.

  Returns:
    loss_sum, denom (= B) and stats name -> (numerator, denominator): rewards/chosen,
    rewards/rejected (beta * the implicit reward, i.e. the normalised log-ratio for ipo and the
    normalised log-prob for simpo), rewards/margin (chosen - rejected) and rewards/accuracy
    (fraction of pairs with chosen reward > rejected reward).
  """
  if kind not in KINDS:
    raise ValueError(f"kind must be one of {KINDS}, got {kind!r} (in dpo_loss)")
  pc = _f32(policy_chosen_logp_B, "policy_chosen_logp_B")
  pr = _f32(policy_rejected_logp_B, "policy_rejected_logp_B")
  if pr.shape != pc.shape:
    raise ValueError(f"policy_rejected_logp_B {pr.shape} must match policy_chosen_logp_B "
                     f"{pc.shape} (in dpo_loss)")
  if kind != "simpo" and isinstance(gamma, (int, float)) and gamma != 0.0:
    raise ValueError(f"gamma is a SimPO margin; kind={kind!r} needs gamma=0 (in dpo_loss)")
  beta = jnp.asarray(beta, jnp.float32)
  gamma = jnp.asarray(gamma, jnp.float32)

  if kind in ("ipo", "simpo"):
    if chosen_len_B is None or rejected_len_B is None:
      raise ValueError(f"kind={kind!r} length-normalises: pass chosen_len_B and rejected_len_B "
                       "(in dpo_loss)")
    len_c = _f32(chosen_len_B, "chosen_len_B")
    len_r = _f32(rejected_len_B, "rejected_len_B")
    if len_c.shape != pc.shape or len_r.shape != pc.shape:
      raise ValueError(f"lengths {len_c.shape}/{len_r.shape} must match {pc.shape} (in dpo_loss)")
    # Guard empty responses (length 0) against division by zero; such a pair has logp 0 anyway.
    len_c, len_r = jnp.maximum(len_c, 1.0), jnp.maximum(len_r, 1.0)

  if kind == "simpo":
    chosen, rejected = pc / len_c, pr / len_r
  else:
    if ref_chosen_logp_B is None or ref_rejected_logp_B is None:
      raise ValueError(f"kind={kind!r} needs ref_chosen_logp_B and ref_rejected_logp_B "
                       "(in dpo_loss)")
    rc = jax.lax.stop_gradient(_f32(ref_chosen_logp_B, "ref_chosen_logp_B"))
    rr = jax.lax.stop_gradient(_f32(ref_rejected_logp_B, "ref_rejected_logp_B"))
    if rc.shape != pc.shape or rr.shape != pc.shape:
      raise ValueError(f"ref log-probs {rc.shape}/{rr.shape} must match {pc.shape} (in dpo_loss)")
    chosen, rejected = pc - rc, pr - rr
    if kind == "ipo":
      chosen, rejected = chosen / len_c, rejected / len_r

  if kind == "ipo":
    losses_B = jnp.square(chosen - rejected - 1.0 / (2.0 * beta))
  else:
    # -log sigma(z) = softplus(-z), stable for large |z|.
    margin = gamma if kind == "simpo" else 0.0
    losses_B = jax.nn.softplus(-(beta * (chosen - rejected) - margin))

  reward_c = jax.lax.stop_gradient(beta * chosen)
  reward_r = jax.lax.stop_gradient(beta * rejected)
  n = jnp.asarray(pc.shape[0], jnp.float32)
  stats = {
      "rewards/chosen": (reward_c.sum(), n),
      "rewards/rejected": (reward_r.sum(), n),
      "rewards/margin": ((reward_c - reward_r).sum(), n),
      "rewards/accuracy": ((reward_c > reward_r).sum().astype(jnp.float32), n),
  }
  return losses_B.sum(), n, stats
