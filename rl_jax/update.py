"""The jitted update program: one optimizer step over one mini-batch, exact under accumulation.

    state, metrics = update_step(state, batch, knobs, *, cfg)

The mini-batch is split into `cfg.num_microbatches` micro-batches and scanned. Every loss returns
`(loss_sum, denominator)` per micro-batch (docs/architecture.md); the step adds both over
micro-batches
and divides once, so the gradient of any aggregation mode is the same for 1 or M micro-batches
(tests/update_test.py checks this for every mode). Metrics come back as sums and counts too.

Several PPO epochs / mini-batches per rollout batch are a host loop (`train_on_rollout`) around
this one compiled step; the old log-probs come from the sampler, so epoch 1 starts at ratio 1.
"""
from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from rl_jax import logprobs as logprobs_lib
from rl_jax import optim, packing, sharding
from rl_jax.algorithms import losses
from rl_jax.algorithms.advantages import check_group_shape
from rl_jax.models import lora
from rl_jax.models.config import ModelConfig
from rl_jax.types import Batch, TrainState


@dataclasses.dataclass(frozen=True)
class UpdateCfg:
  """Static settings of the update program.

  model: model shapes.
  loss: the policy-loss configuration (level, aggregation, KL estimator).
  optim: optimizer settings (schedule shape is static; the peak lr is a traced knob).
  num_microbatches: micro-batches per optimizer step (gradient accumulation).
  logprob_impl: "naive" | "xla" | "pallas" | "auto": how log-probs are computed (fused kernels
    avoid the f32 [B, T, V] logits).
  pack_sequences: `train_on_rollout` packs each mini-batch's sequences several to a row
    (`rl_jax.packing`); the step then runs its forward pass on the packed rows (any batch that
    carries `packed` does) and the loss on the [B, L] layout: the same loss and gradient.
  """
  model: ModelConfig
  loss: losses.LossCfg
  optim: optim.OptimCfg
  num_microbatches: int = 1
  logprob_impl: str = "auto"
  pack_sequences: bool = False

  def __post_init__(self):
    if self.num_microbatches < 1:
      raise ValueError(f"UpdateCfg.num_microbatches must be >= 1, got {self.num_microbatches}")
    if self.logprob_impl not in logprobs_lib.IMPLEMENTATIONS:
      raise ValueError(f"UpdateCfg.logprob_impl must be one of {logprobs_lib.IMPLEMENTATIONS}, "
                       f"got {self.logprob_impl!r}")


@struct.dataclass
class UpdateKnobs:
  """Traced knobs of the update: changing them never recompiles."""
  loss: losses.LossKnobs
  learning_rate: jax.Array

  @classmethod
  def create(cls, loss_knobs: losses.LossKnobs, learning_rate: float) -> "UpdateKnobs":
    return cls(loss_knobs, jnp.float32(learning_rate))


def init_train_state(params, cfg: UpdateCfg) -> TrainState:
  return TrainState(step=jnp.int32(0), params=params,
                    opt_state=optim.make_optimizer(cfg.optim).init(params))


