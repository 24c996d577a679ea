"""Shared pytrees passed between the rollout program, the host and the update program."""
from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import struct


@struct.dataclass
class SampleKnobs:
  """Traced sampling knobs: changing them never recompiles the rollout.

  temperature: 0 means greedy (argmax); otherwise logits are divided by it.
  top_p: nucleus mass in (0, 1]; 1 disables.
  top_k: keep the k most likely tokens; 0 disables.
  """
  temperature: jax.Array
  top_p: jax.Array
  top_k: jax.Array

  @classmethod
  def create(cls, temperature: float = 1.0, top_p: float = 1.0, top_k: int = 0) -> "SampleKnobs":
    if temperature < 0:
      raise ValueError(f"temperature must be >= 0, got {temperature}")
    if not 0.0 < top_p <= 1.0:
      raise ValueError(f"top_p must be in (0, 1], got {top_p}")
    if top_k < 0:
      raise ValueError(f"top_k must be >= 0 (0 disables), got {top_k}")
    return cls(jnp.float32(temperature), jnp.float32(top_p), jnp.int32(top_k))


@struct.dataclass
class Rollout:
  """Sampled sequences, slot-aligned: slots [0, P) hold the left-padded prompt, [P, L) the response.

  tokens_BxL: prompt and response ids (pad after a stop token and in left padding).
  valid_BxL: 1 where the slot holds a real token (prompt or response), 0 for padding.
  loss_mask_BxL: 1 on response tokens the policy generated (stop token included); 0 on prompt,
    padding and tool-response tokens.
  logp_sample_BxL: log-prob of token t under the *sampling* distribution (temperature/top-p/k).
  logp_policy_BxL: log-prob of token t under the unmodified policy softmax (what the trainer
    recomputes teacher-forced: the PPO "old" log-probs). 0 where loss_mask is 0.
  response_len_B: generated tokens per row (stop token included).
  truncated_B: True where no stop token was produced within the budget.
  """
  tokens_BxL: jax.Array
  valid_BxL: jax.Array
  loss_mask_BxL: jax.Array
  logp_sample_BxL: jax.Array
  logp_policy_BxL: jax.Array
  response_len_B: jax.Array
  truncated_B: jax.Array
  prompt_len: int = struct.field(pytree_node=False, default=0)


@struct.dataclass
class Batch:
  """What the update step consumes (rewards already turned into advantages on the host).

  tokens_BxL / valid_BxL / loss_mask_BxL: as in `Rollout`.
  old_logp_BxL: sampler log-probs of the policy that generated the data.
  ref_logp_BxL: reference-policy log-probs (zeros when the KL term is off).
  advantages_B: per-sequence advantage (token-level advantages use `advantages_BxL`).
  advantages_BxL: per-token advantage, or None.
  is_weight_BxL: constant importance weights of stale samples (asynchronous RL,
    `rl_jax.algorithms.off_policy`), or None (on-policy).
  packed: the batch's packed rows (`rl_jax.packing.PackedRows`), or None: with them the update
    runs its forward pass on the packed rows and the loss on this [B, L] layout.
  """
  tokens_BxL: jax.Array
  valid_BxL: jax.Array
  loss_mask_BxL: jax.Array
  old_logp_BxL: jax.Array
  ref_logp_BxL: jax.Array
  advantages_B: jax.Array
  advantages_BxL: Any = None
  is_weight_BxL: Any = None
  packed: Any = None


@struct.dataclass
class TrainState:
  """Everything the update step changes, as one donated pytree."""
  step: jax.Array
  params: Any
  opt_state: Any
