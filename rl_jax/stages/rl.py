"""The RL stage: the one RL iteration of the codebase, built from parts chosen by config.

    prompt source -> rollout -> scorer -> advantage -> update
    (data/prompt_sources, sampling/rollouts, rewards/scorers, algorithms/advantage_parts,
     update.train_on_rollout with a loss preset of algorithms/losses)

The two compiled programs (`generate` inside the rollout, the update step) run on device;
everything between them (detokenising, rewards, DAPO filtering, advantages) is host Python on
small arrays, outside any differentiated function. Keys: step s of a stage uses
`fold_in(stage_key, s)`, split into a rollout key (draw d: `fold_in(rollout_key, d)`) and an
update key. On several processes this is an SPMD host loop: every process draws the same
prompts, computes the same rewards and calls the same programs in the same order.
"""
from __future__ import annotations

import dataclasses
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from rl_jax import logprobs as logprobs_lib
from rl_jax import metrics as metrics_lib
from rl_jax import optim, sharding
from rl_jax import plan as plan_lib
from rl_jax.algorithms import dapo, losses, off_policy
from rl_jax.algorithms.advantage_parts import ADVANTAGES
from rl_jax.data.prompt_sources import PROMPT_SOURCES
from rl_jax.models import lora
from rl_jax.rewards.scorers import SCORERS
from rl_jax.sampling import rollouts
from rl_jax.sampling.rollouts import ROLLOUTS
from rl_jax.stages import STAGES
from rl_jax.stages.context import RunContext
from rl_jax.types import Batch, SampleKnobs, TrainState
from rl_jax.update import (UpdateCfg, UpdateKnobs, check_drop_zero_advantage, init_train_state,
                           make_update_step, train_on_rollout)

_PRESET_FIELDS = ("agg", "kl_estimator", "use_kl_loss")
_SOURCE_KEY_OFFSET = 1 << 20  # source keys: fold_in(rollout_key, offset + draw)
_KNOB_FIELDS = ("eps_low", "eps_high", "eps_c", "beta")


def resolve(section, max_new_tokens: int):
  """The section with every preset placeholder (None) replaced by the preset's value."""
  if section.algorithm not in losses.PRESET_NAMES:
    raise ValueError(f"config rl.algorithm must be one of {losses.PRESET_NAMES}, got "
                     f"{section.algorithm!r}")
  pre = losses.preset(section.algorithm, norm_len=max_new_tokens)
  values = {k: getattr(pre.cfg, k) for k in _PRESET_FIELDS}
  values.update({k: pre.knobs[k] for k in _KNOB_FIELDS})
  values["adv_normalize"] = pre.adv_normalize
  return dataclasses.replace(section, **{k: v for k, v in values.items()
                                         if getattr(section, k) is None})


def loss_config(section, max_new_tokens: int) -> tuple[losses.LossCfg, losses.LossKnobs]:
  r = resolve(section, max_new_tokens)
  cfg = losses.preset(r.algorithm, norm_len=max_new_tokens).cfg
  norm_len = max_new_tokens if r.agg == "seq_mean_token_sum_norm" else cfg.norm_len
  cfg = dataclasses.replace(cfg, agg=r.agg, kl_estimator=r.kl_estimator,
                            use_kl_loss=bool(r.use_kl_loss), norm_len=norm_len)
  return cfg, losses.LossKnobs.create(**{k: getattr(r, k) for k in _KNOB_FIELDS})


