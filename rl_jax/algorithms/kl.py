"""Per-token KL(pi_theta || pi_ref) estimators from sampled tokens (Schulman 2020).

With x ~ pi_theta and r = pi_ref(x) / pi_theta(x), so log r = ref_logp - logp:

  k1 = -log r                 unbiased, high variance, can be negative
  k2 = 1/2 (log r)^2          biased, low variance, >= 0
  k3 = (r - 1) - log r        unbiased, low variance, >= 0 (GRPO; verl `low_var_kl`)

Default to k3 when KL is a loss term: k1's gradient is grad log pi_theta(x), whose expectation
under on-policy samples is zero, so as a loss it adds noise instead of regularisation (the Tunix
GRPO default silently switched from k3 to k1).

Reference: J. Schulman, "Approximating KL Divergence", http://joschu.net/blog/kl-approx.html.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

ESTIMATORS = ("k1", "k2", "k3")

# Log ratios are clamped to [-LOG_RATIO_CLAMP, LOG_RATIO_CLAMP] before exp, here in k3 and in the
# importance ratios of `losses` (verl and Tunix clamp to +-20 too), so one token whose log-probs
# disagree wildly (a stale or corrupted old log-prob) cannot overflow to inf. Outside the clamp
# the gradient is 0, which the PPO clip would give anyway for any sensible epsilon. k1 and k2
# take no exp and are left unclamped.
LOG_RATIO_CLAMP = 20.0


def kl_estimate(logp_BxT: jax.Array, ref_logp_BxT: jax.Array, estimator: str = "k3") -> jax.Array:
  """Elementwise KL estimate of shape `logp_BxT.shape`; gradients flow into both inputs.

  Callers that treat the reference as frozen should pass `jax.lax.stop_gradient(ref_logp_BxT)`.
  No masking is applied: replace padded positions before calling if they may hold garbage.
  """
  if estimator not in ESTIMATORS:
    raise ValueError(f"kl estimator must be one of {ESTIMATORS}, got {estimator!r}")
  logp_BxT = jnp.asarray(logp_BxT)
  ref_logp_BxT = jnp.asarray(ref_logp_BxT)
  if logp_BxT.shape != ref_logp_BxT.shape:
    raise ValueError(f"logp {logp_BxT.shape} and ref_logp {ref_logp_BxT.shape} must have the "
                     "same shape (in kl_estimate)")
  log_r = ref_logp_BxT - logp_BxT
  if estimator == "k1":
    return -log_r
  if estimator == "k2":
    return 0.5 * jnp.square(log_r)
  log_r = jnp.clip(log_r, -LOG_RATIO_CLAMP, LOG_RATIO_CLAMP)
  # expm1 keeps k3 accurate (and >= 0) when log r is tiny, where exp(x) - 1 - x cancels.
  return jnp.expm1(log_r) - log_r
