"""The jitted preference step: one optimizer step of DPO / IPO / SimPO on a batch of pairs.

    state, metrics = step(state, pairs, knobs)          # make_preference_step(cfg, ...)

A batch is a `PairBatch`: for pair i, the chosen and the rejected sequence in the slot layout
(prompt left-padded to P, response right-padded to P + N, loss_mask 1 on the response) and the
two cached reference sequence log-probs. Every leaf has the pair index as its leading axis, so
the micro-batch split of `rl_jax.update.accumulate_gradients` (the same `lax.scan` as the RL and
SFT steps) moves whole pairs: a micro-batch never holds a chosen without its rejected.

Per micro-batch the chosen and rejected rows go through one forward pass (`[2b, L]`, the fused
log-prob path of `rl_jax.logprobs`); the sequence log-prob of a response is

    log pi(y|x) = sum_t loss_mask_t * log pi(y_t | x, y_<t),   |y| = sum_t loss_mask_t,

and `rl_jax.algorithms.preference.dpo_loss` returns (loss_sum, number of pairs), so 1 or M
micro-batches give the same loss and gradient (tests/preference_step_test.py).

Reference log-probs are computed once per dataset (`reference_sequence_logprobs`, through the
jitted `rl_jax.logprobs.reference_logprobs`) and cached by the stage as [num_pairs] arrays; the
step only reads them (DPO: arXiv 2305.18290, §4; the reference is the frozen SFT policy).
"""
from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from rl_jax import logprobs as logprobs_lib
from rl_jax import optim, sharding
from rl_jax.algorithms import preference
from rl_jax.models.config import ModelConfig
from rl_jax.types import TrainState
from rl_jax.update import accumulate_gradients, apply_gradients


@dataclasses.dataclass(frozen=True)
class PreferenceCfg:
  """Static settings of the preference step.

  model: model shapes. optim: optimizer (the peak learning rate is a traced knob).
  kind: "dpo" | "ipo" | "simpo" (`rl_jax.algorithms.preference`).
  reference_free: dpo / ipo with log pi_ref = 0 (the cached reference log-probs are ignored).
  num_microbatches: micro-batches of pairs per optimizer step (exact accumulation).
  logprob_impl: as in `rl_jax.update.UpdateCfg`."""
  model: ModelConfig
  optim: optim.OptimCfg
  kind: str = "dpo"
  reference_free: bool = False
  num_microbatches: int = 1
  logprob_impl: str = "auto"

  def __post_init__(self):
    if self.kind not in preference.KINDS:
      raise ValueError(f"PreferenceCfg.kind must be one of {preference.KINDS}, got {self.kind!r}")
    if self.num_microbatches < 1:
      raise ValueError(f"PreferenceCfg.num_microbatches must be >= 1, got "
                       f"{self.num_microbatches}")

  @property
  def uses_reference(self) -> bool:
    return self.kind != "simpo" and not self.reference_free


@struct.dataclass
class PreferenceKnobs:
  """Traced knobs: changing them never recompiles. beta: inverse temperature; gamma: SimPO
  margin (0 for dpo / ipo); label_smoothing: conservative-DPO eps; nll_coef: weight of the
  chosen response's per-token NLL (RPO); learning_rate: peak lr."""
  beta: jax.Array
  gamma: jax.Array
  label_smoothing: jax.Array
  nll_coef: jax.Array
  learning_rate: jax.Array

  @classmethod
  def create(cls, *, beta: float, learning_rate: float, gamma: float = 0.0,
             label_smoothing: float = 0.0, nll_coef: float = 0.0) -> "PreferenceKnobs":
    return cls(jnp.float32(beta), jnp.float32(gamma), jnp.float32(label_smoothing),
               jnp.float32(nll_coef), jnp.float32(learning_rate))


@struct.dataclass
class PairBatch:
  """B pairs; row i of every leaf belongs to pair i (the micro-batch split keeps pairs whole).

  chosen_* / rejected_*: tokens (int32), valid (bool) and loss_mask (f32, 1 on response tokens)
  [B, L] in the slot layout; ref_chosen_logp_B / ref_rejected_logp_B: cached reference sequence
  log-probs [B] (zeros when the loss uses no reference)."""
  chosen_tokens_BxL: jax.Array
  chosen_valid_BxL: jax.Array
  chosen_mask_BxL: jax.Array
  rejected_tokens_BxL: jax.Array
  rejected_valid_BxL: jax.Array
  rejected_mask_BxL: jax.Array
  ref_chosen_logp_B: jax.Array
  ref_rejected_logp_B: jax.Array