def check_section(section, where: str, exp) -> None:
  """Validates an RL stage's section and its parts' kwargs (config time, before any work)."""
  loss_cfg, _ = loss_config(section, exp.max_new_tokens)
  check_drop_zero_advantage(section.drop_zero_advantage, loss_cfg,
                            f"config {where}.drop_zero_advantage")
  if section.num_microbatches < 0 or section.microbatch_budget_mib <= 0:
    raise ValueError(f"config {where}.num_microbatches must be >= 0 (0 = chosen by memory) and "
                     f"{where}.microbatch_budget_mib > 0, got {section.num_microbatches} and "
                     f"{section.microbatch_budget_mib}")
  if section.learning_rate <= 0:
    raise ValueError(f"config {where}.learning_rate must be > 0 for a stage that trains, got "
                     f"{section.learning_rate}")
  for registry, spec, name in ((PROMPT_SOURCES, section.prompt_source, "prompt_source"),
                               (SCORERS, section.scorer, "scorer"),
                               (ADVANTAGES, section.advantage, "advantage")):
    kwargs = dict(spec)
    part = kwargs.pop("name", None)
    if part is None:
      raise ValueError(f"config {where}.{name} needs a 'name' (one of {registry.names()})")
    registry.check_kwargs(part, kwargs, f"{where}.{name}")
  rollouts.check_section(section)
  off_policy.check_config(section.off_policy_steps, section.rollout_devices,
                          section.importance_level, section.importance_mode,
                          section.importance_cap, jax.device_count(), where)
  # The advantage part needs no run context: building it checks its values now, not after
  # pretraining and SFT.
  try:
    ADVANTAGES.build(section.advantage, f"{where}.advantage",
                     section=resolve(section, exp.max_new_tokens))
  except ValueError as e:
    if str(e).startswith("config "):
      raise
    raise ValueError(f"config {where}.advantage: {e}") from None


@dataclasses.dataclass
class RLSetup:
  """Everything an RL iteration needs besides state, part states and key (built once per
  stage by `build_rl`; bench/ and tests build it too)."""
  ctx: RunContext
  section: Any
  source: Any
  rollout: Any
  scorer: Any
  advantage: Any
  update_cfg: UpdateCfg
  sample_knobs: SampleKnobs
  update_knobs: UpdateKnobs
  step_fn: Any = None

  def init_part_state(self) -> dict:
    return {"source": self.source.init_state(), "advantage": self.advantage.init_state()}


def build_rl(ctx: RunContext, section, name: str = "rl", gen_ctx: RunContext | None = None
             ) -> RLSetup:
  """The parts and compiled-step settings of an RL stage from its (sweep-applied) section.
  `gen_ctx`: the context (mesh) the generating parts (prompt source, rollout, scorer) run on
  when rollout and training have device groups of their own (`rl.rollout_devices`)."""
  r = resolve(section, ctx.exp.max_new_tokens)
  check_section(r, name, ctx.exp)
  loss_cfg, loss_knobs = loss_config(r, ctx.exp.max_new_tokens)
  optim_cfg = optim.OptimCfg(warmup_steps=r.warmup_steps, schedule=r.schedule,
                             decay_steps=max(r.steps, 1), min_lr_ratio=r.min_lr_ratio,
                             weight_decay=r.weight_decay, max_grad_norm=r.max_grad_norm)
  part = dict(ctx=gen_ctx or ctx, section=r)
  rollout = ROLLOUTS.get(r.rollout.name)(**part)
  return RLSetup(
      ctx=ctx, section=r,
      # Seeded by the stage kind, not its name: every variant of a sweep draws the same prompts
      # (and sampling keys, `run_rl`), so their differences come from the swept values.
      source=PROMPT_SOURCES.build(r.prompt_source, f"{name}.prompt_source", ctx=gen_ctx or ctx,
                                  stage="rl"),
      rollout=rollout,
      scorer=SCORERS.build(r.scorer, f"{name}.scorer", **part),
      advantage=ADVANTAGES.build(r.advantage, f"{name}.advantage", section=r),
      update_cfg=UpdateCfg(model=ctx.model_cfg, loss=loss_cfg, optim=optim_cfg,
                           num_microbatches=num_microbatches(ctx, r, rollout.total_len),
                           logprob_impl=ctx.exp.logprob_impl,
                           pack_sequences=bool(r.pack_sequences)),
      sample_knobs=SampleKnobs.create(r.temperature, r.top_p, r.top_k),
      update_knobs=UpdateKnobs.create(loss_knobs, r.learning_rate))


def num_microbatches(ctx: RunContext, r, seq_len: int) -> int:
  """`r.num_microbatches`, or for 0 the fewest that fit `r.microbatch_budget_mib` per device
  (`rl_jax.plan.choose_microbatches` over one optimizer step's rows and the rollout's length;
  with `drop_zero_advantage` the kept rows are padded to a multiple of it, so it still divides)."""
  if r.num_microbatches:
    return r.num_microbatches
  rows = r.prompts_per_step * r.group_size // r.num_minibatches
  m, _ = plan_lib.choose_microbatches(
      ctx.model_cfg, dict(ctx.mesh.shape), rows=rows, seq_len=seq_len,
      budget_bytes=int(r.microbatch_budget_mib * 2**20),
      logprob="naive" if ctx.exp.logprob_impl == "naive" else "fused")
  return m


