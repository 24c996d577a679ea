"""The training run: build from an `Experiment`, SFT warm start, held-out eval, RL, checkpoints.

`main.py` parses flags and calls `run(exp, workdir)`; tests and notebooks call `run` directly.
All randomness derives from `exp.seed`: prompts of RL step s (draw d) come from
`default_rng([seed, s, d])` and its sampling key from `fold_in(rl_key, s)`, so a resumed run
replays exactly the steps an uninterrupted run would have taken.

Every process of a multi-process run executes this same host loop on the same values (SPMD):
device inputs are identical host arrays placed on the global mesh, device outputs are read back
whole (`sharding.to_host`), and only process 0 writes metrics.jsonl and summary.json.
"""
from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import tqdm

from rl_jax import checkpoint as ckpt_lib
from rl_jax import metrics as metrics_lib
from rl_jax import optim, sharding, tasks
from rl_jax.algorithms import losses
from rl_jax.data.encoding import decode_responses, encode_examples, encode_prompts
from rl_jax.experiment import Experiment
from rl_jax.models import qwen3, weights
from rl_jax.models.config import ModelConfig, get_model_config
from rl_jax.rl_step import RLContext, rl_iteration
from rl_jax.sampling.generate import GenerateCfg, generate
from rl_jax.sft import SFTCfg, sft_step
from rl_jax.tokenizers import load_tokenizer
from rl_jax.types import SampleKnobs, TrainState
from rl_jax.update import UpdateCfg, UpdateKnobs, check_drop_zero_advantage, init_train_state


def build_model(exp: Experiment, vocab_size: int, key: jax.Array):
  """(ModelConfig, params): a named config with the tokenizer's vocabulary, random or loaded."""
  if exp.model.hf_checkpoint:
    return weights.load_hf_checkpoint(exp.model.hf_checkpoint, **dict(exp.model.overrides))
  cfg = get_model_config(exp.model.name, vocab_size=vocab_size, **dict(exp.model.overrides))
  max_len = exp.prompt_len + exp.max_new_tokens
  if cfg.max_seq_len < max_len:
    cfg = cfg.replace(max_seq_len=max_len)
  return cfg, qwen3.init_params(cfg, key)


def evaluate(params, problems, task, tokenizer, exp: Experiment, model_cfg: ModelConfig,
             key: jax.Array | None = None, temperature: float = 0.0,
             mesh=None) -> dict[str, float]:
  """Held-out accuracy (mean reward) of greedy decoding (or sampling at `temperature`).

  With `mesh`, prompt rows are split over its data and fsdp axes.
  """
  gen_cfg = GenerateCfg(max_new_tokens=exp.max_new_tokens, group_size=1,
                        stop_ids=(tokenizer.eos_id,), pad_id=tokenizer.pad_id)
  knobs = SampleKnobs.create(temperature)
  key = jax.random.key(0) if key is None else key
  rewards, lengths = [], []
  bs = exp.eval.batch_size
  for start in range(0, len(problems), bs):
    chunk = list(problems[start:start + bs])
    # Pad the last chunk to a full batch so every call reuses one compiled program.
    padded = chunk + [chunk[-1]] * (bs - len(chunk))
    tokens, valid = encode_prompts(tokenizer, [task.prompt_fn(p) for p in padded], exp.prompt_len)
    placed = sharding.shard_batch({"prompt_tokens": tokens, "prompt_valid": valid}, mesh)
    rollout = sharding.to_host(generate(params, placed["prompt_tokens"], placed["prompt_valid"],
                                        jax.random.fold_in(key, start), knobs,
                                        model_cfg=model_cfg, cfg=gen_cfg))
    texts = decode_responses(tokenizer, rollout.tokens_BxL, rollout.loss_mask_BxL,
                             exp.prompt_len, gen_cfg.stop_ids)[:len(chunk)]
    rewards.append(task.rewards(chunk, texts))
    lengths.append(np.asarray(rollout.response_len_B[:len(chunk)], np.float32))
  return {"eval/accuracy": float(np.concatenate(rewards).mean()),
          "eval/len_mean": float(np.concatenate(lengths).mean())}


