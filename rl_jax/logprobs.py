"""Teacher-forced per-token log-probs of whole sequences (the trainer's side of the ratio).

    logp_BxL[t] = log pi(tokens[t] | tokens[<t])   for t >= 1,   logp_BxL[0] = 0

computed from one forward pass over the slot layout that `generate` produced, so that for the
same params it equals the sampler's `logp_policy_BxL` (the sampler/trainer agreement test).

`implementation` selects how the [N, V] softmax is reduced: "naive" materialises f32 logits;
"xla" / "pallas" / "auto" use the fused kernels of `rl_jax.kernels.fused_logprob`, which never
build the [N, V] tensor (see docs/benchmarks.md).
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from rl_jax import packing
from rl_jax.models import qwen3
from rl_jax.models.config import ModelConfig

IMPLEMENTATIONS = ("naive", "xla", "pallas", "auto")


def token_logprobs(params, tokens_BxL: jax.Array, valid_BxL: jax.Array, *, cfg: ModelConfig,
                   implementation: str = "naive", temperature: jax.Array | float = 1.0,
                   return_entropy: bool = False):
  """Per-token log-probs (and optionally entropies) of `tokens_BxL` under `params`.

  Args:
    tokens_BxL, valid_BxL: the rollout slot layout (left padding has valid 0).
    cfg: model config (static).
    implementation: "naive" | "xla" | "pallas" | "auto" (static).
    temperature: divides the logits (traced); use the sampling temperature to score samples
      under the distribution they were drawn from.
    return_entropy: also return the policy entropy at each position (predicting token t).

  Returns:
    logp_BxL (0 at t=0 and wherever valid is 0), and entropy_BxL when requested.
  """
  if implementation not in IMPLEMENTATIONS:
    raise ValueError(f"unknown log-prob implementation {implementation!r}; "
                     f"valid: {IMPLEMENTATIONS}")
  valid = valid_BxL.astype(bool)
  hidden_BxLxD, _ = qwen3.forward(params, tokens_BxL, qwen3.positions_from_mask(valid), valid,
                                  cfg=cfg)
  return logprobs_from_hidden(params, hidden_BxLxD, tokens_BxL, valid[:, 1:] & valid[:, :-1],
                              cfg=cfg, implementation=implementation, temperature=temperature,
                              return_entropy=return_entropy)


def logprobs_from_hidden(params, hidden_BxLxD, tokens_BxL, target_valid_BxLm1, *,
                         cfg: ModelConfig, implementation: str, temperature, return_entropy):
  """The head of `token_logprobs` over given hidden states (packed rows, the SFT loss): position
  t-1 predicts token t where target_valid[t-1]."""
  b, l = tokens_BxL.shape
  # Position t-1 predicts token t.
  h_NxD = hidden_BxLxD[:, :-1].reshape(b * (l - 1), -1)
  y_N = tokens_BxL[:, 1:].reshape(-1).astype(jnp.int32)
  target_valid_N = target_valid_BxLm1.reshape(-1)
  w_DxV = qwen3.unembedding(params, cfg)
  temperature = jnp.asarray(temperature, jnp.float32)
  # Every implementation, "naive" (f32 [N, V] logits) included, is the kernels' one definition.
  from rl_jax.kernels.fused_logprob import api as fused  # pylint: disable=g-import-not-at-top
  compute_dtype = jnp.bfloat16 if cfg.dtype == "bfloat16" else jnp.float32
  logp_N, entropy_N = fused.fused_logprob(
      h_NxD.astype(compute_dtype), w_DxV.astype(compute_dtype), y_N, target_valid_N,
      temperature=temperature, implementation=implementation, return_entropy=True)
  logp_N = jnp.where(target_valid_N, logp_N, 0.0)
  zero_col = jnp.zeros((b, 1), jnp.float32)
  logp_BxL = jnp.concatenate([zero_col, logp_N.reshape(b, l - 1)], axis=1)
  if not return_entropy:
    return logp_BxL
  entropy_N = jnp.where(target_valid_N, entropy_N, 0.0)
  return logp_BxL, jnp.concatenate([zero_col, entropy_N.reshape(b, l - 1)], axis=1)


def packed_token_logprobs(params, packed, *, cfg: ModelConfig, implementation: str = "naive",
                          temperature: jax.Array | float = 1.0, return_entropy: bool = False):
  """`token_logprobs` of a batch through its packed rows (`rl_jax.packing.PackedRows` of one
  micro-batch): one forward over the packed rows with segment ids and per-segment positions,
  the log-prob head on the packed slots, then gathered back into the batch's [B, L] layout
  (0 where the unpacked layout has no log-prob), so everything downstream is unchanged."""
  if implementation not in IMPLEMENTATIONS:
    raise ValueError(f"unknown log-prob implementation {implementation!r}; "
                     f"valid: {IMPLEMENTATIONS}")
  segments, valid = packed.segment_ids_RxT, packed.valid_RxT.astype(bool)
  hidden_RxTxD, _ = qwen3.forward(params, packed.tokens_RxT, qwen3.packed_positions(segments),
                                  valid, cfg=cfg, segment_ids_BxT=segments)
  out = logprobs_from_hidden(params, hidden_RxTxD, packed.tokens_RxT,
                             packed.target_valid_RxT.astype(bool)[:, 1:], cfg=cfg,
                             implementation=implementation, temperature=temperature,
                             return_entropy=return_entropy)
  unpack = lambda x: packing.unpack(x, packed.unpack_index_BxL)
  return tuple(map(unpack, out)) if return_entropy else unpack(out)


@functools.partial(jax.jit, static_argnames=("cfg", "implementation"))
def reference_logprobs(params, tokens_BxL: jax.Array, valid_BxL: jax.Array, *, cfg: ModelConfig,
                       implementation: str = "naive") -> jax.Array:
  """`token_logprobs` at temperature 1, jitted: log pi_ref of a rollout for a KL term."""
  return token_logprobs(params, tokens_BxL, valid_BxL, cfg=cfg, implementation=implementation)