def _draw(setup: RLSetup, params, part_state: dict, step: int, draw: int, key):
  """One rollout batch: prompts from the source, episodes, scores; the source observes them."""
  r = setup.section
  problems, source_state = setup.source.sample(part_state["source"], r.prompts_per_step, step,
                                               draw)
  out = setup.rollout(params, problems, jax.random.fold_in(key, draw), setup.sample_knobs)
  rows = [p for p in problems for _ in range(r.group_size)]
  scores = setup.scorer(rows, out)
  # A source that rewrites prompts with the current policy (HeaPA's on-policy augmentation)
  # declares `needs_policy` and receives the params and a key of its own for this draw (folded
  # past every draw index, so it shares no stream with the rollouts').
  policy = ({"params": params, "key": jax.random.fold_in(key, _SOURCE_KEY_OFFSET + draw)}
            if getattr(setup.source, "needs_policy", False) else {})
  part_state["source"] = setup.source.observe(source_state, problems, scores.reward_B,
                                              r.group_size, **policy)
  if r.overlong_max_len:
    # Before dynamic sampling's filter (as DAPO): groups that differ only in length are kept.
    penalty = dapo.overlong_penalty(out.rollout.response_len_B, max_len=r.overlong_max_len,
                                    cache_len=r.overlong_cache_len)
    scores = dataclasses.replace(scores, reward_B=np.asarray(scores.reward_B + penalty,
                                                             np.float32))
  return problems, out, scores


def generate_batch(setup: RLSetup, params, part_state: dict, step: int, rollout_key):
  """The host half of RL step `step`: draws (with DAPO's dynamic sampling), scores, advantages.

  Returns (rows, host metrics, part_state): `rows` the update's inputs as host arrays (tokens,
  valid, loss_mask, old_logp = the sampler's log-probs of `params`, adv, adv_BxL or None).
  """
  r = setup.section
  g = r.group_size
  part_state = dict(part_state)
  t0 = time.perf_counter()
  if r.dynamic_sampling:
    kept = []  # (problems, out, scores) of every draw; fill_groups returns where its rows came from

    def draw():
      d = len(kept)
      kept.append(_draw(setup, params, part_state, step, d, rollout_key))
      n = len(kept[-1][2].reward_B)
      return kept[-1][2].reward_B, {"draw": np.full(n, d), "row": np.arange(n)}

    _, where, info = dapo.fill_groups(draw, group_size=g, target_groups=r.prompts_per_step,
                                      max_draws=r.max_draws)
    problems, out, scores = _gather(kept, where["draw"], where["row"], g)
    # Every draw's generated tokens, the rejected groups' too: what the step cost.
    rollout_tokens = sum(int(np.sum(k[1].rollout.response_len_B)) for k in kept)
  else:
    problems, out, scores = _draw(setup, params, part_state, step, 0, rollout_key)
    info = {"num_draws": 1}
    rollout_tokens = int(np.sum(out.rollout.response_len_B))
  t_rollout = time.perf_counter() - t0

  reward_B = scores.reward_B  # with DAPO's overlong penalty (`_draw`)
  adv_B, adv_BxL, adv_metrics, part_state["advantage"] = setup.advantage(
      scores, problems, out, part_state["advantage"], step)
  ro = out.rollout
  rows = {"tokens": ro.tokens_BxL, "valid": ro.valid_BxL, "loss_mask": ro.loss_mask_BxL,
          "old_logp": ro.logp_policy_BxL, "adv": np.asarray(adv_B, np.float32),
          "adv_BxL": None if adv_BxL is None else np.asarray(adv_BxL, np.float32)}

  lengths = np.asarray(ro.response_len_B, np.float32)
  host = metrics_lib.reward_metrics(reward_B, g)
  host.update(metrics_lib.advantage_metrics(adv_B, adv_BxL, ro.loss_mask_BxL))
  host.update(metrics_lib.reward_metrics(scores.extras["correct"], g, prefix="correct"))
  host.update({f"{k}/mean": float(np.mean(v))
               for k, v in {**scores.extras, **out.extras}.items()
               if k != "correct" and np.ndim(v) == 1})
  host.update({"rollout/len_mean": float(lengths.mean()), "rollout/len_max": float(lengths.max()),
               "rollout/truncated_frac": float(np.mean(ro.truncated_B)),
               "rollout/draws": float(info["num_draws"]),
               "rollout/tokens": float(rollout_tokens), "time/rollout_s": t_rollout,
               "update/num_microbatches": float(setup.update_cfg.num_microbatches),
               **scores.metrics, **adv_metrics})
  if hasattr(setup.source, "metrics"):  # a stateful source's gauges (e.g. HeaPA's pool/*)
    host.update(setup.source.metrics(part_state["source"]))
  return rows, host, part_state


