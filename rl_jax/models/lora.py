"""LoRA adapters for the functional Qwen3 model: init, trainable / frozen split, merge, export.

LoRA (Hu et al. 2021, arXiv 2106.09685) freezes a projection's kernel W [in, out] and learns a
low-rank update: the projection computes

    y = x W + s (x A) B,     A [in, r], B [r, out], s = lora_alpha / lora_rank

with A ~ N(0, 1/in) and B = 0, so training starts exactly at the base model (§4.1 of the paper).
`ModelConfig.lora_rank > 0` switches it on for the `lora_targets` projections (attention q, k, v,
o and MLP gate, up, down by default). The adapters live in the same nested-dict params as the
base weights, next to the kernel they adapt and stacked over layers like it:

    params["layers"]["attn"]["q_proj"] = {"kernel": [L, D, H*Hd],    # frozen, param_dtype
                                          "lora_a": [L, D, r],       # trained, float32
                                          "lora_b": [L, r, H*Hd]}    # trained, float32

so everything that takes params (the sampler, log-probs, checkpoints, the eval hook) runs the
adapted model unchanged, and `rl_jax.sharding.PARAM_RULES` shards each adapter like its kernel
on the non-rank dim. Adapters are float32 whatever the base dtype: Adam's small updates of a
bf16 adapter would round away, and they are ~1% of the weights.

*Only adapters are trained when params carry them* (one rule, read from the params tree, so the
RL, SFT / pretrain and preference stages need no flag): `rl_jax.update.accumulate_gradients`
differentiates `trainable(params)` only (the base gets no gradient at all, not a zero one) and
`rl_jax.optim.make_optimizer` keeps Adam state for `trainable(params)` only.

The *reference policy* of a KL term is the base model with the adapters off: `base(params, cfg)`
drops the adapter leaves (the base arrays are shared, not copied) and returns the config without
LoRA, so no second copy of the weights exists (`rl_jax.stages.rl`).

Export: `merge` folds s A B into W (computed in float32, then cast to the kernel dtype), giving a
plain Qwen3 tree that `rl_jax.models.weights.save_hf_checkpoint` writes as HF safetensors (it
merges automatically); `save_peft_adapter` writes the adapters alone in the PEFT layout
(`adapter_model.safetensors` + `adapter_config.json`).

Why not qwix: qwix's LoRA (`qwix.apply_lora_to_model`) rewrites a live NNX module *instance*:
it runs the model once, intercepts the dot_generals of the modules it matches and attaches
`nnx.LoRAParam`s to them. This model is a pure function of a plain dict: each `lax.scan` step
rebuilds a `Block` from a cached graphdef (`qwen3._merge_block`), so there is no persistent
module to rewrite, and the adapters must be leaves of the params dict anyway (sharding rules,
checkpoints, the sampler's and the reference's programs). The few lines here do exactly that,
with no new dependency.
"""
from __future__ import annotations

import json
import os
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from rl_jax.models.config import ModelConfig

ADAPTER_LEAVES = ("lora_a", "lora_b")
# Where each projection sits inside params["layers"], and its HF module path.
PROJECTION_PATHS = {"q_proj": ("attn", "q_proj"), "k_proj": ("attn", "k_proj"),
                    "v_proj": ("attn", "v_proj"), "o_proj": ("attn", "o_proj"),
                    "gate_proj": ("mlp", "gate_proj"), "up_proj": ("mlp", "up_proj"),
                    "down_proj": ("mlp", "down_proj")}
HF_MODULES = {"attn": "self_attn", "mlp": "mlp"}
ADAPTER_DTYPE = jnp.float32


def scale(cfg: ModelConfig) -> float:
  """s = lora_alpha / lora_rank (0 without LoRA)."""
  return cfg.lora_alpha / cfg.lora_rank if cfg.lora_rank else 0.0


def init_pair(key: jax.Array, d_in: int, d_out: int, rank: int) -> tuple[jax.Array, jax.Array]:
  """(A [in, r] ~ N(0, 1/in), B [r, out] = 0): the adapted projection starts equal to the base."""
  a = jax.random.normal(key, (d_in, rank), ADAPTER_DTYPE) * d_in ** -0.5
  return a, jnp.zeros((rank, d_out), ADAPTER_DTYPE)


def delta(x_BxTxI: jax.Array, a_IxR: jax.Array, b_RxO: jax.Array, s: float) -> jax.Array:
  """s (x A) B in x's (compute) dtype: the adapter's addition to x W."""
  xa = jnp.dot(x_BxTxI, a_IxR.astype(x_BxTxI.dtype))
  return jnp.dot(xa, b_RxO.astype(x_BxTxI.dtype)) * jnp.asarray(s, x_BxTxI.dtype)


def _is_adapter(path) -> bool:
  last = path[-1]
  return getattr(last, "key", None) in ADAPTER_LEAVES


def has_adapters(params) -> bool:
  """Whether the params tree carries LoRA adapter leaves."""
  return any(_is_adapter(p) for p, _ in jax.tree_util.tree_leaves_with_path(params))


def _filter(tree, keep):
  """The nested dict of `tree` restricted to the leaves where keep(key) is True (empty dicts
  dropped)."""
  out = {}
  for k, v in tree.items():
    if isinstance(v, dict):
      sub = _filter(v, keep)
      if sub:
        out[k] = sub
    elif keep(k):
      out[k] = v
  return out


