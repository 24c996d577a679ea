"""The asynchronous RL loop (`rl.off_policy_steps` = k >= 1, docs/async_rl.md): the rollout of
step t + k is generated while update t runs, on separate rollout devices (`rl.rollout_devices`)
or interleaved on the same ones, with the in-flight rollouts saved in the checkpoint. Built on
the synchronous stage's `generate_batch` and `train_batch` (`rl_jax.stages.rl`)."""
from __future__ import annotations

import dataclasses
import time

import jax
import jax.numpy as jnp

from rl_jax import metrics as metrics_lib
from rl_jax import sharding
from rl_jax.algorithms import off_policy
from rl_jax.stages.context import RunContext
from rl_jax.stages.rl import RLSetup, generate_batch, train_batch


def device_groups(ctx: RunContext, section) -> tuple[RunContext, RunContext | None]:
  """(training context, generating context or None). With `rl.rollout_devices = n > 0` the
  first n devices form a data-parallel rollout mesh and the others the training mesh (the
  config's `mesh` axes over them), so rollout t + k runs while update t does; otherwise both
  share `ctx.mesh` (None)."""
  n = section.rollout_devices
  if not n:
    return ctx, None
  if jax.process_count() > 1:
    raise ValueError("config rl.rollout_devices > 0 needs a single-process run (on several "
                     "processes use 0: rollout and update interleave on the whole mesh)")
  devices = list(ctx.mesh.devices.flat)
  m = ctx.exp.mesh
  train_mesh = sharding.make_mesh(sharding.MeshCfg(m.data, m.fsdp, m.tensor), devices[n:])
  gen_mesh = sharding.make_mesh(sharding.MeshCfg(-1, 1, 1), devices[:n])
  return dataclasses.replace(ctx, mesh=train_mesh), dataclasses.replace(ctx, mesh=gen_mesh)


def on_mesh(params, mesh):
  """`params` placed on `mesh` with the parameter layout (a new copy of every leaf)."""
  return sharding.shard_tree(params, mesh, sharding.param_specs(params, mesh))


def replicated(arrays, mesh):
  """Host arrays placed whole on every device of the training mesh (where the checkpoint's
  other leaves live)."""
  return jax.device_put(arrays, jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec()))


def _pending_rows(p: off_policy.Pending) -> dict:
  rows = {"tokens": p.arrays["tokens"], "valid": p.arrays["valid"],
          "loss_mask": p.arrays["loss_mask"], "old_logp": p.arrays["behaviour_logp"],
          "adv": p.arrays["adv"], "adv_BxL": p.arrays["adv_BxL"] if p.has_adv_BxL else None}
  return rows


def _generate_pending(setup: RLSetup, params, part_state, step: int, version: int, key):
  """Rollout, scores and advantages of RL step `step` sampled with `params` (those of step
  `version`), as an `off_policy.Pending`; the rollout key is the synchronous step's."""
  rollout_key, _ = jax.random.split(jax.random.fold_in(key, step))
  rows, host, part_state = generate_batch(setup, params, part_state, step, rollout_key)
  pending = off_policy.make_pending(
      step, version, tokens=rows["tokens"], valid=rows["valid"], loss_mask=rows["loss_mask"],
      behaviour_logp=rows["old_logp"], adv=rows["adv"], adv_BxL=rows["adv_BxL"], host=host)
  return pending, part_state


def run_async(setup: RLSetup, state, ref_params, part_state, queue, start, key, spec, io,
               ctx: RunContext, gen_ctx: RunContext | None):
  """The asynchronous RL loop (`rl.off_policy_steps` = k >= 1), docs/async_rl.md.

  Iteration t: take the queued batch of step t (sampled by the params of step max(t - k, 0)),
  snapshot the params of step t for the rollout, dispatch update t (JAX's async dispatch
  returns at once), then generate, score and queue the batch of step t + k with the snapshot
  while the update runs: on the rollout devices when `gen_ctx` has them, else interleaved on
  the same devices (the host's rollout work overlaps the device's update). The first k batches
  are generated up front with the initial params. A checkpoint after step t holds the queue
  (steps t + 1 .. t + k) and the part states that drew them, so a resumed run trains on the
  same rollouts: none dropped, none regenerated.
  """
  r = setup.section
  k = r.off_policy_steps
  rows, seq_len = r.prompts_per_step * r.group_size, setup.rollout.total_len

  def snapshot(params):
    """A copy of `params` for the rollout (the update donates the state's buffers): on the
    rollout devices, or a copy on the same ones (device_put to the same layout would alias)."""
    if gen_ctx is None:
      return jax.tree.map(jnp.copy, params)
    return on_mesh(params, gen_ctx.mesh)
  if start == 0 and not queue:
    params0 = snapshot(state.params)
    for s in range(min(k, r.steps)):
      pending, part_state = _generate_pending(setup, params0, part_state, s, 0, key)
      queue.append(pending)
  fetcher = metrics_lib.LateFetcher()
  for step in io.steps(start, r.steps):
    pending = queue.pop(0)
    if pending.step != step:
      raise RuntimeError(f"in-flight rollout of step {pending.step} where step {step} was due")
    t0 = time.perf_counter()
    try:
      params_t = snapshot(state.params) if step + k < r.steps else None
      _, update_key = jax.random.split(jax.random.fold_in(key, step))
      state, update_metrics = train_batch(setup, state, ref_params, _pending_rows(pending),
                                          update_key, staleness=step - pending.version)
      if params_t is not None:  # overlaps update `step`
        new, part_state = _generate_pending(setup, params_t, part_state, step + k, step, key)
        queue.append(new)
    except Exception as e:  # e.g. a reward function's error: say where the run stopped
      e.add_note(f"(at step {step} of stage {spec.name!r})")
      raise
    if ctx.exp.timing:
      jax.block_until_ready(state.params)
    host = {**pending.host, "time/step_s": time.perf_counter() - t0}
    every = ctx.exp.eval.every
    eval_due = every and not (step + 1) % every and step + 1 < r.steps
    eval_params = (state.params if gen_ctx is None or not eval_due
                   else on_mesh(state.params, ctx.mesh))
    metrics = io.evaluate(eval_params, step + 1, r.steps)
    io.record(fetcher.push(step, {**update_metrics, **host, **metrics}), None)
    if io.should_save(step + 1, r.steps):
      io.record(fetcher.flush(), None)
      arrays, meta = off_policy.to_arrays(queue, k, rows, seq_len)
      io.save(step + 1, {"train": state, "ref_params": ref_params,
                         "inflight": replicated(arrays, setup.ctx.mesh)},
              {"parts": part_state, "inflight": meta}, final=step + 1 == r.steps)
  io.record(fetcher.flush(), None)
  return state