def place_state(state: TrainState, mesh) -> TrainState:
  """Shards a train state over the mesh with the parameter rules of `rl_jax.sharding`."""
  return sharding.shard_train_state(state, mesh)


def run_sft(params, task, tokenizer, exp: Experiment, model_cfg: ModelConfig, key: jax.Array,
            writer: metrics_lib.MetricWriter, mesh=None):
  """Supervised warm start on the task's worked solutions; returns params.

  With `mesh`, the train state is sharded by the parameter rules and each batch's rows are split
  over the data and fsdp axes.
  """
  s = exp.sft
  optim_cfg = optim.OptimCfg(learning_rate=s.learning_rate, warmup_steps=s.warmup_steps,
                             schedule=s.schedule, decay_steps=max(s.steps, 1))
  cfg = SFTCfg(model=model_cfg, optim=optim_cfg, logprob_impl=exp.logprob_impl)
  state = TrainState(jnp.int32(0), params, optim.make_optimizer(optim_cfg).init(params))
  if mesh is not None:
    state = place_state(state, mesh)
  data = encode_examples(tokenizer, [task.prompt_fn(p) for p in task.train],
                         [task.completion_fn(p) for p in task.train], exp.prompt_len,
                         exp.max_new_tokens)
  n = len(task.train)
  lr = jnp.float32(s.learning_rate)
  fetcher = metrics_lib.LateFetcher()
  steps_per_epoch = max(n // s.batch_size, 1)
  for step in tqdm.trange(s.steps, desc="sft", disable=not writer.enabled, mininterval=2):
    # Each epoch is one permutation of the examples (fixed by key and epoch index).
    epoch, offset = divmod(step, steps_per_epoch)
    order = np.asarray(jax.random.permutation(jax.random.fold_in(key, epoch), n))
    offset *= s.batch_size
    rows = order[offset:offset + s.batch_size]
    batch = sharding.shard_batch([a[rows] for a in data], mesh)
    state, m = sft_step(state, *batch, lr, cfg=cfg)
    if mesh is not None:
      state = place_state(state, mesh)  # keep the layout fixed: no recompile at the next step
    _log_sft(fetcher.push(step, m), writer)
  _log_sft(fetcher.flush(), writer)
  return state.params


def _log_sft(done, writer: metrics_lib.MetricWriter) -> None:
  if done:
    metrics_lib.check_finite(done[1], done[0])
    writer.write(done[0], {f"sft/{k.split('/')[-1]}": v for k, v in done[1].items()})


def _rl_context(exp: Experiment, task, tokenizer, model_cfg: ModelConfig, mesh=None) -> RLContext:
  r = exp.rl
  preset = losses.preset(r.algorithm, norm_len=exp.max_new_tokens)
  loss_cfg = preset.cfg
  changes = {k: v for k, v in (("agg", r.agg), ("kl_estimator", r.kl_estimator),
                               ("use_kl_loss", r.use_kl_loss)) if v is not None}
  if changes.get("agg") == "seq_mean_token_sum_norm" or loss_cfg.agg == "seq_mean_token_sum_norm":
    changes["norm_len"] = exp.max_new_tokens
  loss_cfg = dataclasses.replace(loss_cfg, **changes)
  # Checked here, before the first rollout, not only when the first update runs.
  check_drop_zero_advantage(r.drop_zero_advantage, loss_cfg, "config rl.drop_zero_advantage")
  knob_values = dict(preset.knobs)
  for name in ("eps_low", "eps_high", "eps_c", "beta"):
    if getattr(r, name) is not None:
      knob_values[name] = getattr(r, name)
  optim_cfg = optim.OptimCfg(learning_rate=r.learning_rate, warmup_steps=r.warmup_steps,
                             schedule=r.schedule, decay_steps=max(r.steps, 1),
                             weight_decay=r.weight_decay, max_grad_norm=r.max_grad_norm)
  return RLContext(
      task=task, tokenizer=tokenizer, model_cfg=model_cfg,
      gen_cfg=GenerateCfg(max_new_tokens=exp.max_new_tokens, group_size=r.group_size,
                          stop_ids=(tokenizer.eos_id,), pad_id=tokenizer.pad_id),
      update_cfg=UpdateCfg(model=model_cfg, loss=loss_cfg, optim=optim_cfg,
                           num_microbatches=r.num_microbatches, logprob_impl=exp.logprob_impl),
      sample_knobs=SampleKnobs.create(r.temperature, r.top_p, r.top_k),
      update_knobs=UpdateKnobs.create(losses.LossKnobs.create(**knob_values), r.learning_rate),
      prompt_len=exp.prompt_len, adv_normalize=r.adv_normalize or preset.adv_normalize,
      num_epochs=r.num_epochs, num_minibatches=r.num_minibatches,
      dynamic_sampling=r.dynamic_sampling, max_draws=r.max_draws,
      overlong_max_len=r.overlong_max_len, overlong_cache_len=r.overlong_cache_len,
      drop_zero_advantage=r.drop_zero_advantage, mesh=mesh)


def run(exp: Experiment, workdir: str, *, show_progress: bool = True) -> dict[str, Any]:
  """Runs SFT then RL as configured; returns a summary dict (also written to workdir).

  The mesh `exp.mesh` spans every device of every process. With checkpoints enabled, a run
  whose checkpoint directory holds a step resumes from the newest restorable one: SFT and the
  first evaluation are skipped (their result comes from the checkpoint) and metrics.jsonl is cut
  back to the records the checkpoint had seen. The returned summary holds the evaluations and
  `final_params` (the trained params, on the mesh; not in summary.json).
  """
  is_chief = jax.process_index() == 0
  os.makedirs(workdir, exist_ok=True)
  tokenizer = load_tokenizer(exp.tokenizer)
  task_kwargs = dict(exp.task)
  task = tasks.make_task(task_kwargs.pop("name"), seed=exp.seed, **task_kwargs)
  key = jax.random.key(exp.seed)
  init_key, sft_key, rl_key, eval_key = jax.random.split(key, 4)
  model_cfg, params = build_model(exp, tokenizer.vocab_size, init_key)
  mesh = sharding.make_mesh(sharding.MeshCfg(exp.mesh.data, exp.mesh.fsdp, exp.mesh.tensor))
  ctx = _rl_context(exp, task, tokenizer, model_cfg, mesh)
  ckpt = ckpt_lib.Checkpointer(ckpt_lib.CheckpointCfg(
      directory=os.path.join(os.path.abspath(workdir), "checkpoints"),
      save_every=max(exp.checkpoint.every, 1), keep=exp.checkpoint.keep,
      async_save=exp.checkpoint.async_save, enabled=exp.checkpoint.every > 0))
  use_ref = ctx.update_cfg.loss.use_kl_loss
  log = (lambda msg: print(msg, flush=True)) if (is_chief and show_progress) else (lambda _: None)

  state = place_state(init_train_state(params, ctx.update_cfg), mesh)
  saved = {"train": state, "ref_params": state.params if use_ref else None}
  use_ckpt = exp.checkpoint.every > 0
  restored = ckpt.restore_latest(ckpt_lib.abstract_of(saved)) if use_ckpt else None
  if restored is not None:
    start_step, saved, host = restored
    state, ref_params = saved["train"], saved["ref_params"]
    summary = dict(host["summary"])
    writer = metrics_lib.MetricWriter(workdir, enabled=is_chief,
                                      keep_records=host.get("metrics_records"))
    log(f"resumed from checkpoint at RL step {start_step}")
  else:
    start_step, summary = 0, {}
    # A checkpointed run that starts from scratch starts its metrics over too (a run killed
    # before its first checkpoint would otherwise leave records that the rerun repeats).
    writer = metrics_lib.MetricWriter(workdir, enabled=is_chief,
                                      keep_records=0 if use_ckpt else None)
    params = state.params  # on the mesh, so evaluation runs sharded even without SFT
    if exp.sft.steps:
      params = run_sft(params, task, tokenizer, exp, model_cfg, sft_key, writer, mesh)
    summary["eval_before_rl"] = evaluate(params, task.eval, task, tokenizer, exp, model_cfg,
                                         eval_key, mesh=mesh)["eval/accuracy"]
    log(f"held-out greedy accuracy after SFT (before RL): {summary['eval_before_rl']:.3f}")
    state = place_state(init_train_state(params, ctx.update_cfg), mesh)
    # A copy: update_step donates (and so frees) the train state's buffers.
    ref_params = jax.tree.map(jnp.copy, state.params) if use_ref else None

  fetcher = metrics_lib.LateFetcher()
  bar = tqdm.trange(start_step, exp.rl.steps, desc=f"rl/{exp.rl.algorithm}", initial=start_step,
                    total=exp.rl.steps, disable=not (is_chief and show_progress), mininterval=1)
  reward_trace = []
  for step in bar:
    problems_fn = lambda draw, step=step: task.sample_rl(
        exp.rl.prompts_per_step, np.random.default_rng([exp.seed, step, draw]))
    state, m = rl_iteration(state, ref_params, problems_fn, jax.random.fold_in(rl_key, step), ctx)
    if exp.eval.every and (step + 1) % exp.eval.every == 0 and step + 1 < exp.rl.steps:
      m.update(evaluate(state.params, task.eval, task, tokenizer, exp, model_cfg, eval_key,
                        mesh=mesh))
    done = fetcher.push(step, m)
    if done:
      _log_step(done, writer, bar, reward_trace)
    if ckpt.should_save(step + 1):
      # Write this step's metrics first, so the checkpoint's record count covers every step
      # before it and a resume from it neither repeats nor loses a record.
      done = fetcher.flush()
      if done:
        _log_step(done, writer, bar, reward_trace)
      # save() copies the arrays to host before returning, so the next update may donate them.
      ckpt.save(step + 1, {"train": state, "ref_params": ref_params},
                {"summary": summary, "metrics_records": writer.num_records})
  done = fetcher.flush()
  if done:
    _log_step(done, writer, bar, reward_trace)
  bar.close()
  ckpt.wait()
  ckpt.close()

  if exp.rl.steps:
    summary["eval_after_rl"] = evaluate(state.params, task.eval, task, tokenizer, exp, model_cfg,
                                        eval_key, mesh=mesh)["eval/accuracy"]
    log(f"held-out greedy accuracy after RL: {summary['eval_after_rl']:.3f} "
        f"({100 * (summary['eval_after_rl'] - summary['eval_before_rl']):+.1f} points)")
  if reward_trace and is_chief and show_progress:
    k = max(1, len(reward_trace) // 5)
    log(f"RL train reward (mean correct), first {k} steps: {np.mean(reward_trace[:k]):.3f} -> "
        f"last {k} steps: {np.mean(reward_trace[-k:]):.3f}")
  if is_chief:
    with open(os.path.join(workdir, "summary.json"), "w") as f:
      json.dump(summary, f, indent=1)
  writer.close()
  summary["final_params"] = state.params
  return summary


def _log_step(done, writer, bar, reward_trace):
  step, host = done
  metrics_lib.check_finite(host, step)
  writer.write(step, host)
  reward_trace.append(host["correct/mean"])
  bar.set_postfix(reward=f"{host['correct/mean']:.3f}", len=f"{host['rollout/len_mean']:.1f}")
