"""Clipped policy-gradient losses (GRPO, Dr. GRPO, DAPO, BNPO, GSPO, GSPO-token) and aggregation.

One function, `policy_loss`, covers the family; what differs is static (`LossCfg`: ratio level,
aggregation mode, KL estimator) or a traced knob (`LossKnobs`: clip epsilons, dual clip, beta), so
sweeping a number never recompiles.

THE LOSS CONTRACT. `policy_loss` returns `(loss_sum, denom, stats)` for one micro-batch; the loss
of the micro-batch is loss_sum / denom. The update step adds loss_sum and denom over micro-batches
and divides once, so gradient accumulation reproduces the full-batch value and gradient exactly
for every aggregation mode (rather than a mean of per-micro-batch means). Per mode, with L_{i,t}
the per-token loss, m the mask and n_i = sum_t m_{i,t}:

  token_mean               (DAPO, TRL bnpo/dapo)  sum_{i,t} m L          / sum_{i,t} m
  seq_mean_token_mean      (GRPO)                 sum_i (sum_t m L / n_i) / #{i : n_i > 0}
  seq_mean_token_sum                               sum_i  sum_t m L        / #{i : n_i > 0}
  seq_mean_token_sum_norm  (Dr. GRPO)             sum_i  sum_t m L / norm_len / #{i : n_i > 0}

A row with no valid token (a padding row that fills a micro-batch, a filtered sample) is not a
sequence: it adds 0 to both loss_sum and denom. `stats` maps a metric name to a (numerator,
denominator) pair of f32 scalars aggregated the same way.

The loss is MINIMISED: it is the negative of the clipped surrogate objective plus beta * KL.

References:
  PPO: Schulman et al. 2017, arXiv 1707.06347. Dual clip: Ye et al. 2020, arXiv 1912.09729.
  GRPO: arXiv 2402.03300. Dr. GRPO: arXiv 2503.20783. DAPO: arXiv 2503.14476.
  GSPO / GSPO-token: Zheng et al. 2025, arXiv 2507.18071.
"""
from __future__ import annotations

import dataclasses
import math
from typing import NamedTuple

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np

from rl_jax.algorithms import kl as kl_lib
from rl_jax.algorithms.kl import LOG_RATIO_CLAMP

LEVELS = ("token", "sequence", "sequence_token")
AGGS = ("token_mean", "seq_mean_token_mean", "seq_mean_token_sum", "seq_mean_token_sum_norm")


Stats = dict[str, tuple[jax.Array, jax.Array]]


@dataclasses.dataclass(frozen=True)
class LossCfg:
  """Static loss configuration (hashable, so it can be bound with functools.partial under jit).

  Attributes:
    level: importance-ratio level. "token": PPO ratio per token (GRPO, DAPO, Dr. GRPO, BNPO).
      "sequence": GSPO, one length-normalised ratio per sequence; each sequence is one unit, so
      `agg` is ignored and the loss is a mean over sequences. "sequence_token": GSPO-token, the
      sequence ratio's value with per-token gradients and per-token advantages, aggregated by `agg`.
    agg: aggregation mode, see the module docstring (verl `loss_agg_mode` names, with underscores).
    kl_estimator: "k1" | "k2" | "k3" (see rl_jax.algorithms.kl); k3 by default.
    use_kl_loss: add beta * KL(pi_theta || pi_ref) to the loss (needs ref log-probs).
    norm_len: the constant for seq_mean_token_sum_norm (Dr. GRPO), usually the max response length.
  """
  level: str = "token"
  agg: str = "token_mean"
  kl_estimator: str = "k3"
  use_kl_loss: bool = False
  norm_len: int = 0

  def __post_init__(self):
    if self.level not in LEVELS:
      raise ValueError(f"LossCfg.level must be one of {LEVELS}, got {self.level!r}")
    if self.agg not in AGGS:
      raise ValueError(f"LossCfg.agg must be one of {AGGS}, got {self.agg!r}")
    if self.kl_estimator not in kl_lib.ESTIMATORS:
      raise ValueError(
          f"LossCfg.kl_estimator must be one of {kl_lib.ESTIMATORS}, got {self.kl_estimator!r}")
    if not isinstance(self.use_kl_loss, bool):
      raise ValueError(f"LossCfg.use_kl_loss must be a bool, got {self.use_kl_loss!r}")
    if not isinstance(self.norm_len, int) or isinstance(self.norm_len, bool) or self.norm_len < 0:
      raise ValueError(f"LossCfg.norm_len must be a non-negative int, got {self.norm_len!r}")
    if self.agg == "seq_mean_token_sum_norm" and self.norm_len < 1:
      raise ValueError("LossCfg.agg='seq_mean_token_sum_norm' needs LossCfg.norm_len >= 1 (the "
                       f"constant token normaliser, e.g. the max response length); got "
                       f"{self.norm_len}")