def adapters(params) -> dict:
  """The adapter leaves of `params` as a nested dict with the same paths (empty without LoRA)."""
  return _filter(params, lambda k: k in ADAPTER_LEAVES)


def trainable(params):
  """What the optimizer trains: the adapters when params carry them, else all params."""
  return adapters(params) if has_adapters(params) else params


def combine(trained, params):
  """`params` with the leaves of `trained` (a `trainable(params)`-shaped tree) put back in.

  Without adapters `trained` is the whole tree and is returned as is."""
  if not has_adapters(params):
    return trained

  def put(base, new):
    out = dict(base)
    for k, v in new.items():
      out[k] = put(base[k], v) if isinstance(v, dict) else v
    return out
  return put(params, trained)


def base(params, cfg: ModelConfig):
  """(params without adapters, cfg without LoRA): the base model with the adapters off. The
  base arrays are the same objects (no copy)."""
  return _filter(params, lambda k: k not in ADAPTER_LEAVES), cfg.replace(lora_rank=0)


def add_adapters(params, cfg: ModelConfig, key: jax.Array):
  """Base params (e.g. a loaded HF checkpoint) + fresh adapters for `cfg` (B = 0, so the model
  is unchanged). Layer l of projection p uses `fold_in(fold_in(key, index of p), l)`."""
  if not cfg.lora_rank:
    return params
  if has_adapters(params):
    raise ValueError("add_adapters: params already carry LoRA adapters")
  out = jax.tree.map(lambda x: x, params)  # new dicts, same arrays
  for i, name in enumerate(cfg.lora_targets):
    node = out["layers"]
    for k in PROJECTION_PATHS[name]:
      node = node[k]
    num_layers, d_in, d_out = node["kernel"].shape
    keys = jax.random.split(jax.random.fold_in(key, i), num_layers)
    node["lora_a"], node["lora_b"] = jax.vmap(
        lambda k, d_in=d_in, d_out=d_out: init_pair(k, d_in, d_out, cfg.lora_rank))(keys)
  return out


def merge(params, cfg: ModelConfig):
  """(params with W + s A B in every adapted kernel and no adapters, cfg without LoRA).

  The product is computed in float32 and cast to the kernel's dtype: exact up to that one
  rounding (in float32 the merged model's logits equal base + adapters to ~1e-6,
  tests/models/lora_test.py)."""
  if not has_adapters(params):
    return params, cfg.replace(lora_rank=0)
  s = scale(cfg)
  base_params, base_cfg = base(params, cfg)
  merged = jax.tree.map(lambda x: x, base_params)
  for name in cfg.lora_targets:
    src, dst = params["layers"], merged["layers"]
    for k in PROJECTION_PATHS[name]:
      src, dst = src[k], dst[k]
    w = src["kernel"]
    d = jnp.einsum("lir,lro->lio", src["lora_a"].astype(jnp.float32),
                   src["lora_b"].astype(jnp.float32), precision=jax.lax.Precision.HIGHEST)
    dst["kernel"] = (w.astype(jnp.float32) + s * d).astype(w.dtype)
  return merged, base_cfg


def peft_tensors(params, cfg: ModelConfig) -> dict[str, np.ndarray]:
  """The adapters in the PEFT layout: `base_model.model.model.layers.{i}.self_attn.q_proj.
  lora_A.weight` [r, in] and `...lora_B.weight` [out, r] (torch Linear is [out, in])."""
  out = {}
  layers = jax.device_get(params["layers"])
  for name in cfg.lora_targets:
    group, proj = PROJECTION_PATHS[name]
    node = layers[group][proj]
    for i in range(cfg.num_layers):
      prefix = f"base_model.model.model.layers.{i}.{HF_MODULES[group]}.{proj}"
      out[f"{prefix}.lora_A.weight"] = np.ascontiguousarray(np.asarray(node["lora_a"][i]).T)
      out[f"{prefix}.lora_B.weight"] = np.ascontiguousarray(np.asarray(node["lora_b"][i]).T)
  return out


def peft_config(cfg: ModelConfig, base_model: str = "") -> dict[str, Any]:
  """The `adapter_config.json` of a PEFT LoRA adapter for these settings."""
  return {"peft_type": "LORA", "task_type": "CAUSAL_LM", "r": cfg.lora_rank,
          "lora_alpha": cfg.lora_alpha, "lora_dropout": 0.0, "bias": "none",
          "target_modules": list(cfg.lora_targets), "fan_in_fan_out": False,
          "base_model_name_or_path": base_model}


def save_peft_adapter(path: str, params, cfg: ModelConfig, base_model: str = "") -> None:
  """Writes `adapter_model.safetensors` and `adapter_config.json` (PEFT layout) to `path`."""
  from safetensors.numpy import save_file  # pylint: disable=g-import-not-at-top
  if not has_adapters(params):
    raise ValueError("save_peft_adapter: params carry no LoRA adapters (model.overrides."
                     "lora_rank is 0)")
  os.makedirs(path, exist_ok=True)
  save_file(peft_tensors(params, cfg), os.path.join(path, "adapter_model.safetensors"),
            metadata={"format": "pt"})
  with open(os.path.join(path, "adapter_config.json"), "w", encoding="utf-8") as f:
    json.dump(peft_config(cfg, base_model), f, indent=1)