def train_batch(setup: RLSetup, state: TrainState, ref_params, rows: dict, update_key, *,
                staleness: int | None = None):
  """The device half of an RL step: the `Batch` of `rows` on the mesh, reference log-probs for
  a KL term, `train_on_rollout`. Returns (state, device metrics), dispatched asynchronously.

  `staleness` (asynchronous RL; None = synchronous): updates since the params that sampled the
  rows. The batch then carries the off-policy weights of `rl_jax.algorithms.off_policy` (all 1
  when staleness is 0; otherwise old log-probs become pi_prox, one forward pass with the
  current params, and the weights correct mu -> pi_prox).
  """
  r, ctx = setup.section, setup.ctx
  placed = sharding.shard_batch(rows, ctx.mesh)
  ref_logp = None
  if setup.update_cfg.loss.use_kl_loss:
    # LoRA: the reference is the base model with the adapters off (its weights are the train
    # state's own frozen arrays, no copy; rl_jax.models.lora.base).
    ref, ref_cfg = ((ref_params, ctx.model_cfg) if ref_params is not None
                    else lora.base(state.params, ctx.model_cfg))
    ref_logp = logprobs_lib.reference_logprobs(ref, placed["tokens"], placed["valid"],
                                               cfg=ref_cfg,
                                               implementation=setup.update_cfg.logprob_impl)
  old_logp, is_weight, off_metrics = placed["old_logp"], None, {}
  if staleness is not None:
    stale_B = sharding.shard_batch(np.full(np.shape(rows["adv"]), staleness > 0), ctx.mesh)
    prox = old_logp
    if staleness > 0:  # pi_prox: the params this update starts from (decoupled PPO)
      prox = logprobs_lib.reference_logprobs(state.params, placed["tokens"], placed["valid"],
                                             cfg=ctx.model_cfg,
                                             implementation=setup.update_cfg.logprob_impl)
    old_logp, is_weight, off_metrics = off_policy.correction(
        prox, placed["old_logp"], placed["loss_mask"], stale_B, np.float32(r.importance_cap),
        level=r.importance_level, mode=r.importance_mode)
    off_metrics = {**off_metrics, "offpolicy/staleness": np.float32(staleness)}
  batch = Batch(tokens_BxL=placed["tokens"], valid_BxL=placed["valid"],
                loss_mask_BxL=placed["loss_mask"], old_logp_BxL=old_logp,
                ref_logp_BxL=ref_logp, advantages_B=placed["adv"],
                advantages_BxL=placed["adv_BxL"], is_weight_BxL=is_weight)
  state, update_metrics = train_on_rollout(
      state, batch, setup.update_knobs, update_key, cfg=setup.update_cfg,
      num_epochs=r.num_epochs, num_minibatches=r.num_minibatches, group_size=r.group_size,
      mesh=ctx.mesh, drop_zero_advantage=r.drop_zero_advantage, step_fn=setup.step_fn)
  return state, {**update_metrics, **off_metrics}


def rl_iteration(setup: RLSetup, state: TrainState, ref_params, part_state: dict, step: int,
                 key: jax.Array):
  """One synchronous RL step. Returns (state, part_state, metrics); device metrics stay on
  device."""
  rollout_key, update_key = jax.random.split(key)
  rows, host, part_state = generate_batch(setup, state.params, part_state, step, rollout_key)
  t1 = time.perf_counter()
  state, update_metrics = train_batch(setup, state, ref_params, rows, update_key)
  if setup.ctx.exp.timing:
    jax.block_until_ready(state.params)
  host["time/update_s"] = time.perf_counter() - t1
  return state, part_state, {**update_metrics, **host}


