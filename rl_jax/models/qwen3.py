"""Qwen3-style decoder in Flax NNX, used functionally.

Modules (`RMSNorm`, `Attention`, `MLP`, `Block`, `Embed`) are NNX; the model itself is a pure
function `forward(params, ...)` over a plain nested-dict pytree:

    params = {"embed": {"embedding": V x D},
              "layers": <Block params, every leaf stacked with a leading L axis>,
              "final_norm": {"scale": D},
              "lm_head": {"kernel": D x V}}          # only when embeddings are untied

With `cfg.lora_rank > 0` each targeted projection also holds LoRA adapters `lora_a`, `lora_b`
next to its kernel (`rl_jax.models.lora`).

Layers are stacked and run under `lax.scan` (one compiled block, fast compiles for 36-layer
models, and one PartitionSpec rule per weight kind). Each scan step rebuilds the NNX `Block`
with `nnx.merge(graphdef, state)`; the graphdef is cached per (hashable) `ModelConfig`.

Architecture (Qwen3, arXiv 2505.09388): pre-RMSNorm blocks, grouped-query attention with a
per-head RMSNorm on q and k before RoPE, SwiGLU MLP, no biases, tied or untied unembedding.

Sequences are laid out in *slots*: left-padded prompts occupy slots [0, P) and generated tokens
follow. `kv_valid_BxS` marks slots that hold real tokens; token positions for RoPE count only
valid slots (`positions = cumsum(valid) - 1`), so left padding does not shift positions.
"""
from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from flax import nnx

from rl_jax.models import lora
from rl_jax.models.dense import dense
from rl_jax.models.config import ModelConfig

Params = dict[str, Any]


def _dtype(name: str):
  return jnp.bfloat16 if name == "bfloat16" else jnp.float32


def rms_norm(x, scale, eps: float):
  """y = x / sqrt(mean(x^2) + eps) * scale, computed in float32 (Qwen3 uses `scale`, not 1+scale)."""
  x32 = x.astype(jnp.float32)
  y = x32 * jax.lax.rsqrt(jnp.mean(x32 * x32, axis=-1, keepdims=True) + eps)
  return (y * scale.astype(jnp.float32)).astype(x.dtype)


class RMSNorm(nnx.Module):

  def __init__(self, dim: int, *, eps: float, param_dtype):
    self.scale = nnx.Param(jnp.ones((dim,), param_dtype))
    self.eps = eps

  def __call__(self, x):
    return rms_norm(x, self.scale[...], self.eps)


class Linear(nnx.Module):
  """Bias-free dense layer with kernel [in, out] (HF stores [out, in]; the loader transposes).

  `name` in `cfg.lora_targets` with `cfg.lora_rank > 0` adds LoRA adapters `lora_a` [in, r] and
  `lora_b` [r, out] (from the `lora` rng stream, so the kernel's init is the same with or
  without them): y = x W + s (x A) B (`rl_jax.models.lora`)."""

  def __init__(self, d_in: int, d_out: int, *, cfg: ModelConfig, rngs: nnx.Rngs, name: str = ""):
    init = jax.nn.initializers.normal(stddev=d_in ** -0.5)
    self.kernel = nnx.Param(init(rngs.params(), (d_in, d_out), _dtype(cfg.param_dtype)))
    self.compute_dtype = _dtype(cfg.dtype)
    self.lora_scale = 0.0
    if cfg.lora_rank and name in cfg.lora_targets:
      a, b = lora.init_pair(rngs.lora(), d_in, d_out, cfg.lora_rank)
      self.lora_a, self.lora_b = nnx.Param(a), nnx.Param(b)
      self.lora_scale = lora.scale(cfg)

  def __call__(self, x):
    x = x.astype(self.compute_dtype)
    y = dense(x, self.kernel[...].astype(self.compute_dtype))
    if self.lora_scale:
      y = y + lora.delta(x, self.lora_a[...], self.lora_b[...], self.lora_scale)
    return y


def rope(x_BxTxNxH, positions_BxT, theta: float):
  """Rotary embedding, HF "rotate_half" convention: [x1, x2] -> [x1 c - x2 s, x2 c + x1 s]."""
  head_dim = x_BxTxNxH.shape[-1]
  inv_freq = 1.0 / (theta ** (jnp.arange(0, head_dim, 2, dtype=jnp.float32) / head_dim))
  angles_BxTxH2 = positions_BxT.astype(jnp.float32)[..., None] * inv_freq
  cos = jnp.cos(angles_BxTxH2)[:, :, None, :]
  sin = jnp.sin(angles_BxTxH2)[:, :, None, :]
  x = x_BxTxNxH.astype(jnp.float32)
  x1, x2 = jnp.split(x, 2, axis=-1)
  out = jnp.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1)
  return out.astype(x_BxTxNxH.dtype)