def _pair_loss_fn(params, mb: PairBatch, knobs: PreferenceKnobs, cfg: PreferenceCfg):
  """(loss_sum, (number of pairs, stats)) of one micro-batch; chosen and rejected in one pass."""
  b = mb.chosen_tokens_BxL.shape[0]
  tokens = jnp.concatenate([mb.chosen_tokens_BxL, mb.rejected_tokens_BxL], axis=0)
  valid = jnp.concatenate([mb.chosen_valid_BxL, mb.rejected_valid_BxL], axis=0)
  mask = jnp.concatenate([mb.chosen_mask_BxL, mb.rejected_mask_BxL], axis=0).astype(jnp.float32)
  logp_2BxL = logprobs_lib.token_logprobs(params, tokens, valid, cfg=cfg.model,
                                          implementation=cfg.logprob_impl)
  seq_logp_2B = jnp.sum(logp_2BxL * mask, axis=1)
  len_2B = jnp.sum(mask, axis=1)
  loss_sum, denom, stats = preference.dpo_loss(
      seq_logp_2B[:b], seq_logp_2B[b:], mb.ref_chosen_logp_B, mb.ref_rejected_logp_B,
      kind=cfg.kind, beta=knobs.beta, gamma=knobs.gamma, label_smoothing=knobs.label_smoothing,
      nll_coef=knobs.nll_coef, reference_free=cfg.reference_free, chosen_len_B=len_2B[:b],
      rejected_len_B=len_2B[b:])
  return loss_sum, (denom, stats)


def preference_step_fn(state: TrainState, batch: PairBatch, knobs: PreferenceKnobs, *,
                       cfg: PreferenceCfg):
  """One optimizer step on `batch`; returns (state, metrics). Unjitted: see
  `make_preference_step` (jitted, state donated, output in the state's layout)."""
  loss_fn = functools.partial(_pair_loss_fn, knobs=knobs, cfg=cfg)
  grads, loss, _, stats = accumulate_gradients(loss_fn, state.params, batch,
                                               cfg.num_microbatches, "preference_step")
  state, metrics = apply_gradients(state, grads, knobs.learning_rate, cfg.optim)
  metrics["preference/loss"] = loss
  for name, (num, den) in stats.items():
    metrics["preference/" + name.replace("/", "_")] = num / jnp.maximum(den, 1e-8)
  return state, metrics


def make_preference_step(cfg: PreferenceCfg, state_shardings=None):
  """The step for one config, jitted with the state donated and `out_shardings` = the train
  state's layout (as `rl_jax.sft.make_sft_step`). Build it once per stage."""
  out = None if state_shardings is None else (state_shardings, None)
  return jax.jit(functools.partial(preference_step_fn, cfg=cfg), donate_argnums=(0,),
                 out_shardings=out)


@jax.jit
def _masked_sum(logp_BxL, mask_BxL):
  return jnp.sum(logp_BxL * mask_BxL.astype(jnp.float32), axis=1)


def reference_sequence_logprobs(params, tokens_NxL, valid_NxL, mask_NxL, *, cfg: ModelConfig,
                                implementation: str, chunk_size: int, mesh=None) -> np.ndarray:
  """Sequence log-probs [N] (float32) of N sequences under `params`, in chunks of `chunk_size`
  rows (the last chunk padded with copies of its first row, so one compiled shape serves the
  dataset), each through the jitted fused `rl_jax.logprobs.reference_logprobs`."""
  n = tokens_NxL.shape[0]
  if chunk_size < 1:
    raise ValueError(f"reference_sequence_logprobs: chunk_size must be >= 1, got {chunk_size}")
  out = []
  for start in range(0, n, chunk_size):
    rows = np.arange(start, min(start + chunk_size, n))
    rows = np.concatenate([rows, np.full(chunk_size - len(rows), rows[0])])
    chunk = sharding.shard_batch({"tokens": tokens_NxL[rows], "valid": valid_NxL[rows],
                                  "mask": mask_NxL[rows]}, mesh)
    logp = logprobs_lib.reference_logprobs(params, chunk["tokens"], chunk["valid"], cfg=cfg,
                                           implementation=implementation)
    out.append(np.asarray(sharding.to_host(_masked_sum(logp, chunk["mask"])))[:min(
        chunk_size, n - start)])
  return np.concatenate(out).astype(np.float32) if out else np.zeros((0,), np.float32)
