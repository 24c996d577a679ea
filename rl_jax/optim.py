"""Optimizer from config: global-norm clip + AdamW, with a traced learning rate.

The learning rate, weight decay and clip norm live in the optimizer state
(`optax.inject_hyperparams`), and the update step writes `peak_lr * schedule(step)` into it
every step. So a changed learning rate is a changed *value*, never a recompile, and the schedule
shape (warm-up / decay lengths: static ints) is the only compiled-in part.
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import optax

from rl_jax.models import lora

SCHEDULES = ("constant", "cosine", "linear")


@dataclasses.dataclass(frozen=True)
class OptimCfg:
  """Optimizer settings.

  The peak learning rate is not here: it is a traced knob of the step (`UpdateKnobs`, the
  `learning_rate` argument of `sft_step`), its one source, so changing it never recompiles.
  warmup_steps: linear warm-up from 0 to the peak over this many optimizer steps.
  schedule: after warm-up, "constant", "cosine" or "linear" decay to min_lr_ratio * peak
    at `decay_steps`.
  decay_steps: optimizer step at which the decay ends (ignored for "constant").
  min_lr_ratio: final learning rate as a fraction of the peak.
  b1, b2, eps: Adam moments.
  weight_decay: decoupled AdamW decay.
  max_grad_norm: global-norm gradient clip (0 disables).
  """
  warmup_steps: int = 0
  schedule: str = "constant"
  decay_steps: int = 1
  min_lr_ratio: float = 0.0
  b1: float = 0.9
  b2: float = 0.999
  eps: float = 1e-8
  weight_decay: float = 0.0
  max_grad_norm: float = 1.0

  def __post_init__(self):
    if self.schedule not in SCHEDULES:
      raise ValueError(f"OptimCfg.schedule must be one of {SCHEDULES}, got {self.schedule!r}")
    if self.warmup_steps < 0 or self.decay_steps < 1:
      raise ValueError("OptimCfg.warmup_steps must be >= 0 and decay_steps >= 1, got "
                       f"{self.warmup_steps}, {self.decay_steps}")


def _chain(learning_rate, weight_decay, max_grad_norm, *, b1, b2, eps):
  return optax.chain(
      optax.clip_by_global_norm(jnp.where(max_grad_norm > 0, max_grad_norm, jnp.inf)),
      optax.adamw(learning_rate, b1=b1, b2=b2, eps=eps, weight_decay=weight_decay))


def make_optimizer(cfg: OptimCfg) -> optax.GradientTransformation:
  """AdamW with injected (traced) learning rate, weight decay and clip norm.

  It optimizes `lora.trainable(params)`: all params, or only the LoRA adapters when params
  carry them (`rl_jax.models.lora`), so a LoRA run keeps Adam moments for the adapters only.
  `init` and the `params` of `update` take the whole params tree; the gradients and updates
  are trees of the trainable part (`rl_jax.update.accumulate_gradients` returns those)."""
  def build(learning_rate, weight_decay, max_grad_norm):
    return _chain(learning_rate, weight_decay, max_grad_norm, b1=cfg.b1, b2=cfg.b2, eps=cfg.eps)
  tx = optax.inject_hyperparams(build)(
      learning_rate=0.0, weight_decay=cfg.weight_decay, max_grad_norm=cfg.max_grad_norm)

  def update(grads, state, params=None):
    return tx.update(grads, state, None if params is None else lora.trainable(params))
  return optax.GradientTransformation(lambda params: tx.init(lora.trainable(params)), update)


def lr_multiplier(step: jax.Array, cfg: OptimCfg) -> jax.Array:
  """Schedule shape in [0, 1]: linear warm-up, then constant / cosine / linear decay."""
  step = jnp.asarray(step, jnp.float32)
  warm = jnp.where(cfg.warmup_steps > 0, jnp.minimum(1.0, (step + 1) / max(cfg.warmup_steps, 1)),
                   1.0)
  span = max(cfg.decay_steps - cfg.warmup_steps, 1)
  frac = jnp.clip((step - cfg.warmup_steps) / span, 0.0, 1.0)
  if cfg.schedule == "cosine":
    decay = cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + jnp.cos(jnp.pi * frac))
  elif cfg.schedule == "linear":
    decay = 1.0 - (1.0 - cfg.min_lr_ratio) * frac
  else:
    decay = jnp.float32(1.0)
  return warm * decay


def set_learning_rate(opt_state, learning_rate: jax.Array):
  """Writes the (traced) learning rate into an `inject_hyperparams` state."""
  hyper = dict(opt_state.hyperparams)
  hyper["learning_rate"] = jnp.asarray(learning_rate, jnp.float32)
  return opt_state._replace(hyperparams=hyper)