@flax.struct.dataclass
class LossKnobs:
  """Traced numeric knobs (f32 scalars): changing them never recompiles.

  Attributes:
    eps_low: PPO clip below, ratio >= 1 - eps_low.
    eps_high: PPO clip above, ratio <= 1 + eps_high (DAPO clip-higher: eps_high > eps_low).
    eps_c: dual-clip constant (Ye et al. 2020). For A < 0 the loss is capped at -eps_c * A, i.e.
      min(max(-A r, -A clip(r)), -eps_c A), which bounds the push-down of tokens whose ratio has
      run above eps_c. Active only when eps_c > 1; any value <= 1 (e.g. 0) or +inf disables it.
    beta: KL coefficient; used only when LossCfg.use_kl_loss.
  """
  eps_low: jax.Array
  eps_high: jax.Array
  eps_c: jax.Array
  beta: jax.Array

  @classmethod
  def create(cls, *, eps_low=0.2, eps_high=None, eps_c=math.inf, beta=0.0) -> "LossKnobs":
    """Builds f32 knobs; eps_high=None means eps_high = eps_low (TRL's convention)."""
    eps_high = eps_low if eps_high is None else eps_high
    for name, value in (("eps_low", eps_low), ("eps_high", eps_high), ("beta", beta)):
      if isinstance(value, (int, float)) and not value >= 0:
        raise ValueError(f"LossKnobs.{name} must be >= 0, got {value!r}")
    if isinstance(eps_low, (int, float)) and eps_low >= 1:
      raise ValueError(f"LossKnobs.eps_low must be < 1 (ratio floor 1 - eps_low), got {eps_low}")
    f32 = lambda x: jnp.asarray(x, jnp.float32)
    return cls(eps_low=f32(eps_low), eps_high=f32(eps_high), eps_c=f32(eps_c), beta=f32(beta))


class Preset(NamedTuple):
  cfg: LossCfg
  knobs: dict  # keyword arguments for LossKnobs.create
  adv_normalize: str  # `normalize` for advantages.group_advantages


def _presets(norm_len: int) -> dict[str, Preset]:
  inf = math.inf
  return {
      # DeepSeekMath: per-sequence token mean, k3 KL with beta 0.04, symmetric eps 0.2.
      "grpo": Preset(LossCfg("token", "seq_mean_token_mean", "k3", True),
                     dict(eps_low=0.2, eps_high=0.2, eps_c=inf, beta=0.04), "std"),
      # Dr. GRPO: token sum over a constant, no std division, no KL.
      "dr_grpo": Preset(LossCfg("token", "seq_mean_token_sum_norm", "k3", False, norm_len),
                        dict(eps_low=0.2, eps_high=0.2, eps_c=inf, beta=0.0), "none"),
      # DAPO: token mean over the batch with clip-higher, no KL.
      "dapo": Preset(LossCfg("token", "token_mean"),
                     dict(eps_low=0.2, eps_high=0.28, eps_c=inf, beta=0.0), "std"),
      # TRL bnpo: token mean over the (micro-)batch, symmetric clip.
      "bnpo": Preset(LossCfg("token", "token_mean"),
                     dict(eps_low=0.2, eps_high=0.2, eps_c=inf, beta=0.0), "std"),
      # GSPO: sequence ratio, paper epsilons, beta 0.
      "gspo": Preset(LossCfg("sequence", "seq_mean_token_mean"),
                     dict(eps_low=3e-4, eps_high=4e-4, eps_c=inf, beta=0.0), "std"),
      "gspo_token": Preset(LossCfg("sequence_token", "seq_mean_token_mean"),
                           dict(eps_low=3e-4, eps_high=4e-4, eps_c=inf, beta=0.0), "std"),
  }


PRESET_NAMES = tuple(_presets(1))


def preset(name: str, *, norm_len: int | None = None) -> Preset:
  """Returns (LossCfg, LossKnobs.create kwargs, advantage normalize) for a named recipe.

  `norm_len` (the max response length) is required by "dr_grpo" and ignored otherwise.
  """
  if name not in PRESET_NAMES:
    raise ValueError(f"unknown loss preset {name!r}; valid names: {', '.join(PRESET_NAMES)}")
  if name == "dr_grpo" and norm_len is None:
    raise ValueError("preset 'dr_grpo' needs norm_len= (the max response length), the constant "
                     "its token sums are divided by")
  return _presets(1 if norm_len is None else norm_len)[name]


