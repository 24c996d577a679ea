"""Jitted rollout: one program that prefills left-padded prompts, then decodes with a KV cache.

    rollout = generate(params, prompt_tokens_BxP, prompt_valid_BxP, key, knobs,
                       model_cfg=..., cfg=GenerateCfg(...))

Static (recompile when changed): shapes, group size, stop ids, budget. Traced: params, prompts,
key and the sampling knobs (temperature / top-p / top-k).

The decode loop is a `lax.while_loop` that stops as soon as every row has produced a stop token.
Row r of the prompt batch becomes rows [r*G, (r+1)*G) of the rollout (G samples per prompt),
which is the group layout every advantage function assumes.
"""
from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp

from rl_jax.models import decode, qwen3
from rl_jax.models.config import ModelConfig
from rl_jax.sampling.samplers import sample_token
from rl_jax.types import Rollout, SampleKnobs


@dataclasses.dataclass(frozen=True)
class GenerateCfg:
  """Static rollout settings.

  max_new_tokens: response budget N (the rollout is P + N slots long).
  group_size: G samples per prompt.
  stop_ids: token ids that end a response (kept in the response, loss_mask 1).
  pad_id: id written into empty slots.
  return_logits: also return the decode logits [B*G, N, V] (tests / debugging only).
  """
  max_new_tokens: int
  group_size: int = 1
  stop_ids: tuple[int, ...] = ()
  pad_id: int = 0
  return_logits: bool = False

  def __post_init__(self):
    if self.max_new_tokens <= 0:
      raise ValueError(f"GenerateCfg.max_new_tokens must be positive, got {self.max_new_tokens}")
    if self.group_size <= 0:
      raise ValueError(f"GenerateCfg.group_size must be positive, got {self.group_size}")
    object.__setattr__(self, "stop_ids", tuple(int(i) for i in self.stop_ids))


def check_prompt_shape(prompt_len: int, cfg: GenerateCfg, model_cfg: ModelConfig) -> None:
  total = prompt_len + cfg.max_new_tokens
  if total > model_cfg.max_seq_len:
    raise ValueError(f"prompt length {prompt_len} + max_new_tokens {cfg.max_new_tokens} = {total} "
                     f"exceeds the model's max_seq_len {model_cfg.max_seq_len}; shorten the "
                     "prompt, lower max_new_tokens or raise ModelConfig.max_seq_len")


@functools.partial(jax.jit, static_argnames=("model_cfg", "cfg"))
def generate(params, prompt_tokens_BxP: jax.Array, prompt_valid_BxP: jax.Array, key: jax.Array,
             knobs: SampleKnobs, *, model_cfg: ModelConfig, cfg: GenerateCfg):
  """Samples `cfg.group_size` responses per prompt.

  Args:
    params: model params (plain pytree).
    prompt_tokens_BxP: left-padded prompt ids.
    prompt_valid_BxP: 1 on real prompt tokens, 0 on left padding.
    key: PRNG key; step s of the decode loop uses `fold_in(key, s)`.
    knobs: traced temperature / top-p / top-k.

  Returns:
    `Rollout` with B*G rows (and the decode logits when `cfg.return_logits`).
  """
  check_prompt_shape(prompt_tokens_BxP.shape[1], cfg, model_cfg)
  g = cfg.group_size
  prompt_tokens = jnp.repeat(prompt_tokens_BxP.astype(jnp.int32), g, axis=0)
  prompt_valid = jnp.repeat(prompt_valid_BxP.astype(bool), g, axis=0)
  batch, prompt_len = prompt_tokens.shape
  num_slots = prompt_len + cfg.max_new_tokens
  pad_response = jnp.zeros((batch, cfg.max_new_tokens), jnp.int32)
  tokens = jnp.concatenate([prompt_tokens, pad_response + cfg.pad_id], axis=1)
  valid = jnp.concatenate([prompt_valid, pad_response.astype(bool)], axis=1)

  cache = qwen3.init_cache(model_cfg, batch, num_slots)
  hidden, cache = qwen3.forward(params, prompt_tokens, qwen3.positions_from_mask(prompt_valid),
                                valid, cfg=model_cfg, cache=cache, slot_start=0)
  next_logits = qwen3.logits(params, hidden[:, -1:], cfg=model_cfg)[:, 0]
  next_pos_B = jnp.sum(prompt_valid, axis=1).astype(jnp.int32)
  stop_ids = jnp.asarray(cfg.stop_ids or (-1,), jnp.int32)
  zeros_f = jnp.zeros((batch, num_slots), jnp.float32)
  logits_buf = (jnp.zeros((batch, cfg.max_new_tokens, model_cfg.vocab_size), jnp.float32)
                if cfg.return_logits else None)

  # Decode layout: per-layer params and cache buffers, made once here (`decode.decode_forward`).
  layer_params = qwen3.split_layers(params["layers"])
  init = dict(step=jnp.int32(0), cache=decode.to_decode_cache(cache), logits=next_logits, tokens=tokens, valid=valid,
              loss_mask=jnp.zeros((batch, num_slots), jnp.float32), logp_sample=zeros_f,
              logp_policy=zeros_f, done=jnp.zeros((batch,), bool), pos=next_pos_B,
              logits_buf=logits_buf)

  def cond(c):
    return (c["step"] < cfg.max_new_tokens) & ~jnp.all(c["done"])

  def body(c):
    step = c["step"]
    slot = prompt_len + step
    token, lp_sample, lp_policy = sample_token(c["logits"], jax.random.fold_in(key, step), knobs)
    active = ~c["done"]
    token = jnp.where(active, token, cfg.pad_id)
    put = lambda buf, col: jax.lax.dynamic_update_slice_in_dim(buf, col[:, None].astype(buf.dtype),
                                                              slot, axis=1)
    out = dict(c)
    out["tokens"] = put(c["tokens"], token)
    out["valid"] = put(c["valid"], active)
    out["loss_mask"] = put(c["loss_mask"], active.astype(jnp.float32))
    out["logp_sample"] = put(c["logp_sample"], jnp.where(active, lp_sample, 0.0))
    out["logp_policy"] = put(c["logp_policy"], jnp.where(active, lp_policy, 0.0))
    if cfg.return_logits:
      out["logits_buf"] = jax.lax.dynamic_update_slice_in_dim(
          c["logits_buf"], c["logits"][:, None], step, axis=1)
    out["done"] = c["done"] | (active & jnp.any(token[:, None] == stop_ids[None, :], axis=1))
    hidden, out["cache"] = decode.decode_forward(params, layer_params, token[:, None],
                                                c["pos"][:, None], out["valid"], c["cache"], slot,
                                                cfg=model_cfg)
    out["logits"] = qwen3.logits(params, hidden, cfg=model_cfg)[:, 0]
    out["pos"] = c["pos"] + active.astype(jnp.int32)
    out["step"] = step + 1
    return out

  final = jax.lax.while_loop(cond, body, init)
  rollout = Rollout(
      tokens_BxL=final["tokens"], valid_BxL=final["valid"], loss_mask_BxL=final["loss_mask"],
      logp_sample_BxL=final["logp_sample"], logp_policy_BxL=final["logp_policy"],
      response_len_B=jnp.sum(final["loss_mask"], axis=1).astype(jnp.int32),
      truncated_B=~final["done"], prompt_len=prompt_len)
  if cfg.return_logits:
    return rollout, final["logits_buf"]
  return rollout
