"""The decode layout of the KV cache and the forward of one new token per row over it.

`generate` prefills with `qwen3.forward` (stacked [L, B, S, K, H] cache under the layer scan),
converts the cache once with `to_decode_cache`, then runs `decode_forward` inside its decode
loop. Why this layout: docs/benchmarks.md ("the current machine ... three fixes", item 1).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from rl_jax.models.config import ModelConfig
from rl_jax.models.qwen3 import (KVCache, Params, _attention_mask, _dtype, _merge_block,
                                 rms_norm, split_layers)


def to_decode_cache(cache: KVCache) -> tuple[tuple[jax.Array, jax.Array], ...]:
  """The stacked [L, B, S, K, H] cache as L (keys [B, K, H, S], values [B, K, S, H]) pairs.

  The decode layout (`decode_forward`): per-layer buffers, so each layer's new key and value
  are written in place into a loop carry of its own (under a layer `scan` the stacked cache is
  sliced out and stacked back, a copy of the whole cache every step), and transposed once here
  so that one-query attention reads them without a per-step relayout
  (`qwen3._one_query_attention`).
  """
  keys = jnp.transpose(cache.k_LxBxSxKxH, (0, 1, 3, 4, 2))
  values = jnp.transpose(cache.v_LxBxSxKxH, (0, 1, 3, 2, 4))
  return tuple(zip(split_layers(keys), split_layers(values)))


def decode_forward(params: Params, layer_params: tuple, tokens_Bx1: jax.Array,
                   positions_Bx1: jax.Array, kv_valid_BxS: jax.Array,
                   cache_layers: tuple[tuple[jax.Array, jax.Array], ...], slot, *,
                   cfg: ModelConfig):
  """`forward` of one new token per row on the decode-layout cache, layers unrolled.

  `layer_params` is `split_layers(params["layers"])` and `cache_layers` is
  `to_decode_cache(cache)`, both made once before the decode loop. The token at slot `slot`
  attends to the valid slots at or before it. Returns (hidden_Bx1xD after the final norm,
  updated cache_layers).
  """
  if tokens_Bx1.shape[1] != 1:
    raise ValueError(f"decode_forward takes one token per row, got {tokens_Bx1.shape[1]}")
  x = params["embed"]["embedding"][tokens_Bx1].astype(_dtype(cfg.dtype))
  mask_BxS = _attention_mask(kv_valid_BxS, 1, slot)[:, 0]
  new_cache = []
  for block_params, (keys, values) in zip(layer_params, cache_layers):
    block = _merge_block(cfg, block_params)
    x, keys, values = block.decode(x, positions_Bx1, mask_BxS, keys, values, slot)
    new_cache.append((keys, values))
  return rms_norm(x, params["final_norm"]["scale"], cfg.rms_norm_eps), tuple(new_cache)
