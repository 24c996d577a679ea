"""One RL iteration on the host: rollout -> rewards -> advantages -> update.

    state, metrics = rl_iteration(state, ref_params, problems, key, ctx)

The two compiled programs (`generate`, `update_step`) run on device; everything between them
(detokenising, rewards, DAPO filtering, advantages) is host Python on small arrays. Rewards and
advantages are computed here, outside the differentiated function: the loss only sees advantages.

With `ctx.mesh` set, prompt and rollout rows are placed with their rows split over ("data",
"fsdp") (`sharding.shard_batch`) and the rollout is read back whole (`sharding.to_host`). On
several processes this is an SPMD host loop: every process draws the same prompts from the same
seed, computes the same rewards, and calls the same programs in the same order.
"""
from __future__ import annotations

import dataclasses
import time
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from rl_jax import logprobs as logprobs_lib
from rl_jax import metrics as metrics_lib
from rl_jax import sharding
from rl_jax.algorithms import advantages, dapo
from rl_jax.data.encoding import decode_responses, encode_prompts
from rl_jax.models.config import ModelConfig
from rl_jax.sampling.generate import GenerateCfg, generate
from rl_jax.tasks import TaskData
from rl_jax.tokenizers import Tokenizer
from rl_jax.types import Batch, SampleKnobs, TrainState
from rl_jax.update import UpdateCfg, UpdateKnobs, train_on_rollout


@dataclasses.dataclass(frozen=True)
class RLContext:
  """Everything an RL iteration needs besides state, data and key (built once by the trainer)."""
  task: TaskData
  tokenizer: Tokenizer
  model_cfg: ModelConfig
  gen_cfg: GenerateCfg
  update_cfg: UpdateCfg
  sample_knobs: SampleKnobs
  update_knobs: UpdateKnobs
  prompt_len: int
  adv_normalize: str
  num_epochs: int = 1
  num_minibatches: int = 1
  dynamic_sampling: bool = False
  max_draws: int = 4
  overlong_max_len: int = 0
  overlong_cache_len: int = 0
  # Rows per compiled block when zero-advantage rows are dropped from the update (0 = off).
  drop_zero_advantage: int = 0
  # Device mesh the rollout and update inputs are placed on (None: the default device).
  mesh: Any = None


def sample_and_score(params, problems: Sequence[Any], key: jax.Array, ctx: RLContext):
  """Generates G responses per problem and scores them: (rewards [B*G], host payload dict)."""
  prompts = [ctx.task.prompt_fn(p) for p in problems]
  tokens, valid = encode_prompts(ctx.tokenizer, prompts, ctx.prompt_len)
  placed = sharding.shard_batch({"prompt_tokens": tokens, "prompt_valid": valid}, ctx.mesh)
  rollout = generate(params, placed["prompt_tokens"], placed["prompt_valid"], key,
                     ctx.sample_knobs, model_cfg=ctx.model_cfg, cfg=ctx.gen_cfg)
  rollout = sharding.to_host(rollout)
  texts = decode_responses(ctx.tokenizer, rollout.tokens_BxL, rollout.loss_mask_BxL,
                           ctx.prompt_len, ctx.gen_cfg.stop_ids)
  g = ctx.gen_cfg.group_size
  rewards = ctx.task.rewards([p for p in problems for _ in range(g)], texts)
  correct = rewards.copy()
  if ctx.overlong_max_len:
    rewards = rewards + dapo.overlong_penalty(rollout.response_len_B,
                                              max_len=ctx.overlong_max_len,
                                              cache_len=ctx.overlong_cache_len)
  payload = dict(tokens=rollout.tokens_BxL, valid=rollout.valid_BxL,
                 loss_mask=rollout.loss_mask_BxL, old_logp=rollout.logp_policy_BxL,
                 response_len=rollout.response_len_B, truncated=rollout.truncated_B,
                 correct=correct)
  return rewards, payload


def rl_iteration(state: TrainState, ref_params, problems_fn, key: jax.Array, ctx: RLContext):
  """One RL step. `problems_fn(draw_index) -> problems` supplies prompts (more for DAPO refills).

  Returns (state, metrics) with host-side metrics already merged (device metrics are arrays).
  """
  g = ctx.gen_cfg.group_size
  t0 = time.perf_counter()
  draws = [0]

  def draw():
    problems = problems_fn(draws[0])
    out = sample_and_score(state.params, problems, jax.random.fold_in(key, draws[0]), ctx)
    draws[0] += 1
    return out

  if ctx.dynamic_sampling:
    num_groups = len(problems_fn(0))
    rewards, payload, info = dapo.fill_groups(draw, group_size=g, target_groups=num_groups,
                                              max_draws=ctx.max_draws)
  else:
    rewards, payload = draw()
    info = {"num_draws": 1}
  t_rollout = time.perf_counter() - t0

  adv_B = np.asarray(advantages.group_advantages(jnp.asarray(rewards), group_size=g,
                                                 normalize=ctx.adv_normalize))
  rows = sharding.shard_batch(
      {"tokens": payload["tokens"], "valid": payload["valid"], "loss_mask": payload["loss_mask"],
       "old_logp": payload["old_logp"], "advantages": adv_B}, ctx.mesh)
  if ctx.update_cfg.loss.use_kl_loss:
    ref_logp = logprobs_lib.reference_logprobs(ref_params, rows["tokens"], rows["valid"],
                                               cfg=ctx.model_cfg,
                                               implementation=ctx.update_cfg.logprob_impl)
  else:
    ref_logp = sharding.shard_batch(np.zeros(np.shape(payload["tokens"]), np.float32), ctx.mesh)
  batch = Batch(tokens_BxL=rows["tokens"], valid_BxL=rows["valid"],
                loss_mask_BxL=rows["loss_mask"], old_logp_BxL=rows["old_logp"],
                ref_logp_BxL=ref_logp, advantages_B=rows["advantages"])
  t1 = time.perf_counter()
  state, update_metrics = train_on_rollout(
      state, batch, ctx.update_knobs, jax.random.fold_in(key, 1_000_003), cfg=ctx.update_cfg,
      num_epochs=ctx.num_epochs, num_minibatches=ctx.num_minibatches, group_size=g,
      mesh=ctx.mesh, drop_zero_advantage=ctx.drop_zero_advantage)
  jax.block_until_ready(state.params)
  t_update = time.perf_counter() - t1
  if ctx.mesh is not None:
    # XLA may hand small leaves back in another layout; pin the rule layout so the next
    # rollout and update reuse their compiled programs.
    state = sharding.shard_train_state(state, ctx.mesh)

  lengths = np.asarray(payload["response_len"], np.float32)
  host = metrics_lib.reward_metrics(rewards, g)
  host.update(metrics_lib.reward_metrics(np.asarray(payload["correct"]), g, prefix="correct"))
  host.update({"rollout/len_mean": float(lengths.mean()), "rollout/len_max": float(lengths.max()),
               "rollout/truncated_frac": float(np.mean(payload["truncated"])),
               "rollout/draws": float(info["num_draws"]), "time/rollout_s": t_rollout,
               "time/update_s": t_update})
  return state, {**update_metrics, **host}