def split_microbatches(tree, num_microbatches: int, where: str):
  """[B, ...] leaves -> [M, B/M, ...], with a clear error when B % M != 0."""
  def split(x):
    if x is None:
      return None
    if x.shape[0] % num_microbatches:
      raise ValueError(f"batch of {x.shape[0]} rows is not divisible into {num_microbatches} "
                       f"micro-batches (in {where})")
    return x.reshape((num_microbatches, x.shape[0] // num_microbatches) + x.shape[1:])
  return jax.tree.map(split, tree)


def accumulate_gradients(loss_fn: Callable, params, batch, num_microbatches: int, where: str,
                         denom_extra: jax.Array | float = 0.0):
  """Scans `loss_fn(params, micro_batch) -> (loss_sum, (denom, stats))` over micro-batches.

  `denom_extra` is added to the summed denominator: the share of rows that were left out of the
  batch because they add 0 to loss_sum and its gradient (`drop_zero_advantage_rows`).

  Returns:
    grads (of sum(loss_sum) / (sum(denom) + denom_extra)) with respect to
    `lora.trainable(params)` (all params, or only the LoRA adapters when params carry them),
    loss (same ratio), denom total, stats sums where `stats` is a dict name -> (numerator,
    denominator).
  """
  micro = split_microbatches(batch, num_microbatches, where)
  # With LoRA adapters in params only they are differentiated: the frozen base gets no gradient
  # (no [params]-sized gradient buffer, no weight-gradient matmuls), rl_jax.models.lora.
  grad_fn = jax.value_and_grad(lambda trained, mb: loss_fn(lora.combine(trained, params), mb),
                               has_aux=True)
  trained = lora.trainable(params)

  def body(carry, mb):
    (loss_sum, (denom, stats)), grads = grad_fn(trained, mb)
    acc_grads, acc_loss, acc_denom, acc_stats = carry
    acc_stats = jax.tree.map(jnp.add, acc_stats, stats)
    return (jax.tree.map(jnp.add, acc_grads, grads), acc_loss + loss_sum, acc_denom + denom,
            acc_stats), None

  first = jax.tree.map(lambda x: x[0], micro)
  stats_shape = jax.eval_shape(lambda p, b: loss_fn(p, b)[1][1], params, first)
  zeros = lambda t: jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), t)
  init = (jax.tree.map(jnp.zeros_like, trained), jnp.float32(0.0), jnp.float32(0.0),
          zeros(stats_shape))
  (grads, loss_sum, denom, stats), _ = jax.lax.scan(body, init, micro)
  denom = denom + denom_extra
  safe_denom = jnp.maximum(denom, 1e-8)
  grads = jax.tree.map(lambda g: g / safe_denom, grads)
  return grads, loss_sum / safe_denom, denom, stats


def apply_gradients(state: TrainState, grads, learning_rate: jax.Array, optim_cfg: optim.OptimCfg):
  """One optimizer step with lr = learning_rate * schedule(step); returns (state, metrics)."""
  tx = optim.make_optimizer(optim_cfg)
  lr = learning_rate * optim.lr_multiplier(state.step, optim_cfg)
  opt_state = optim.set_learning_rate(state.opt_state, lr)
  updates, opt_state = tx.update(grads, opt_state, state.params)
  # `grads` and `updates` cover lora.trainable(params): all params, or only the adapters.
  trained = jax.tree.map(lambda p, u: (p + u).astype(p.dtype), lora.trainable(state.params),
                         updates)
  params = lora.combine(trained, state.params)
  metrics = {"grad/norm": optim_global_norm(grads), "optim/lr": lr}
  return TrainState(step=state.step + 1, params=params, opt_state=opt_state), metrics


def optim_global_norm(tree) -> jax.Array:
  return jnp.sqrt(sum(jnp.sum(jnp.square(x.astype(jnp.float32))) for x in jax.tree.leaves(tree)))


def _policy_loss_fn(params, mb: Batch, knobs: UpdateKnobs, cfg: UpdateCfg):
  if mb.packed is not None:  # forward over the packed rows, log-probs back in [B, L]
    logp_BxL, entropy_BxL = logprobs_lib.packed_token_logprobs(
        params, mb.packed, cfg=cfg.model, implementation=cfg.logprob_impl, return_entropy=True)
  else:
    logp_BxL, entropy_BxL = logprobs_lib.token_logprobs(
        params, mb.tokens_BxL, mb.valid_BxL, cfg=cfg.model, implementation=cfg.logprob_impl,
        return_entropy=True)
  adv = mb.advantages_BxL if mb.advantages_BxL is not None else mb.advantages_B
  ref = mb.ref_logp_BxL if cfg.loss.use_kl_loss else None
  loss_sum, denom, stats = losses.policy_loss(logp_BxL, mb.old_logp_BxL, adv, mb.loss_mask_BxL,
                                              knobs.loss, cfg=cfg.loss, ref_logp_BxT=ref,
                                              is_weight_BxT=mb.is_weight_BxL)
  mask = mb.loss_mask_BxL.astype(jnp.float32)
  stats = dict(stats)
  stats["entropy"] = (jnp.sum(jax.lax.stop_gradient(entropy_BxL) * mask), jnp.sum(mask))
  return loss_sum, (denom, stats)