def _one_query_attention(q_BxKxRxH, keys_BxKxHxS, values_BxKxSxH, mask_BxS,
                         cfg: ModelConfig) -> jax.Array:
  """softmax(q k^T / sqrt(H)) v for one query per row (a decode step); returns [B, 1, N*H].

  The keys lie as [B, K, H, S] and the values as [B, K, S, H], so both products reduce over a
  non-minor axis and XLA CPU vectorises them along the minor one (S for the scores, H for the
  output): each buffer is read once, in place. With the prefill layout [B, S, K, H], XLA CPU
  first copied every layer's keys and values to [B, K, S, H] on every decode step and then ran
  B*K tiny matmuls, 2.5-3x slower per layer (docs/benchmarks.md).
  """
  b = q_BxKxRxH.shape[0]
  q = q_BxKxRxH.astype(jnp.float32)
  scores_BxKxRxS = jnp.sum(q[..., None] * keys_BxKxHxS.astype(jnp.float32)[:, :, None],
                           axis=3) * (cfg.head_dim ** -0.5)
  scores_BxKxRxS = jnp.where(mask_BxS[:, None, None, :], scores_BxKxRxS,
                             jnp.finfo(jnp.float32).min)
  probs_BxKxRxS = jax.nn.softmax(scores_BxKxRxS, axis=-1)
  out_BxKxRxH = jnp.sum(probs_BxKxRxS[..., None]
                        * values_BxKxSxH.astype(jnp.float32)[:, :, None], axis=3)
  return out_BxKxRxH.astype(values_BxKxSxH.dtype).reshape(b, 1, cfg.num_heads * cfg.head_dim)


class Attention(nnx.Module):
  """Grouped-query attention with q/k RMSNorm, RoPE and an optional slot-indexed KV cache."""

  def __init__(self, cfg: ModelConfig, *, rngs: nnx.Rngs):
    d, h, k, hd = cfg.hidden_size, cfg.num_heads, cfg.num_kv_heads, cfg.head_dim
    self.q_proj = Linear(d, h * hd, cfg=cfg, rngs=rngs, name="q_proj")
    self.k_proj = Linear(d, k * hd, cfg=cfg, rngs=rngs, name="k_proj")
    self.v_proj = Linear(d, k * hd, cfg=cfg, rngs=rngs, name="v_proj")
    self.o_proj = Linear(h * hd, d, cfg=cfg, rngs=rngs, name="o_proj")
    pdt = _dtype(cfg.param_dtype)
    self.q_norm = RMSNorm(hd, eps=cfg.rms_norm_eps, param_dtype=pdt)
    self.k_norm = RMSNorm(hd, eps=cfg.rms_norm_eps, param_dtype=pdt)
    self.cfg = cfg

  def _project(self, x_BxTxD, positions_BxT):
    """q [B, T, N, H], k and v [B, T, K, H]: projections, q/k norms and RoPE."""
    cfg = self.cfg
    b, t, _ = x_BxTxD.shape
    q = self.q_norm(self.q_proj(x_BxTxD).reshape(b, t, cfg.num_heads, cfg.head_dim))
    k = self.k_norm(self.k_proj(x_BxTxD).reshape(b, t, cfg.num_kv_heads, cfg.head_dim))
    v = self.v_proj(x_BxTxD).reshape(b, t, cfg.num_kv_heads, cfg.head_dim)
    return rope(q, positions_BxT, cfg.rope_theta), rope(k, positions_BxT, cfg.rope_theta), v

  def __call__(self, x_BxTxD, positions_BxT, mask_BxTxS, k_cache_BxSxKxH=None,
               v_cache_BxSxKxH=None, slot_start=None):
    cfg = self.cfg
    b, t, _ = x_BxTxD.shape
    q, k, v = self._project(x_BxTxD, positions_BxT)
    if k_cache_BxSxKxH is not None:
      # Write this chunk's keys/values at slots [slot_start, slot_start + T), attend to all S.
      k = jax.lax.dynamic_update_slice_in_dim(k_cache_BxSxKxH, k.astype(k_cache_BxSxKxH.dtype),
                                              slot_start, axis=1)
      v = jax.lax.dynamic_update_slice_in_dim(v_cache_BxSxKxH, v.astype(v_cache_BxSxKxH.dtype),
                                              slot_start, axis=1)
    rep = cfg.num_heads // cfg.num_kv_heads
    q_BxTxKxRxH = q.reshape(b, t, cfg.num_kv_heads, rep, cfg.head_dim)
    scores = jnp.einsum("btkrh,bskh->bkrts", q_BxTxKxRxH, k.astype(q.dtype),
                        preferred_element_type=jnp.float32) * (cfg.head_dim ** -0.5)
    # A finite fill keeps fully-masked rows (left-pad queries) finite; they are never used.
    scores = jnp.where(mask_BxTxS[:, None, None, :, :], scores, jnp.finfo(jnp.float32).min)
    probs = jax.nn.softmax(scores, axis=-1).astype(v.dtype)
    out = jnp.einsum("bkrts,bskh->btkrh", probs, v).reshape(b, t, cfg.num_heads * cfg.head_dim)
    return self.o_proj(out), k, v

  def decode(self, x_Bx1xD, positions_Bx1, mask_BxS, k_cache_BxKxHxS, v_cache_BxKxSxH, slot):
    """One new token per row against the decode-layout cache (`decode.to_decode_cache`).

    Writes the token's key into column `slot` of the keys [B, K, H, S] and its value into row
    `slot` of the values [B, K, S, H], then attends with `_one_query_attention`. Returns
    (output [B, 1, D], keys, values).
    """
    cfg = self.cfg
    b = x_Bx1xD.shape[0]
    q, k, v = self._project(x_Bx1xD, positions_Bx1)
    keys = jax.lax.dynamic_update_slice_in_dim(
        k_cache_BxKxHxS, k[:, 0, :, :, None].astype(k_cache_BxKxHxS.dtype), slot, axis=3)
    values = jax.lax.dynamic_update_slice_in_dim(
        v_cache_BxKxSxH, v.transpose(0, 2, 1, 3).astype(v_cache_BxKxSxH.dtype), slot, axis=2)
    q_BxKxRxH = q[:, 0].reshape(b, cfg.num_kv_heads, cfg.num_heads // cfg.num_kv_heads,
                                cfg.head_dim)
    out = _one_query_attention(q_BxKxRxH, keys, values, mask_BxS, cfg)
    return self.o_proj(out), keys, values