def loss_denominator(mask_BxT, *, cfg: LossCfg) -> float:
  """The denominator `policy_loss` gives rows with this mask (host numpy): their loss tokens
  under token-level "token_mean" aggregation, otherwise their sequences (rows with >= 1 loss
  token; level "sequence" is always a mean over sequences)."""
  mask_BxT = np.asarray(mask_BxT).astype(bool)
  if cfg.level != "sequence" and cfg.agg == "token_mean":
    return float(mask_BxT.sum())
  return float(mask_BxT.any(axis=1).sum())


def aggregate_loss(loss_BxT: jax.Array, mask_BxT: jax.Array, *, cfg: LossCfg
                   ) -> tuple[jax.Array, jax.Array]:
  """(sum, denom) of a per-token quantity under cfg.agg; masked entries are ignored, even NaN."""
  mask_BxT = jnp.asarray(mask_BxT).astype(bool)
  loss_BxT = jnp.where(mask_BxT, loss_BxT, 0.0)
  tokens_B = mask_BxT.sum(axis=1).astype(jnp.float32)
  if cfg.agg == "token_mean":
    return loss_BxT.sum(), tokens_B.sum()
  seq_sum_B = loss_BxT.sum(axis=1)
  if cfg.agg == "seq_mean_token_mean":
    per_seq_B = seq_sum_B / jnp.maximum(tokens_B, 1.0)
  elif cfg.agg == "seq_mean_token_sum":
    per_seq_B = seq_sum_B
  else:  # seq_mean_token_sum_norm
    per_seq_B = seq_sum_B / cfg.norm_len
  return per_seq_B.sum(), (tokens_B > 0).sum().astype(jnp.float32)


def _clipped_surrogate(ratio, adv, knobs: LossKnobs):
  """Per-unit PPO loss with dual clip, plus masks of where each clipped branch is active.

  loss = max(-A r, -A clip(r, 1 - eps_low, 1 + eps_high)); for A < 0 and eps_c > 1 it is then
  min(loss, -eps_c A). Low clip active: r < 1 - eps_low and A < 0; high: r > 1 + eps_high and
  A > 0; dual: A < 0, eps_c > 1 and r > eps_c.
  """
  eps_low, eps_high, eps_c = knobs.eps_low, knobs.eps_high, knobs.eps_c
  unclipped = -adv * ratio
  clipped = -adv * jnp.clip(ratio, 1.0 - eps_low, 1.0 + eps_high)
  loss = jnp.maximum(unclipped, clipped)
  neg = adv < 0
  dual_on = neg & (eps_c > 1.0)
  # -eps_c * A with A replaced where it is >= 0, so inf * 0 = NaN never appears, even unselected.
  bound = -eps_c * jnp.where(neg, adv, -1.0)
  loss = jnp.where(dual_on, jnp.minimum(loss, bound), loss)
  low = neg & (ratio < 1.0 - eps_low)
  high = (adv > 0) & (ratio > 1.0 + eps_high)
  dual = dual_on & (ratio > eps_c)
  return loss, low, high, dual


def _check_shapes(logp_BxT, old_logp_BxT, adv, mask_BxT, ref_logp_BxT):
  if logp_BxT.ndim != 2:
    raise ValueError(f"logp_BxT must be [B, T], got shape {logp_BxT.shape} (in policy_loss)")
  for name, x in (("old_logp_BxT", old_logp_BxT), ("mask_BxT", mask_BxT),
                  ("ref_logp_BxT", ref_logp_BxT)):
    if x is not None and x.shape != logp_BxT.shape:
      raise ValueError(f"{name} has shape {x.shape}, expected {logp_BxT.shape} like logp_BxT "
                       "(in policy_loss)")
  if adv.shape not in (logp_BxT.shape[:1], logp_BxT.shape):
    raise ValueError(f"adv has shape {adv.shape}, expected [B]={logp_BxT.shape[:1]} or "
                     f"[B, T]={logp_BxT.shape} (in policy_loss)")