def update_step_fn(state: TrainState, batch: Batch, knobs: UpdateKnobs,
                   denom_extra: jax.Array | float = 0.0, *, cfg: UpdateCfg):
  """One policy-gradient optimizer step on `batch`. `denom_extra`: loss denominator of rows
  dropped from the batch (`drop_zero_advantage_rows`), 0 otherwise. Unjitted: see `update_step`
  (jitted, state donated) and `make_update_step` (with the state's output layout)."""
  loss_fn = functools.partial(_policy_loss_fn, knobs=knobs, cfg=cfg)
  grads, loss, _, stats = accumulate_gradients(loss_fn, state.params, batch,
                                               cfg.num_microbatches, "update_step", denom_extra)
  state, metrics = apply_gradients(state, grads, knobs.learning_rate, cfg.optim)
  metrics["loss/total"] = loss
  for name, (num, den) in stats.items():
    metrics[name] = num / jnp.maximum(den, 1e-8)
  return state, metrics


update_step = jax.jit(update_step_fn, static_argnames=("cfg",), donate_argnames=("state",))


def make_update_step(cfg: UpdateCfg, state_shardings=None):
  """`update_step` for one config, jitted with `out_shardings` = the train state's layout
  (`sharding.state_shardings`), so the new state comes back in the layout the next step takes
  and is never re-placed. Build it once per stage and pass it to `train_on_rollout`."""
  out = None if state_shardings is None else (state_shardings, None)
  return jax.jit(functools.partial(update_step_fn, cfg=cfg), donate_argnums=(0,),
                 out_shardings=out)


def check_drop_zero_advantage(rows: int, loss_cfg: losses.LossCfg, where: str) -> None:
  """Refuses a negative block size, and dropping rows (rows > 0) under a KL loss term, where a
  zero-advantage row still has a gradient. `where` names the setting in the message."""
  if rows < 0:
    raise ValueError(f"{where} must be >= 0 (0 = off), got {rows}")
  if rows and loss_cfg.use_kl_loss:
    raise ValueError(f"{where} needs a loss without the KL term (with it a zero-advantage row "
                     "still has a gradient); set it to 0 or use_kl_loss=False")


