"""Supervised warm start: teacher-forced negative log-likelihood on completion tokens.

    loss = - sum_{t: loss_mask=1} log pi(y_t | y_<t)  /  sum loss_mask       (token mean)

Returned as (sum, denominator) like every loss, so it reuses the exact gradient accumulation of
`rl_jax.update.accumulate_gradients`.

Packed rows (pretraining, `rl_jax.data.loader.packed_batches`): with `segment_ids_BxL` several
documents share a row; y_<t is then the tokens of t's own document only (the forward attends
within a segment, positions restart at each document: `qwen3.forward(segment_ids_BxT=...)`), and
no token is predicted from the previous document's last position. The loss of a packed batch is
the loss of its documents run one per row (tests/data/packing_test.py).
"""
from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp

from rl_jax import logprobs as logprobs_lib
from rl_jax import optim
from rl_jax.models import qwen3
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


def packed_token_logprobs(params, tokens_BxL, valid_BxL, segment_ids_BxL, *, cfg: ModelConfig,
                          implementation: str):
  """log pi(y_t | the tokens before t in t's segment), 0 at each segment's first token and on
  padding: the forward over packed rows (segment-restricted attention, per-segment positions
  `qwen3.packed_positions`) and the log-prob head of `rl_jax.logprobs`."""
  valid = valid_BxL.astype(bool)
  hidden_BxLxD, _ = qwen3.forward(params, tokens_BxL, qwen3.packed_positions(segment_ids_BxL),
                                  valid, cfg=cfg, segment_ids_BxT=segment_ids_BxL)
  same_segment_BxLm1 = segment_ids_BxL[:, 1:] == segment_ids_BxL[:, :-1]
  return logprobs_lib.logprobs_from_hidden(
      params, hidden_BxLxD, tokens_BxL, valid[:, 1:] & valid[:, :-1] & same_segment_BxLm1,
      cfg=cfg, implementation=implementation, temperature=1.0, return_entropy=False)


def nll_loss(params, tokens_BxL, valid_BxL, loss_mask_BxL, segment_ids_BxL=None, *,
             cfg: SFTCfg):
  """(sum of masked token NLL, number of masked tokens); `segment_ids_BxL` (optional, int, 0 on
  padding): packed rows (module docstring)."""
  if segment_ids_BxL is None:
    logp_BxL = logprobs_lib.token_logprobs(params, tokens_BxL, valid_BxL, cfg=cfg.model,
                                           implementation=cfg.logprob_impl)
  else:
    logp_BxL = packed_token_logprobs(params, tokens_BxL, valid_BxL, segment_ids_BxL,
                                     cfg=cfg.model, implementation=cfg.logprob_impl)
  mask = loss_mask_BxL.astype(jnp.float32)
  return -jnp.sum(logp_BxL * mask), jnp.sum(mask)


def sft_step_fn(state: TrainState, tokens_BxL, valid_BxL, loss_mask_BxL, learning_rate,
                segment_ids_BxL=None, *, cfg: SFTCfg):
  """One optimizer step of supervised fine-tuning; returns (state, metrics). Unjitted: see
  `sft_step` (jitted, state donated) and `make_sft_step` (with the state's output layout).
  `segment_ids_BxL`: packed rows (`nll_loss`)."""
  def loss_fn(params, mb):
    loss_sum, denom = nll_loss(params, *mb, cfg=cfg)
    return loss_sum, (denom, {})
  batch = (tokens_BxL, valid_BxL, loss_mask_BxL)
  if segment_ids_BxL is not None:
    batch += (segment_ids_BxL,)
  grads, loss, _, _ = accumulate_gradients(loss_fn, state.params, batch, cfg.num_microbatches,
                                           "sft_step")
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
