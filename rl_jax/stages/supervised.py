"""The supervised stages: `pretrain` (next-token loss on the task's corpus) and `sft` (the
task's demonstrations, loss on completion tokens only). One loop for both; they differ only in
where batches come from (the data layer, `rl_jax.data.loader`, docs/architecture.md "Data layer"):

  pretrain: `task.pretrain_data()` (a `Corpus`: documents packed into rows with segment ids,
            grain), or a provider `task.pretrain_batch(batch_size, rng)`;
  sft:      `task.sft_data()` (`Examples`, grain), or `task.sft_batch(batch_size, rng)`, or by
            default the task's (prompt, completion) pairs in the slot layout (grain over
            `task.train`, one permutation per epoch).

Grain batches are a pure function of the seed and the stage (`seed_words = [seed,
stage_id(name)]`); the iterator's state is saved in every checkpoint of the stage (host item
"data"), so a resumed stage reads exactly the next batches of an uninterrupted one. A provider
gets `default_rng([seed, stage_id(name), s])` at step s (its state is the step).
"""
from __future__ import annotations

import functools
from typing import Any

import jax.numpy as jnp

from rl_jax import metrics as metrics_lib
from rl_jax import optim, sharding
from rl_jax.data import loader
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


def restore_state(ctx: RunContext, params, optim_config: optim.OptimCfg, io):
  """The stage's train state on the mesh, restored from its last checkpoint if there is one.

  Returns (state, first step to run, done, host state of the checkpoint or {}): done means the
  stage finished before (its final checkpoint is restored and nothing is trained again)."""
  state = TrainState(jnp.int32(0), params, optim.make_optimizer(optim_config).init(params))
  state = sharding.shard_train_state(state, ctx.mesh)
  restored = io.restore({"train": state})
  if restored is None:
    return state, 0, False, {}
  start, saved, host = restored
  return saved["train"], start, bool(host.get("done")), host


def start_state(ctx: RunContext, params, optim_config: optim.OptimCfg, io):
  """`restore_state` without the host state: (state, first step to run, done)."""
  return restore_state(ctx, params, optim_config, io)[:3]


def demonstration_examples(ctx: RunContext) -> loader.Examples:
  """The task's (prompt, completion) pairs in the slot layout, encoded once: record i is
  `task.train[i]`."""
  task, exp = ctx.task, ctx.exp
  if not task.train:
    raise ValueError(f"task {task.name!r} has no train problems for the sft stage")
  data = encode_examples(ctx.tokenizer, [task.prompt_fn(p) for p in task.train],
                         [task.completion_fn(p) for p in task.train], exp.prompt_len,
                         exp.max_new_tokens)
  return loader.Examples(range(len(task.train)), lambda i, _: tuple(a[i] for a in data))


def demonstration_batches(ctx: RunContext):
  """`batch(step, batch_size)` over the task's (prompt, completion) pairs: epoch e is one
  permutation of the examples drawn from `default_rng([seed, stage_id("sft"), e])`, each step
  takes the next batch_size of it (the last n mod batch_size are left out)."""
  data = demonstration_examples(ctx)
  streams = {}

  def batch(step: int, batch_size: int):
    if batch_size not in streams:
      streams[batch_size] = _example_stream(ctx, data, batch_size, "sft", shard=(0, 1))
    return streams[batch_size].at(step)

  return batch


def _example_stream(ctx, data: loader.Examples, batch_size: int, name: str, shard=None):
  return loader.example_batches(data.source, data.encode, batch_size=batch_size,
                                seed_words=(ctx.exp.seed, stage_id(name)), shard=shard,
                                what=f"stage {name!r}: task {ctx.task.name!r} examples")


def batch_stream(ctx: RunContext, kind: str, name: str, section=None):
  """The stage's batches, (tokens, valid, loss_mask[, segment_ids]) numpy [B, L] each, as a
  `loader.Batches` / `loader.StepBatches` (state saved in the checkpoint). `section`: the
  stage's own (e.g. a `then` stage's; default the kind's section). A pretrain stage with
  `corpus` set reads `task.pretrain_data(corpus=corpus)` or calls
  `task.pretrain_batch(batch_size, rng, corpus=corpus)`."""
  section = section or getattr(ctx.exp, kind)
  task, seed_words = ctx.task, (ctx.seed, stage_id(name))
  corpus = getattr(section, "corpus", "") if kind == "pretrain" else ""
  if kind == "pretrain" and task.pretrain_data is not None:
    data = task.pretrain_data(corpus=corpus) if corpus else task.pretrain_data()
    return loader.packed_batches(data.source, data.tokens_fn, batch_size=section.batch_size,
                                 row_len=data.row_len, seed_words=seed_words,
                                 what=f"stage {name!r}: task {task.name!r} corpus")
  if kind == "sft" and task.sft_data is not None:
    return _example_stream(ctx, task.sft_data(), section.batch_size, name)
  provider = task.pretrain_batch if kind == "pretrain" else task.sft_batch
  if provider is not None and corpus:
    provider = functools.partial(provider, corpus=corpus)
  if provider is None:
    if kind == "pretrain":
      raise ValueError(f"config stages include 'pretrain' but task {task.name!r} has no "
                       "corpus (TaskData.pretrain_data / pretrain_batch); set pretrain.steps=0")
    # Seeded by the kind "sft" (as before `then` stages existed): the same epochs for any name.
    return _example_stream(ctx, demonstration_examples(ctx), section.batch_size, "sft")
  return loader.StepBatches(provider, section.batch_size, seed_words)


def _resume(batches, host: dict, start: int, name: str) -> None:
  """Puts the batches at step `start` of a resumed stage (the checkpoint's iterator state)."""
  if not start:
    return
  if "data" in host:
    batches.set_state(host["data"])
  elif isinstance(batches, loader.StepBatches):  # a checkpoint from before the data layer
    batches.set_state({"step": start})
  else:
    raise ValueError(f"stage {name!r}: its checkpoint at step {start} holds no data-iterator "
                     "state (written before rl_jax.data.loader); delete the checkpoint "
                     "directory of the stage to train it again")


def run_supervised(ctx: RunContext, spec, params, io) -> Any:
  """Trains `spec.section.steps` supervised steps from `params`; returns the final params."""
  s = spec.section
  cfg = SFTCfg(model=ctx.model_cfg, optim=optim_cfg(s), num_microbatches=s.num_microbatches,
               logprob_impl=ctx.exp.logprob_impl)
  state, start, done, host = restore_state(ctx, params, cfg.optim, io)
  if done:
    return state.params
  batches = batch_stream(ctx, spec.kind, spec.name, spec.section)
  _resume(batches, host, start, spec.name)
  lr = jnp.float32(s.learning_rate)
  fetcher = metrics_lib.LateFetcher()
  step_fn = make_sft_step(cfg, sharding.state_shardings(state, ctx.mesh))
  prefix = spec.kind
  for step in io.steps(start, s.steps):
    # (tokens, valid, loss_mask[, segment_ids]): segment ids go after the learning rate.
    batch = loader.to_global(next(batches), ctx.mesh, per_process=batches.per_process)
    state, m = step_fn(state, *batch[:3], lr, *batch[3:])
    io.record(fetcher.push(step, m), prefix)
    if io.should_save(step + 1, s.steps):
      io.record(fetcher.flush(), prefix)
      io.save(step + 1, {"train": state}, {"data": batches.get_state()},
              final=step + 1 == s.steps)
  io.record(fetcher.flush(), prefix)
  return state.params


STAGES.register("pretrain")(run_supervised)
STAGES.register("sft")(run_supervised)