def policy_loss(logp_BxT: jax.Array, old_logp_BxT: jax.Array, adv: jax.Array,
                mask_BxT: jax.Array, knobs: LossKnobs, *, cfg: LossCfg,
                ref_logp_BxT: jax.Array | None = None,
                is_weight_BxT: jax.Array | None = None) -> tuple[jax.Array, jax.Array, Stats]:
  """Clipped policy loss of one micro-batch as (loss_sum, denom, stats); loss = sum / denom.

  Token level (cfg.level="token"), per token with r_t = exp(logp_t - old_logp_t):
    L_t = max(-A_t r_t, -A_t clip(r_t, 1 - eps_low, 1 + eps_high))  [dual-clipped, see LossKnobs]
    aggregated by cfg.agg.
  GSPO (cfg.level="sequence"), per sequence i:
    s_i = exp(sum_t m (logp - old_logp) / n_i)      (geometric mean of the token ratios)
    L_i = max(-A_i s_i, -A_i clip(s_i, 1 - eps_low, 1 + eps_high)), mean over sequences.
    s_i comes from the length-normalised masked sum; a per-sequence loss is never multiplied by
    its token count. A [B, T] advantage is reduced to its masked per-sequence mean.
  GSPO-token (cfg.level="sequence_token"):
    s_{i,t} = sg[s_i] * exp(logp_t - sg[logp_t]), clipped per token with A_{i,t}, aggregated by
    cfg.agg. With A constant per sequence and agg="seq_mean_token_mean" it equals GSPO in value
    and gradient.
  Off-policy weights (asynchronous RL, decoupled PPO, arXiv 2505.24298): with `is_weight_BxT`
  the clipped term is multiplied by that constant, per token (w_t L_t) or, for GSPO, per
  sequence by the masked token mean of w over the sequence (the sequence levels of
  `rl_jax.algorithms.off_policy` make w constant along a row, so that mean is w_i). The KL term
  is not weighted. None (the default) leaves the loss bitwise unchanged.
  KL: if cfg.use_kl_loss, beta * KL_t (cfg.kl_estimator) is added per token before aggregation
  (for GSPO: beta times the per-sequence token mean). It is logged whenever ref log-probs are given.

  Gradients flow only into logp_BxT: old log-probs, ref log-probs and advantages are constants.
  Masked positions contribute exactly 0 and never leak NaN/inf, whatever the inputs hold there.

  Args:
    logp_BxT: [B, T] log pi_theta of the sampled tokens.
    old_logp_BxT: [B, T] log pi_old (the sampling policy).
    adv: [B] or [B, T] advantages.
    mask_BxT: [B, T] binary loss mask (0 for prompt, padding and tool-output tokens).
    knobs: LossKnobs (traced).
    cfg: LossCfg (static).
    ref_logp_BxT: [B, T] log pi_ref; required when cfg.use_kl_loss.
    is_weight_BxT: [B, T] constant importance weights of stale samples, or None.

  Returns:
    loss_sum, denom: f32 scalars. stats: name -> (numerator, denominator): clip/frac_low,
    clip/frac_high, clip/frac_dual and ratio/mean over tokens (over sequences for GSPO); loss/pg;
    kl/<estimator> (token mean) when ref log-probs are given; loss/kl when cfg.use_kl_loss.
  """
  logp_BxT, old_logp_BxT, adv, mask_BxT = map(jnp.asarray,
                                              (logp_BxT, old_logp_BxT, adv, mask_BxT))
  if ref_logp_BxT is not None:
    ref_logp_BxT = jnp.asarray(ref_logp_BxT)
  _check_shapes(logp_BxT, old_logp_BxT, adv, mask_BxT, ref_logp_BxT)
  if is_weight_BxT is not None:
    if is_weight_BxT.shape != logp_BxT.shape:
      raise ValueError(f"is_weight_BxT has shape {is_weight_BxT.shape}, expected "
                       f"{logp_BxT.shape} like logp_BxT (in policy_loss)")
    is_weight_BxT = jax.lax.stop_gradient(jnp.asarray(is_weight_BxT, jnp.float32))
  if cfg.use_kl_loss and ref_logp_BxT is None:
    raise ValueError("LossCfg.use_kl_loss=True needs ref_logp_BxT (in policy_loss)")
  knobs = jax.tree.map(lambda x: jnp.asarray(x, jnp.float32), knobs)
  f32 = jnp.float32

  # Replace (never multiply) masked entries, so garbage there cannot reach a value or gradient.
  mask_BxT = mask_BxT.astype(bool)
  logp_BxT = jnp.where(mask_BxT, logp_BxT.astype(f32), 0.0)
  old_logp_BxT = jax.lax.stop_gradient(jnp.where(mask_BxT, old_logp_BxT.astype(f32), 0.0))
  adv = jax.lax.stop_gradient(adv.astype(f32))
  if adv.ndim == 2:
    adv = jnp.where(mask_BxT, adv, 0.0)
  tokens_B = mask_BxT.sum(axis=1).astype(f32)
  seqs_B = tokens_B > 0
  num_tokens, num_seqs = tokens_B.sum(), seqs_B.sum().astype(f32)

  stats: Stats = {}
  kl_BxT = None
  if ref_logp_BxT is not None:
    ref_logp_BxT = jax.lax.stop_gradient(jnp.where(mask_BxT, ref_logp_BxT.astype(f32), 0.0))
    kl_BxT = jnp.where(mask_BxT, kl_lib.kl_estimate(logp_BxT, ref_logp_BxT, cfg.kl_estimator),
                       0.0)
    stats[f"kl/{cfg.kl_estimator}"] = (kl_BxT.sum(), num_tokens)
  use_kl = cfg.use_kl_loss
  # beta == 0 must give exactly 0 even if a KL value were inf.
  beta_kl = lambda kl: jnp.where(knobs.beta > 0, knobs.beta * kl, 0.0)

  log_ratio_BxT = logp_BxT - old_logp_BxT
  if cfg.level in ("sequence", "sequence_token"):
    seq_log_ratio_B = log_ratio_BxT.sum(axis=1) / jnp.maximum(tokens_B, 1.0)

  if cfg.level == "sequence":
    adv_B = adv if adv.ndim == 1 else adv.sum(axis=1) / jnp.maximum(tokens_B, 1.0)
    ratio_B = jnp.exp(jnp.clip(seq_log_ratio_B, -LOG_RATIO_CLAMP, LOG_RATIO_CLAMP))
    pg_B, low_B, high_B, dual_B = _clipped_surrogate(ratio_B, adv_B, knobs)
    if is_weight_BxT is not None:
      pg_B = pg_B * (jnp.where(mask_BxT, is_weight_BxT, 0.0).sum(axis=1)
                     / jnp.maximum(tokens_B, 1.0))
    pg_B = jnp.where(seqs_B, pg_B, 0.0)
    total_B = pg_B
    if use_kl:
      kl_term_B = beta_kl(kl_BxT.sum(axis=1) / jnp.maximum(tokens_B, 1.0))
      kl_term_B = jnp.where(seqs_B, kl_term_B, 0.0)
      total_B = total_B + kl_term_B
      stats["loss/kl"] = (kl_term_B.sum(), num_seqs)
    loss_sum, denom = total_B.sum(), num_seqs
    stats["loss/pg"] = (pg_B.sum(), num_seqs)
    frac = lambda m_B: ((m_B & seqs_B).sum().astype(f32), num_seqs)
    stats["ratio/mean"] = (jnp.where(seqs_B, ratio_B, 0.0).sum(), num_seqs)
    low, high, dual = low_B, high_B, dual_B
  else:
    if cfg.level == "sequence_token":
      # Value of the sequence ratio, gradient of the token's own log-prob.
      seq_part_BxT = jax.lax.stop_gradient(seq_log_ratio_B)[:, None]
      log_ratio_BxT = seq_part_BxT + logp_BxT - jax.lax.stop_gradient(logp_BxT)
    ratio_BxT = jnp.exp(jnp.clip(log_ratio_BxT, -LOG_RATIO_CLAMP, LOG_RATIO_CLAMP))
    adv_BxT = jnp.broadcast_to(adv[:, None] if adv.ndim == 1 else adv, ratio_BxT.shape)
    pg_BxT, low, high, dual = _clipped_surrogate(ratio_BxT, adv_BxT, knobs)
    if is_weight_BxT is not None:
      pg_BxT = pg_BxT * jnp.where(mask_BxT, is_weight_BxT, 0.0)
    pg_BxT = jnp.where(mask_BxT, pg_BxT, 0.0)
    total_BxT = pg_BxT
    if use_kl:
      kl_term_BxT = jnp.where(mask_BxT, beta_kl(kl_BxT), 0.0)
      total_BxT = total_BxT + kl_term_BxT
      stats["loss/kl"] = aggregate_loss(kl_term_BxT, mask_BxT, cfg=cfg)
    loss_sum, denom = aggregate_loss(total_BxT, mask_BxT, cfg=cfg)
    stats["loss/pg"] = aggregate_loss(pg_BxT, mask_BxT, cfg=cfg)
    frac = lambda m_BxT: ((m_BxT & mask_BxT).sum().astype(f32), num_tokens)
    stats["ratio/mean"] = (jnp.where(mask_BxT, ratio_BxT, 0.0).sum(), num_tokens)

  stats["clip/frac_low"] = frac(low)
  stats["clip/frac_high"] = frac(high)
  stats["clip/frac_dual"] = frac(dual)
  return loss_sum, denom, stats