def drop_zero_advantage_rows(batch: Batch, loss_cfg: losses.LossCfg, multiple: int
                             ) -> tuple[Batch, jax.Array, int]:
  """Leaves out the rows whose advantage is exactly 0 on every loss token.

  Without a KL term such a row adds exactly 0 to the clipped loss and to its gradient (every
  branch of the surrogate is a multiple of A, the dual-clip bound is only taken for A < 0); it
  only adds to the loss denominator. GRPO-family groups whose rewards are all equal (all right,
  all wrong) are such rows: about 30% of the Translate-R1 rollouts after the first steps. The
  kept rows are padded to a multiple of `multiple` rows (a bounded number of compiled shapes)
  with copies of dropped rows whose loss_mask is zeroed ("not a sequence": they add 0 to the
  loss and the denominator), so at least one padded block always runs and the optimizer step
  (Adam moments, step count) happens exactly as with the full batch.

  Returns:
    (batch of kept + padding rows, the dropped rows' loss denominator as an f32 scalar to pass
    to `update_step` so the loss and gradient equal the full batch's, number of kept rows).
    Per-token metrics of that step (entropy, ratio, clip fractions) cover the kept rows.
  """
  if multiple < 1:
    raise ValueError(f"drop_zero_advantage_rows: multiple must be >= 1, got {multiple}")
  check_drop_zero_advantage(multiple, loss_cfg, "drop_zero_advantage_rows: multiple")
  mask_BxL = np.asarray(jax.device_get(batch.loss_mask_BxL)) != 0
  if batch.advantages_BxL is not None:
    adv_BxL = np.asarray(jax.device_get(batch.advantages_BxL))
    zero_B = ~np.any((adv_BxL != 0) & mask_BxL, axis=1)
  else:
    zero_B = np.asarray(jax.device_get(batch.advantages_B)) == 0
  kept = np.flatnonzero(~zero_B)
  dropped = np.flatnonzero(zero_B)
  num_rows = len(zero_B)
  size = min(max(-(-len(kept) // multiple), 1) * multiple, num_rows)
  pad = dropped[:size - len(kept)]
  rows = np.concatenate([kept, pad])
  denom_extra = losses.loss_denominator(mask_BxL[dropped], cfg=loss_cfg)
  out = jax.tree.map(lambda x: None if x is None else x[rows], batch)
  if len(pad):  # zero the padding rows' loss mask: they become "not a sequence"
    keep_L = jnp.asarray(np.arange(len(rows)) < len(kept))[:, None]
    out = out.replace(loss_mask_BxL=jnp.where(keep_L, out.loss_mask_BxL, 0))
  return out, jnp.float32(denom_extra), len(kept)


def train_on_rollout(state: TrainState, batch: Batch, knobs: UpdateKnobs, key: jax.Array, *,
                     cfg: UpdateCfg, num_epochs: int = 1, num_minibatches: int = 1,
                     group_size: int = 1, mesh=None, drop_zero_advantage: int = 0,
                     step_fn: Callable | None = None):
  """PPO-style inner loop: `num_epochs` passes, each over `num_minibatches` shuffled mini-batches.

  Whole groups stay together in a mini-batch (shuffling permutes groups, not rows), so
  group-level quantities stay meaningful. With a `mesh`, each mini-batch's rows are placed over
  (data, fsdp) (`rl_jax.sharding.shard_batch`). `drop_zero_advantage` > 0 trains each
  mini-batch without its zero-advantage rows, padded to a multiple of that many rows (and of
  cfg.num_microbatches): the same loss and gradient for less compute
  (`drop_zero_advantage_rows`; needs a loss without KL). Returns (state, metrics averaged over
  all steps; with dropping also "update/kept_rows_frac"). `step_fn`: the compiled step
  (`make_update_step(cfg, ...)`; default `update_step` with `cfg`).
  """
  num_rows = batch.tokens_BxL.shape[0]
  check_group_shape(num_rows, group_size, "train_on_rollout")
  check_drop_zero_advantage(drop_zero_advantage, cfg.loss, "train_on_rollout: drop_zero_advantage")
  num_groups = num_rows // group_size
  if num_groups % num_minibatches:
    raise ValueError(f"{num_groups} groups cannot be split into {num_minibatches} mini-batches "
                     "(train_on_rollout): make prompts_per_step divisible by num_minibatches")
  all_metrics = []
  for epoch in range(num_epochs):
    perm = np.asarray(jax.random.permutation(jax.random.fold_in(key, epoch), num_groups))
    rows = (perm[:, None] * group_size + np.arange(group_size)[None]).reshape(-1)
    for chunk in np.split(rows, num_minibatches):
      mini = jax.tree.map(lambda x: None if x is None else x[chunk], batch)
      extra = ()
      if drop_zero_advantage:
        mini, denom_extra, num_kept = drop_zero_advantage_rows(
            mini, cfg.loss, math.lcm(drop_zero_advantage, cfg.num_microbatches))
        extra = (denom_extra,)
      if cfg.pack_sequences:
        shards = 1 if mesh is None else math.prod(
            mesh.shape[a] for a in sharding.BATCH_AXES if a in mesh.shape)
        mini = packing.pack_batch(mini, num_microbatches=cfg.num_microbatches,
                                  batch_shards=shards)
      if mesh is not None:
        # Re-indexing gathers the rows; put them back over (data, fsdp) so the update runs
        # data-parallel instead of on a replicated mini-batch.
        mini = sharding.shard_batch(mini, mesh)
      if step_fn is None:
        state, metrics = update_step(state, mini, knobs, *extra, cfg=cfg)
      else:
        state, metrics = step_fn(state, mini, knobs, *extra)
      if drop_zero_advantage:
        metrics = {**metrics, "update/kept_rows_frac": jnp.float32(num_kept / len(chunk))}
      all_metrics.append(metrics)
  mean = jax.tree.map(lambda *xs: jnp.mean(jnp.stack(xs)), *all_metrics)
  return state, mean
