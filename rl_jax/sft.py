"""Supervised warm start: teacher-forced negative log-likelihood on completion tokens.

    loss = - sum_{t: loss_mask=1} log pi(y_t | y_<t)  /  sum loss_mask       (token mean)

Returned as (sum, denominator) like every loss, so it reuses the exact gradient accumulation of
`rl_jax.update.accumulate_gradients`.
"""
from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp

from rl_jax import logprobs as logprobs_lib
from rl_jax import optim
from rl_jax.models.config import ModelConfig
from rl_jax.types import TrainState
from rl_jax.update import accumulate_gradients, apply_gradients


@dataclasses.dataclass(frozen=True)
class SFTCfg:
  """model: shapes; optim: optimizer; num_microbatches: gradient accumulation;
  logprob_impl: as in `UpdateCfg`."""
  model: ModelConfig
  optim: optim.OptimCfg
  num_microbatches: int = 1
  logprob_impl: str = "auto"


def nll_loss(params, tokens_BxL, valid_BxL, loss_mask_BxL, *, cfg: SFTCfg):
  """(sum of masked token NLL, number of masked tokens)."""
  logp_BxL = logprobs_lib.token_logprobs(params, tokens_BxL, valid_BxL, cfg=cfg.model,
                                         implementation=cfg.logprob_impl)
  mask = loss_mask_BxL.astype(jnp.float32)
  return -jnp.sum(logp_BxL * mask), jnp.sum(mask)


def sft_step_fn(state: TrainState, tokens_BxL, valid_BxL, loss_mask_BxL, learning_rate, *,
                cfg: SFTCfg):
  """One optimizer step of supervised fine-tuning; returns (state, metrics). Unjitted: see
  `sft_step` (jitted, state donated) and `make_sft_step` (with the state's output layout)."""
  def loss_fn(params, mb):
    loss_sum, denom = nll_loss(params, *mb, cfg=cfg)
    return loss_sum, (denom, {})
  grads, loss, _, _ = accumulate_gradients(loss_fn, state.params,
                                           (tokens_BxL, valid_BxL, loss_mask_BxL),
                                           cfg.num_microbatches, "sft_step")
  state, metrics = apply_gradients(state, grads, learning_rate, cfg.optim)
  metrics["sft/nll"] = loss
  return state, metrics


sft_step = jax.jit(sft_step_fn, static_argnames=("cfg",), donate_argnames=("state",))


def make_sft_step(cfg: SFTCfg, state_shardings=None):
  """`sft_step` for one config, jitted with `out_shardings` = the train state's layout (a
  NamedSharding pytree), so the new state comes back in the layout the next step takes and is
  never re-placed. Build it once per stage and reuse it (one compiled program per shape)."""
  out = None if state_shardings is None else (state_shardings, None)
  return jax.jit(functools.partial(sft_step_fn, cfg=cfg), donate_argnums=(0,),
                 out_shardings=out)
