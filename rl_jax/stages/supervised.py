"""The supervised stages: `pretrain` (next-token loss on the task's corpus) and `sft` (the
task's demonstrations, loss on completion tokens only). One loop for both; they differ only in
where batches come from:

  pretrain: `task.pretrain_batch(batch_size, rng)`;
  sft:      `task.sft_batch(batch_size, rng)`, or by default the task's (prompt, completion)
            pairs in the slot layout, one permutation of `task.train` per epoch.

The rng of step s is `default_rng([seed, stage_id, s])`, so a resumed stage reads the same next
batches as an uninterrupted one.
"""
from __future__ import annotations

import functools
from typing import Any

import jax.numpy as jnp
import numpy as np

from rl_jax import metrics as metrics_lib
from rl_jax import optim, sharding
from rl_jax.data.encoding import encode_examples
from rl_jax.sft import SFTCfg, make_sft_step
from rl_jax.stages import STAGES
from rl_jax.stages.context import RunContext, stage_id
from rl_jax.types import TrainState


def optim_cfg(section) -> optim.OptimCfg:
  """AdamW with the section's warm-up and decay over its steps."""
  return optim.OptimCfg(warmup_steps=section.warmup_steps, schedule=section.schedule,
                        decay_steps=max(section.steps, 1), min_lr_ratio=section.min_lr_ratio,
                        weight_decay=section.weight_decay, max_grad_norm=section.max_grad_norm)


def start_state(ctx: RunContext, params, optim_config: optim.OptimCfg, io):
  """The stage's train state on the mesh, restored from its last checkpoint if there is one.

  Returns (state, first step to run, done): done means the stage finished before (its final
  checkpoint is restored and nothing is trained again)."""
  state = TrainState(jnp.int32(0), params, optim.make_optimizer(optim_config).init(params))
  state = sharding.shard_train_state(state, ctx.mesh)
  restored = io.restore({"train": state})
  if restored is None:
    return state, 0, False
  start, saved, host = restored
  return saved["train"], start, bool(host.get("done"))


def demonstration_batches(ctx: RunContext):
  """`batch(batch_size, rng)` over the task's (prompt, completion) pairs: epoch e is one
  permutation of the examples drawn from `default_rng([seed, stage_id("sft"), e])`."""
  task, exp = ctx.task, ctx.exp
  if not task.train:
    raise ValueError(f"task {task.name!r} has no train problems for the sft stage")
  data = encode_examples(ctx.tokenizer, [task.prompt_fn(p) for p in task.train],
                         [task.completion_fn(p) for p in task.train], exp.prompt_len,
                         exp.max_new_tokens)
  n = len(task.train)

  def batch(step: int, batch_size: int):
    steps_per_epoch = max(n // batch_size, 1)
    epoch, offset = divmod(step, steps_per_epoch)
    order = np.random.default_rng([exp.seed, stage_id("sft"), epoch]).permutation(n)
    rows = order[offset * batch_size:(offset + 1) * batch_size]
    return tuple(a[rows] for a in data)

  return batch


def _batches(ctx: RunContext, kind: str, name: str):
  """step -> (tokens, valid, loss_mask) numpy [B, L] for this stage."""
  section = getattr(ctx.exp, kind)
  provider = ctx.task.pretrain_batch if kind == "pretrain" else ctx.task.sft_batch
  if provider is None:
    if kind == "pretrain":
      raise ValueError(f"config stages include 'pretrain' but task {ctx.task.name!r} has no "
                       "corpus (TaskData.pretrain_batch); set pretrain.steps=0")
    return functools.partial(demonstration_batches(ctx), batch_size=section.batch_size)
  seed_id = stage_id(name)
  return lambda step: provider(section.batch_size,
                               np.random.default_rng([ctx.seed, seed_id, step]))


def run_supervised(ctx: RunContext, spec, params, io) -> Any:
  """Trains `spec.section.steps` supervised steps from `params`; returns the final params."""
  s = spec.section
  cfg = SFTCfg(model=ctx.model_cfg, optim=optim_cfg(s), num_microbatches=s.num_microbatches,
               logprob_impl=ctx.exp.logprob_impl)
  state, start, done = start_state(ctx, params, cfg.optim, io)
  if done:
    return state.params
  batches = _batches(ctx, spec.kind, spec.name)
  lr = jnp.float32(s.learning_rate)
  fetcher = metrics_lib.LateFetcher()
  step_fn = make_sft_step(cfg, sharding.state_shardings(state, ctx.mesh))
  prefix = spec.kind
  for step in io.steps(start, s.steps):
    batch = sharding.shard_batch([jnp.asarray(a) for a in batches(step)], ctx.mesh)
    state, m = step_fn(state, *batch, lr)
    io.record(fetcher.push(step, m), prefix)
    if io.should_save(step + 1, s.steps):
      io.record(fetcher.flush(), prefix)
      io.save(step + 1, {"train": state}, final=step + 1 == s.steps)
  io.record(fetcher.flush(), prefix)
  return state.params


STAGES.register("pretrain")(run_supervised)
STAGES.register("sft")(run_supervised)
