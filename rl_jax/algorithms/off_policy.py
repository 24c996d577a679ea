"""Asynchronous RL: the off-policy correction of stale rollouts and the queue of in-flight ones.

With `rl.off_policy_steps = k >= 1` the RL stage generates the rollout of step t + k with the
params of step t while update t runs (docs/async_rl.md), so the batch trained at step s was
sampled by the behaviour policy mu = pi_{theta_{s - d}} with staleness d = s - max(s - k, 0) <= k
(bounded staleness). Its tokens carry mu's log-probs (the sampler records them:
`Rollout.logp_policy_BxL`).

THE CORRECTION (decoupled PPO, AReaL: Fu et al. 2025, arXiv 2505.24298, eq. 5). The PPO ratio
and its clip are taken against the *proximal* policy pi_prox = the params at the start of update
s (one forward pass over the batch), and the step from mu to pi_prox is an importance weight:

    rho_t = pi_prox(y_t | y_<t) / mu(y_t | y_<t)
    L_t   = w_t * max(-A_t r_t, -A_t clip(r_t, 1 - eps_low, 1 + eps_high))
    r_t   = pi_theta(y_t | y_<t) / pi_prox(y_t | y_<t)

w is a constant (no gradient). Its level (`importance_level`):
    token      w_t from rho_t                                    (per-token IS, verl TIS)
    sequence   w_i from rho_i = prod_t rho_t = exp(sum_t m_t log rho_t)   (trajectory IS)
    geometric  w_i from rho_i = exp(sum_t m_t log rho_t / n_i)  (length-normalised, GSPO-style)
and its mode (`importance_mode`), with cap C > 1:
    truncate   w = min(rho, C)                     (IMPALA V-trace's rho-bar, Espeholt et al.
                                                    2018, arXiv 1802.01561; truncated IS (TIS) as
                                                    in verl, Yao et al. 2025 "Your efficient RL
                                                    framework secretly brings you off-policy RL
                                                    training")
    mask       w = rho * 1[1/C <= rho <= C]        (masked IS: samples too far off-policy are
                                                    dropped from the gradient, verl's "mask")
log rho is clamped to +-LOG_RATIO_CLAMP before exp (as the PPO ratio), so w is always finite.
Rows that are not stale (d = 0, e.g. the first k steps' on-policy rollouts) get w = 1 and
pi_prox = mu exactly (their old log-probs stay the sampler's): the synchronous loss. With
d = 0 everywhere the loss is the synchronous one bit for bit.

THE QUEUE. `InFlight` holds the generated, scored batches not yet trained on (host numpy), in
step order; the RL stage saves it in every checkpoint (`to_arrays` / `from_arrays`), so a
resumed run trains on exactly the rollouts the interrupted one had generated (nothing dropped,
nothing regenerated).
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from rl_jax.algorithms.kl import LOG_RATIO_CLAMP

LEVELS = ("token", "sequence", "geometric")
MODES = ("truncate", "mask")


def check_config(off_policy_steps: int, rollout_devices: int, level: str, mode: str, cap: float,
                 num_devices: int, where: str = "rl") -> None:
  """Config-time checks with errors naming the field and what was expected."""
  if not isinstance(off_policy_steps, int) or off_policy_steps < 0:
    raise ValueError(f"config {where}.off_policy_steps must be an int >= 0 (0 = synchronous), "
                     f"got {off_policy_steps!r}")
  if level not in LEVELS:
    raise ValueError(f"config {where}.importance_level must be one of {LEVELS}, got {level!r}")
  if mode not in MODES:
    raise ValueError(f"config {where}.importance_mode must be one of {MODES}, got {mode!r}")
  if not cap > 1.0:
    raise ValueError(f"config {where}.importance_cap must be > 1 (the truncation / mask bound "
                     f"C), got {cap!r}")
  if rollout_devices < 0:
    raise ValueError(f"config {where}.rollout_devices must be >= 0 (0 = share the mesh), got "
                     f"{rollout_devices}")
  if rollout_devices and not off_policy_steps:
    raise ValueError(f"config {where}.rollout_devices={rollout_devices} needs "
                     f"{where}.off_policy_steps >= 1 (a synchronous step cannot overlap rollout "
                     "and update)")
  if rollout_devices and rollout_devices >= num_devices:
    raise ValueError(f"config {where}.rollout_devices={rollout_devices} leaves no training device "
                     f"(the run has {num_devices} devices)")


def importance_weights(prox_logp_BxT: jax.Array, behaviour_logp_BxT: jax.Array,
                       mask_BxT: jax.Array, stale_B: jax.Array, *, level: str, mode: str,
                       cap: float | jax.Array) -> jax.Array:
  """The constant weights w_BxT of the decoupled loss (module docstring): 1 on rows that are not
  stale, 0 at masked positions of stale rows; sequence levels broadcast w_i over row i.

  Args:
    prox_logp_BxT: log pi_prox of the sampled tokens (the params at the start of the update).
    behaviour_logp_BxT: log mu (the sampler's log-probs, temperature 1).
    mask_BxT: loss mask; stale_B: True where the row was sampled by older params.
    level / mode / cap: see the module docstring (static level and mode, traced cap).
  """
  if level not in LEVELS or mode not in MODES:
    raise ValueError(f"importance_weights: level must be in {LEVELS} and mode in {MODES}, got "
                     f"{level!r}, {mode!r}")
  mask_BxT = jnp.asarray(mask_BxT).astype(bool)
  # Replace (never multiply) masked entries: garbage there cannot reach a weight.
  log_rho_BxT = jnp.where(mask_BxT, jnp.asarray(prox_logp_BxT, jnp.float32)
                          - jnp.asarray(behaviour_logp_BxT, jnp.float32), 0.0)
  if level == "token":
    log_rho = log_rho_BxT
  else:
    log_rho_B = log_rho_BxT.sum(axis=1)
    if level == "geometric":
      log_rho_B = log_rho_B / jnp.maximum(mask_BxT.sum(axis=1), 1)
    log_rho = jnp.broadcast_to(log_rho_B[:, None], log_rho_BxT.shape)
  rho = jnp.exp(jnp.clip(log_rho, -LOG_RATIO_CLAMP, LOG_RATIO_CLAMP))
  cap = jnp.asarray(cap, jnp.float32)
  if mode == "truncate":
    w = jnp.minimum(rho, cap)
  else:
    w = jnp.where((rho >= 1.0 / cap) & (rho <= cap), rho, 0.0)
  w = jnp.where(jnp.asarray(stale_B, bool)[:, None], w, 1.0)
  return jax.lax.stop_gradient(jnp.where(mask_BxT, w, 0.0))


def correct_batch(prox_logp_BxT, behaviour_logp_BxT, mask_BxT, stale_B, *, level: str,
                  mode: str, cap) -> tuple[jax.Array, jax.Array]:
  """(old_logp_BxT, w_BxT) for the update: pi_prox on stale rows and mu elsewhere (bitwise the
  sampler's log-probs on fresh rows), and `importance_weights`."""
  stale_Bx1 = jnp.asarray(stale_B, bool)[:, None]
  old_BxT = jnp.where(stale_Bx1, prox_logp_BxT, behaviour_logp_BxT)
  w_BxT = importance_weights(prox_logp_BxT, behaviour_logp_BxT, mask_BxT, stale_B, level=level,
                             mode=mode, cap=cap)
  return old_BxT, w_BxT


def weight_stats(w_BxT, mask_BxT, stale_B, cap) -> dict[str, jax.Array]:
  """Device gauges of the correction over the stale rows' loss tokens: mean weight, fraction at
  the cap (truncate) or zeroed (mask), and the fraction of stale rows (f32 scalars, fetched late
  like every update metric, so they never block the host)."""
  m = jnp.asarray(mask_BxT).astype(bool)
  stale = jnp.asarray(stale_B, bool)
  tokens = m & stale[:, None]
  n = jnp.maximum(tokens.sum(), 1).astype(jnp.float32)
  return {"offpolicy/stale_frac": stale.mean(dtype=jnp.float32),
          "offpolicy/weight_mean": jnp.where(tokens.any(), jnp.where(tokens, w_BxT, 0).sum() / n,
                                             1.0),
          "offpolicy/weight_capped_frac": ((w_BxT >= cap) & tokens).sum() / n,
          "offpolicy/weight_zero_frac": ((w_BxT == 0) & tokens).sum() / n}


@functools.partial(jax.jit, static_argnames=("level", "mode"))
def correction(prox_logp_BxT, behaviour_logp_BxT, mask_BxT, stale_B, cap, *, level: str,
               mode: str):
  """`correct_batch` and `weight_stats` as one compiled program (what the RL stage calls):
  (old_logp_BxT, w_BxT, gauges)."""
  old_BxT, w_BxT = correct_batch(prox_logp_BxT, behaviour_logp_BxT, mask_BxT, stale_B,
                                 level=level, mode=mode, cap=cap)
  return old_BxT, w_BxT, weight_stats(w_BxT, mask_BxT, stale_B, cap)


# ---------------------------------------------------------------------------------------------
# The queue of in-flight rollouts.

ARRAY_FIELDS = ("tokens", "valid", "loss_mask", "behaviour_logp", "adv", "adv_BxL")
_DTYPES = {"tokens": np.int32, "valid": np.int32, "loss_mask": np.float32,
           "behaviour_logp": np.float32, "adv": np.float32, "adv_BxL": np.float32}


@dataclasses.dataclass
class Pending:
  """A generated, scored rollout waiting for its update.

  step: the RL step that trains on it; version: the train-state step of the params that
  sampled it (staleness at update s = s - version). arrays: `ARRAY_FIELDS` as host numpy in
  fixed dtypes (adv_BxL is all-zero when the advantage is per sequence: has_adv_BxL says which).
  host: the step's host metrics computed at generation (rewards, lengths, ...), floats.
  """
  step: int
  version: int
  arrays: dict[str, np.ndarray]
  has_adv_BxL: bool
  host: dict[str, float]


def make_pending(step: int, version: int, *, tokens, valid, loss_mask, behaviour_logp, adv,
                 adv_BxL, host: dict[str, float]) -> Pending:
  """A `Pending` with every array cast to its fixed dtype (so a batch restored from a
  checkpoint feeds the update exactly what the uninterrupted run fed it)."""
  has = adv_BxL is not None
  values = dict(tokens=tokens, valid=valid, loss_mask=loss_mask, behaviour_logp=behaviour_logp,
                adv=adv, adv_BxL=adv_BxL if has else np.zeros(np.shape(tokens), np.float32))
  arrays = {k: np.asarray(values[k]).astype(_DTYPES[k]) for k in ARRAY_FIELDS}
  return Pending(step, version, arrays, has, {k: float(v) for k, v in host.items()})


def queue_template(k: int, rows: int, seq_len: int) -> dict[str, np.ndarray]:
  """Zero arrays [k, rows, seq_len] (adv: [k, rows]) in the queue's dtypes: the restore template
  of `to_arrays` (the checkpoint's array part has fixed shapes)."""
  return {name: np.zeros((k, rows) if name == "adv" else (k, rows, seq_len), _DTYPES[name])
          for name in ARRAY_FIELDS}


def to_arrays(queue: list[Pending], k: int, rows: int, seq_len: int
              ) -> tuple[dict[str, np.ndarray], list[dict[str, Any]]]:
  """(stacked arrays [k, ...], JSON meta per entry) of a queue of at most k entries; unused
  slots stay zero."""
  if len(queue) > k:
    raise ValueError(f"{len(queue)} rollouts in flight, more than off_policy_steps={k}")
  arrays = queue_template(k, rows, seq_len)
  meta = []
  for i, p in enumerate(queue):
    for name in ARRAY_FIELDS:
      arrays[name][i] = p.arrays[name]
    meta.append({"step": p.step, "version": p.version, "has_adv_BxL": p.has_adv_BxL,
                 "host": p.host})
  return arrays, meta


def from_arrays(arrays: dict[str, Any], meta: list[dict[str, Any]]) -> list[Pending]:
  """The queue saved by `to_arrays`."""
  arrays = {k: np.asarray(v) for k, v in arrays.items()}
  return [Pending(int(m["step"]), int(m["version"]),
                  {k: arrays[k][i].astype(_DTYPES[k]) for k in ARRAY_FIELDS},
                  bool(m["has_adv_BxL"]), {k: float(v) for k, v in m["host"].items()})
          for i, m in enumerate(meta)]