class MLP(nnx.Module):
  """SwiGLU: down(silu(gate(x)) * up(x))."""

  def __init__(self, cfg: ModelConfig, *, rngs: nnx.Rngs):
    self.gate_proj = Linear(cfg.hidden_size, cfg.intermediate_size, cfg=cfg, rngs=rngs,
                            name="gate_proj")
    self.up_proj = Linear(cfg.hidden_size, cfg.intermediate_size, cfg=cfg, rngs=rngs,
                          name="up_proj")
    self.down_proj = Linear(cfg.intermediate_size, cfg.hidden_size, cfg=cfg, rngs=rngs,
                            name="down_proj")

  def __call__(self, x):
    return self.down_proj(jax.nn.silu(self.gate_proj(x)) * self.up_proj(x))


class Block(nnx.Module):
  """Pre-norm decoder block: x + attn(norm(x)); x + mlp(norm(x))."""

  def __init__(self, cfg: ModelConfig, *, rngs: nnx.Rngs):
    pdt = _dtype(cfg.param_dtype)
    self.input_norm = RMSNorm(cfg.hidden_size, eps=cfg.rms_norm_eps, param_dtype=pdt)
    self.attn = Attention(cfg, rngs=rngs)
    self.post_attn_norm = RMSNorm(cfg.hidden_size, eps=cfg.rms_norm_eps, param_dtype=pdt)
    self.mlp = MLP(cfg, rngs=rngs)

  def __call__(self, x, positions_BxT, mask_BxTxS, k_cache=None, v_cache=None, slot_start=None):
    attn_out, k, v = self.attn(self.input_norm(x), positions_BxT, mask_BxTxS, k_cache, v_cache,
                               slot_start)
    x = x + attn_out.astype(x.dtype)
    x = x + self.mlp(self.post_attn_norm(x)).astype(x.dtype)
    return x, k, v

  def decode(self, x, positions_Bx1, mask_BxS, keys, values, slot):
    """`__call__` for one new token per row on the decode-layout cache (`Attention.decode`)."""
    attn_out, keys, values = self.attn.decode(self.input_norm(x), positions_Bx1, mask_BxS, keys,
                                              values, slot)
    x = x + attn_out.astype(x.dtype)
    x = x + self.mlp(self.post_attn_norm(x)).astype(x.dtype)
    return x, keys, values


