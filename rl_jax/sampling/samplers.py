"""Per-token sampling: temperature, top-k, top-p (nucleus) and greedy, all with traced knobs.

Every knob is a traced scalar so one compiled decode loop serves any setting (a sweep over
temperatures does not recompile). Greedy is `temperature == 0`, selected with `jnp.where`.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from rl_jax.types import SampleKnobs

_NEG = -1e30  # finite "minus infinity": keeps log_softmax finite on filtered-out tokens


def filter_logits(logits_BxV: jax.Array, knobs: SampleKnobs) -> jax.Array:
  """Applies temperature, then top-k, then top-p; filtered tokens get a very negative logit.

  top-k keeps tokens whose logit is >= the k-th largest (ties at the boundary are kept).
  top-p keeps the smallest prefix of the sorted distribution whose mass reaches top_p
  (the most likely token is always kept).
  """
  logits = logits_BxV.astype(jnp.float32)
  vocab = logits.shape[-1]
  safe_temperature = jnp.where(knobs.temperature > 0, knobs.temperature, 1.0)
  logits = logits / safe_temperature
  sorted_desc_BxV = -jnp.sort(-logits, axis=-1)
  # top-k: threshold at the k-th largest logit (k = 0 disables).
  k = jnp.clip(knobs.top_k, 1, vocab)
  kth_B = jnp.take_along_axis(sorted_desc_BxV, jnp.broadcast_to(k - 1, logits.shape[:-1])[..., None],
                              axis=-1)
  keep_k = jnp.where(knobs.top_k > 0, logits >= kth_B, True)
  logits = jnp.where(keep_k, logits, _NEG)
  sorted_desc_BxV = jnp.where(jnp.arange(vocab) < jnp.where(knobs.top_k > 0, k, vocab),
                              sorted_desc_BxV, _NEG)
  # top-p on the (already top-k filtered) sorted distribution.
  probs_sorted = jax.nn.softmax(sorted_desc_BxV, axis=-1)
  mass_before = jnp.cumsum(probs_sorted, axis=-1) - probs_sorted
  kept_sorted = mass_before < knobs.top_p
  kept_sorted = kept_sorted.at[..., 0].set(True)
  min_kept_logit = jnp.min(jnp.where(kept_sorted, sorted_desc_BxV, jnp.inf), axis=-1,
                           keepdims=True)
  return jnp.where(logits >= min_kept_logit, logits, _NEG)


def _temperature_only(logits_BxV: jax.Array, knobs: SampleKnobs) -> jax.Array:
  """`filter_logits` with top-k and top-p off: the tempered logits alone (no sort)."""
  safe_temperature = jnp.where(knobs.temperature > 0, knobs.temperature, 1.0)
  return logits_BxV.astype(jnp.float32) / safe_temperature


def sample_token(logits_BxV: jax.Array, key: jax.Array, knobs: SampleKnobs):
  """Draws one token per row.

  Returns:
    token_B, logp_sample_B (log-prob under the filtered sampling distribution; 0 for greedy),
    logp_policy_B (log-prob under the unmodified softmax of `logits_BxV`).
  """
  # The sort behind top-k / top-p costs ~9x the rest of a sampling step on CPU ([128, 2292]:
  # 76 ms vs 8 ms, bench/sampler_filter.py): skip it when neither filter is on. The knobs stay
  # traced (one compiled program for every setting); under vmap the cond becomes a select.
  filters_on = (knobs.top_k > 0) | (knobs.top_p < 1.0)
  filtered = jax.lax.cond(filters_on, filter_logits, _temperature_only, logits_BxV, knobs)
  sampled = jax.random.categorical(key, filtered, axis=-1)
  greedy = jnp.argmax(logits_BxV, axis=-1)
  token_B = jnp.where(knobs.temperature > 0, sampled, greedy).astype(jnp.int32)
  logp_sample = jnp.take_along_axis(jax.nn.log_softmax(filtered, axis=-1), token_B[:, None],
                                    axis=-1)[:, 0]
  logp_sample = jnp.where(knobs.temperature > 0, logp_sample, 0.0)
  logp_policy = jnp.take_along_axis(jax.nn.log_softmax(logits_BxV.astype(jnp.float32), axis=-1),
                                    token_B[:, None], axis=-1)[:, 0]
  return token_B, logp_sample, logp_policy