def _gather(kept, draw_B, row_B, group_size):
  """The kept rows of dynamic sampling's draws as one (problems, out, scores) triple."""
  problems = [kept[d][0][r // group_size] for d, r in zip(draw_B[::group_size],
                                                          row_B[::group_size])]
  outs = [kept[d][1] for d in draw_B]
  scores = [kept[d][2] for d in draw_B]
  pick = lambda arrays: np.stack([a[r] for a, r in zip(arrays, row_B)])
  first = outs[0]
  rollout = jax.tree.map(lambda *xs: pick(xs), *[o.rollout for o in outs])
  out = dataclasses.replace(
      first, rollout=rollout, texts=[o.texts[r] for o, r in zip(outs, row_B)],
      episodes=None if first.episodes is None else [o.episodes[r] for o, r in zip(outs, row_B)],
      forced_B=None if first.forced_B is None else pick([o.forced_B for o in outs]),
      extras={k: pick([o.extras[k] for o in outs]) for k in first.extras})
  reward_B = pick([s.reward_B for s in scores])
  extras = {k: pick([s.extras[k] for s in scores]) for k in scores[0].extras}
  return problems, out, dataclasses.replace(scores[0], reward_B=reward_B, extras=extras)


def run_rl(ctx: RunContext, spec, params, io) -> Any:
  """Trains an RL stage from `params`; returns the final params. With `rl.off_policy_steps`
  k >= 1 the rollout of step t + k is generated while update t runs
  (`rl_async.run_async`)."""
  # Imported here: rl_async builds on this module's generate_batch / train_batch.
  from rl_jax.stages import rl_async  # pylint: disable=g-import-not-at-top
  train_ctx, gen_ctx = rl_async.device_groups(ctx, spec.section)
  setup = build_rl(train_ctx, spec.section, spec.name, gen_ctx=gen_ctx)
  r = setup.section
  use_ref = setup.update_cfg.loss.use_kl_loss
  state = sharding.shard_train_state(init_train_state(params, setup.update_cfg), train_ctx.mesh)
  # A copy: the update donates (and so frees) the train state's buffers. With LoRA adapters
  # none: the reference is the frozen base inside the state (train_batch).
  ref_params = (jax.tree.map(jnp.copy, state.params)
                if use_ref and not lora.has_adapters(state.params) else None)
  setup.step_fn = make_update_step(setup.update_cfg,
                                   sharding.state_shardings(state, train_ctx.mesh))
  part_state = setup.init_part_state()
  start = 0
  k = r.off_policy_steps
  saved_tree = {"train": state, "ref_params": ref_params}
  rows, seq_len = r.prompts_per_step * r.group_size, setup.rollout.total_len
  if k:  # the in-flight rollouts travel in the checkpoint (fixed shapes: k batches)
    saved_tree["inflight"] = rl_async.replicated(off_policy.queue_template(k, rows, seq_len),
                                         train_ctx.mesh)
  queue = []
  restored = io.restore(saved_tree)
  if restored is not None:
    start, saved, host = restored
    state, ref_params = saved["train"], saved["ref_params"]
    part_state = host["parts"]
    if k:
      queue = off_policy.from_arrays(jax.device_get(saved["inflight"]), host["inflight"])
    if host.get("done"):
      return state.params if gen_ctx is None else rl_async.on_mesh(state.params, ctx.mesh)
  key = ctx.stage_key(spec.kind)  # the same for every sweep variant (see build_rl)
  if k:
    state = rl_async.run_async(setup, state, ref_params, part_state, queue, start, key, spec, io,
                       ctx, gen_ctx)
    return state.params if gen_ctx is None else rl_async.on_mesh(state.params, ctx.mesh)
  fetcher = metrics_lib.LateFetcher()
  for step in io.steps(start, r.steps):
    try:
      state, part_state, m = rl_iteration(setup, state, ref_params, part_state, step,
                                          jax.random.fold_in(key, step))
    except Exception as e:  # e.g. a reward function's error: say where the run stopped
      e.add_note(f"(at step {step} of stage {spec.name!r})")
      raise
    metrics = io.evaluate(state.params, step + 1, r.steps)
    io.record(fetcher.push(step, {**m, **metrics}), None)
    if io.should_save(step + 1, r.steps):
      io.record(fetcher.flush(), None)
      io.save(step + 1, {"train": state, "ref_params": ref_params}, {"parts": part_state},
              final=step + 1 == r.steps)
  io.record(fetcher.flush(), None)
  return state.params


STAGES.register("rl")(run_rl)