class Embed(nnx.Module):

  def __init__(self, cfg: ModelConfig, *, rngs: nnx.Rngs):
    # HF Qwen3's initializer_range: with tied embeddings a unit-variance table would give
    # initial logits of order sqrt(D) and a near-deterministic untrained policy.
    init = jax.nn.initializers.normal(stddev=0.02)
    self.embedding = nnx.Param(
        init(rngs.params(), (cfg.vocab_size, cfg.hidden_size), _dtype(cfg.param_dtype)))


class KVCache(NamedTuple):
  """Stacked per-layer cache: k/v [L, B, S, K, H] plus which slots hold real tokens."""
  k_LxBxSxKxH: jax.Array
  v_LxBxSxKxH: jax.Array


def init_cache(cfg: ModelConfig, batch: int, num_slots: int) -> KVCache:
  shape = (cfg.num_layers, batch, num_slots, cfg.num_kv_heads, cfg.head_dim)
  dt = _dtype(cfg.dtype)
  return KVCache(jnp.zeros(shape, dt), jnp.zeros(shape, dt))


@functools.lru_cache(maxsize=None)
def _block_graphdef(cfg: ModelConfig):
  graphdef, state = nnx.split(nnx.eval_shape(lambda: Block(cfg, rngs=nnx.Rngs(0))))
  return graphdef, state


def _merge_block(cfg: ModelConfig, block_params: Params) -> Block:
  graphdef, abstract_state = _block_graphdef(cfg)
  state = jax.tree.map(lambda x: x, abstract_state)  # fresh copy; replace_by_pure_dict mutates
  nnx.replace_by_pure_dict(state, block_params)
  return nnx.merge(graphdef, state)


def init_params(cfg: ModelConfig, key: jax.Array) -> Params:
  """Random parameters (normal(0, fan_in^-1/2) kernels, unit norms) as a plain nested dict."""
  embed_key, layers_key, head_key = jax.random.split(key, 3)

  def one_block(k):
    rngs = nnx.Rngs(params=k, lora=jax.random.fold_in(k, 1))  # lora: adapters (if any)
    return nnx.to_pure_dict(nnx.state(Block(cfg, rngs=rngs), nnx.Param))

  params = {
      "embed": nnx.to_pure_dict(nnx.state(Embed(cfg, rngs=nnx.Rngs(params=embed_key)))),
      "layers": jax.vmap(one_block)(jax.random.split(layers_key, cfg.num_layers)),
      "final_norm": {"scale": jnp.ones((cfg.hidden_size,), _dtype(cfg.param_dtype))},
  }
  if not cfg.tie_embeddings:
    init = jax.nn.initializers.normal(stddev=cfg.hidden_size ** -0.5)
    params["lm_head"] = {"kernel": init(head_key, (cfg.hidden_size, cfg.vocab_size),
                                        _dtype(cfg.param_dtype))}
  return params


def abstract_params(cfg: ModelConfig) -> Params:
  """Shapes/dtypes of `init_params` without allocating (for planning and loading)."""
  return jax.eval_shape(functools.partial(init_params, cfg), jax.random.key(0))


def unembedding(params: Params, cfg: ModelConfig) -> jax.Array:
  """The D x V unembedding matrix (transposed embedding when tied)."""
  if cfg.tie_embeddings:
    return params["embed"]["embedding"].T
  return params["lm_head"]["kernel"]


def positions_from_mask(valid_BxS: jax.Array) -> jax.Array:
  """RoPE positions that skip left padding: position of slot s = #valid slots before s."""
  return jnp.maximum(jnp.cumsum(valid_BxS.astype(jnp.int32), axis=-1) - 1, 0)


def packed_positions(segment_ids_BxT: jax.Array) -> jax.Array:
  """RoPE positions of packed rows: 0, 1, ... from the start of each segment (a segment is a
  maximal run of equal ids), so a packed document gets the positions it would have alone."""
  t = segment_ids_BxT.shape[1]
  index_T = jnp.arange(t)
  starts_BxT = jnp.concatenate([jnp.ones_like(segment_ids_BxT[:, :1], bool),
                                segment_ids_BxT[:, 1:] != segment_ids_BxT[:, :-1]], axis=1)
  start_index_BxT = jax.lax.cummax(jnp.where(starts_BxT, index_T[None], 0), axis=1)
  return (index_T[None] - start_index_BxT).astype(jnp.int32)


def _attention_mask(kv_valid_BxS: jax.Array, t: int, slot_start,
                    attend_BxTxS: jax.Array | None = None) -> jax.Array:
  """[B, T, S]: query slot slot_start + i sees valid slots at or before it (causal + padding),
  and, when `attend_BxTxS` is given, only those of them where it is True."""
  query_slot_T = slot_start + jnp.arange(t)
  causal_TxS = jnp.arange(kv_valid_BxS.shape[1])[None, :] <= query_slot_T[:, None]
  mask_BxTxS = causal_TxS[None] & kv_valid_BxS[:, None, :].astype(bool)
  if attend_BxTxS is None:
    return mask_BxTxS
  return mask_BxTxS & attend_BxTxS.astype(bool)


def forward(params: Params, tokens_BxT: jax.Array, positions_BxT: jax.Array,
            kv_valid_BxS: jax.Array, *, cfg: ModelConfig, cache: KVCache | None = None,
            slot_start: jax.Array | int = 0, attend_BxTxS: jax.Array | None = None,
            segment_ids_BxT: jax.Array | None = None) -> tuple[jax.Array, KVCache | None]:
  """Runs the decoder on T tokens occupying slots [slot_start, slot_start + T).

  Without a cache, S == T and the tokens are the whole sequence. With a cache of S slots, keys
  and values of the new tokens are written into it and queries attend to every valid earlier slot.

  `attend_BxTxS` (optional, bool): query i may attend to slot j only where it is True, on top of
  the causal and padding mask. Several sequences that share a prefix then run in one pass, e.g.
  probe segments appended after a response, each seeing only its own prefix and itself (SWAP's
  step-prefix probes, `rl_jax.algorithms.swap`); the caller gives each segment its positions.
  None (the default) is the plain causal forward, unchanged.

  `segment_ids_BxT` (optional, int, no cache only): packed rows. Several documents or responses
  share a row; query i attends to slot j only where segment_ids[i] == segment_ids[j], so no
  token sees across a boundary. The caller restarts positions at each segment
  (`packed_positions`); with both, each segment's hidden states equal those of the segment run
  alone (tests/models/qwen3_packing_test.py).

  Returns:
    (hidden_BxTxD after the final norm, updated cache or None). Use `logits` or the fused
    log-prob kernel on the hidden states; keeping them separate avoids an f32[B, T, V] tensor.
  """
  b, t = tokens_BxT.shape
  num_slots = kv_valid_BxS.shape[1]
  if cache is None and num_slots != t:
    raise ValueError(f"without a cache kv_valid must cover the T={t} tokens, got S={num_slots}")
  compute_dtype = _dtype(cfg.dtype)
  x = params["embed"]["embedding"][tokens_BxT].astype(compute_dtype)
  if segment_ids_BxT is not None:
    if cache is not None:
      raise ValueError("segment_ids_BxT packs rows for a cache-free forward; got a cache")
    same_BxTxT = segment_ids_BxT[:, :, None] == segment_ids_BxT[:, None, :]
    attend_BxTxS = same_BxTxT if attend_BxTxS is None else attend_BxTxS.astype(bool) & same_BxTxT
  mask_BxTxS = _attention_mask(kv_valid_BxS, t, slot_start, attend_BxTxS)

  def layer(x, scanned):
    block_params, k_cache, v_cache = scanned
    block = _merge_block(cfg, block_params)
    x, k, v = block(x, positions_BxT, mask_BxTxS, k_cache, v_cache, slot_start)
    return x, (k, v) if cache is not None else None

  if cache is None:
    if cfg.remat != "none":
      policy = (jax.checkpoint_policies.dots_with_no_batch_dims_saveable if cfg.remat == "dots"
                else None)
      layer = jax.checkpoint(layer, policy=policy, prevent_cse=False)  # prevent_cse: under scan
    x, _ = jax.lax.scan(layer, x, (params["layers"], None, None), unroll=cfg.scan_unroll)
    new_cache = None
  else:
    x, (k_new, v_new) = jax.lax.scan(layer, x, (params["layers"], cache.k_LxBxSxKxH,
                                                cache.v_LxBxSxKxH), unroll=cfg.scan_unroll)
    new_cache = KVCache(k_new, v_new)
  return rms_norm(x, params["final_norm"]["scale"], cfg.rms_norm_eps), new_cache


def split_layers(tree) -> tuple:
  """The per-layer slices of a pytree whose leaves are stacked on a leading L axis."""
  num_layers = jax.tree.leaves(tree)[0].shape[0]
  return tuple(jax.tree.map(lambda x, l=l: x[l], tree) for l in range(num_layers))


def logits(params: Params, hidden_BxTxD: jax.Array, *, cfg: ModelConfig) -> jax.Array:
  """f32 logits of the hidden states (materialises [B, T, V]; prefer fused log-probs in training)."""
  w_DxV = unembedding(params, cfg)
  return jnp.einsum("btd,dv->btv", hidden_BxTxD.astype(_dtype(cfg.dtype)),
                    w_DxV.astype(_dtype(cfg.dtype)), preferred_element_type=jnp.float32)
