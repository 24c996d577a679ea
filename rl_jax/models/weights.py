"""Hugging Face Qwen3 checkpoints (safetensors) <-> rl_jax params.

Name mapping (HF -> ours; HF linear weights are [out, in], ours [in, out], so they transpose):

    model.embed_tokens.weight                      -> embed.embedding            [V, D]
    model.layers.{i}.input_layernorm.weight        -> layers.input_norm.scale    [L, D]
    model.layers.{i}.post_attention_layernorm.weight -> layers.post_attn_norm.scale
    model.layers.{i}.self_attn.{q,k,v,o}_proj.weight -> layers.attn.{q,k,v,o}_proj.kernel (T)
    model.layers.{i}.self_attn.{q,k}_norm.weight   -> layers.attn.{q,k}_norm.scale
    model.layers.{i}.mlp.{gate,up,down}_proj.weight -> layers.mlp.{gate,up,down}_proj.kernel (T)
    model.norm.weight                              -> final_norm.scale
    lm_head.weight                                 -> lm_head.kernel (T)   (untied models only)

Per-layer tensors are stacked on a leading L axis (the model scans over layers).
Only safetensors is accepted: pickle-based formats (.bin, .pt, .pth, .ckpt) can execute code on
load and are refused.
"""
from __future__ import annotations

import json
import os
from typing import Callable, Mapping

import jax
import jax.numpy as jnp
import numpy as np

from rl_jax.models import qwen3
from rl_jax.models.config import ModelConfig

_PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")

# (HF suffix inside model.layers.{i}., our path inside layers, transpose?)
_LAYER_MAP = (
    ("input_layernorm.weight", ("input_norm", "scale"), False),
    ("post_attention_layernorm.weight", ("post_attn_norm", "scale"), False),
    ("self_attn.q_proj.weight", ("attn", "q_proj", "kernel"), True),
    ("self_attn.k_proj.weight", ("attn", "k_proj", "kernel"), True),
    ("self_attn.v_proj.weight", ("attn", "v_proj", "kernel"), True),
    ("self_attn.o_proj.weight", ("attn", "o_proj", "kernel"), True),
    ("self_attn.q_norm.weight", ("attn", "q_norm", "scale"), False),
    ("self_attn.k_norm.weight", ("attn", "k_norm", "scale"), False),
    ("mlp.gate_proj.weight", ("mlp", "gate_proj", "kernel"), True),
    ("mlp.up_proj.weight", ("mlp", "up_proj", "kernel"), True),
    ("mlp.down_proj.weight", ("mlp", "down_proj", "kernel"), True),
)


def _refuse_pickle(path: str) -> None:
  if path.endswith(_PICKLE_SUFFIXES):
    raise ValueError(f"{path}: pickle-based checkpoint formats are refused (they can run code "
                     "when loaded); convert it to safetensors first")


def checkpoint_files(path: str) -> list[str]:
  """Safetensors files of a checkpoint: a file, or a folder with model.safetensors or an index."""
  _refuse_pickle(path)
  if os.path.isfile(path):
    if not path.endswith(".safetensors"):
      raise ValueError(f"{path}: expected a .safetensors file")
    return [path]
  if not os.path.isdir(path):
    raise FileNotFoundError(f"{path}: no such checkpoint file or folder")
  index = os.path.join(path, "model.safetensors.index.json")
  if os.path.exists(index):
    with open(index) as f:
      try:
        weight_map = json.load(f)["weight_map"]
      except (json.JSONDecodeError, KeyError) as e:
        raise ValueError(f"{index}: expected JSON with a 'weight_map' object ({e})") from e
    return [os.path.join(path, name) for name in sorted(set(weight_map.values()))]
  single = os.path.join(path, "model.safetensors")
  if os.path.exists(single):
    return [single]
  pickles = [n for n in os.listdir(path) if n.endswith(_PICKLE_SUFFIXES)]
  if pickles:
    raise ValueError(f"{path}: only pickle-based weights found ({pickles}); they are refused, "
                     "provide safetensors")
  raise FileNotFoundError(f"{path}: no model.safetensors or model.safetensors.index.json")


def read_hf_tensors(path: str) -> dict[str, np.ndarray]:
  """Reads every tensor of a (possibly sharded) safetensors checkpoint into numpy."""
  from safetensors.numpy import load_file  # local: optional at import time of the package
  tensors: dict[str, np.ndarray] = {}
  for file in checkpoint_files(path):
    try:
      tensors.update(load_file(file))
    except Exception as e:  # safetensors raises its own error types for corrupt headers
      raise ValueError(f"{file}: not a readable safetensors file ({e})") from e
  return tensors


def _set(tree: dict, path: tuple[str, ...], value) -> None:
  for key in path[:-1]:
    tree = tree.setdefault(key, {})
  tree[path[-1]] = value


def _get(tree: Mapping, path: tuple[str, ...]):
  for key in path:
    tree = tree[key]
  return tree


def params_from_hf(tensors: Mapping[str, np.ndarray], cfg: ModelConfig,
                   place: Callable[[tuple[str, ...], np.ndarray], jax.Array] | None = None):
  """Maps HF tensors to our params, validating names, shapes and dtypes against `cfg`.

  Args:
    tensors: HF name -> array.
    cfg: the model config the params must match.
    place: optional `(param_path, numpy_array) -> jax.Array`, e.g. `jax.device_put` with the
      target NamedSharding, so each tensor goes straight to its sharded layout.
  """
  expected = qwen3.abstract_params(cfg)
  place = place or (lambda _, a: jnp.asarray(a))
  remaining = dict(tensors)

  def take(name: str, path: tuple[str, ...], transpose: bool, shape) -> np.ndarray:
    if name not in remaining:
      raise ValueError(f"checkpoint is missing tensor {name!r} (needed for {'.'.join(path)})")
    array = np.asarray(remaining.pop(name))
    if transpose:
      array = array.T
    if tuple(array.shape) != tuple(shape):
      raise ValueError(f"tensor {name!r} has shape {array.shape} after layout conversion, "
                       f"expected {tuple(shape)} for {'.'.join(path)}")
    if not np.issubdtype(array.dtype, np.floating) and array.dtype.name != "bfloat16":
      raise ValueError(f"tensor {name!r} has dtype {array.dtype}, expected a float dtype")
    return array

  params: dict = {}
  dtype = expected["embed"]["embedding"].dtype
  emb = take("model.embed_tokens.weight", ("embed", "embedding"), False,
             expected["embed"]["embedding"].shape)
  _set(params, ("embed", "embedding"), place(("embed", "embedding"), emb.astype(dtype)))
  norm = take("model.norm.weight", ("final_norm", "scale"), False,
              expected["final_norm"]["scale"].shape)
  _set(params, ("final_norm", "scale"), place(("final_norm", "scale"), norm.astype(dtype)))
  for suffix, path, transpose in _LAYER_MAP:
    per_layer_shape = _get(expected["layers"], path).shape[1:]
    stacked = np.stack([take(f"model.layers.{i}.{suffix}", ("layers",) + path, transpose,
                             per_layer_shape) for i in range(cfg.num_layers)])
    _set(params, ("layers",) + path, place(("layers",) + path, stacked.astype(dtype)))
  if not cfg.tie_embeddings:
    head = take("lm_head.weight", ("lm_head", "kernel"), True,
                expected["lm_head"]["kernel"].shape)
    _set(params, ("lm_head", "kernel"), place(("lm_head", "kernel"), head.astype(dtype)))
  else:
    remaining.pop("lm_head.weight", None)  # some tied checkpoints also store the copy
  if remaining:
    raise ValueError(f"checkpoint has {len(remaining)} tensors the model does not use, e.g. "
                     f"{sorted(remaining)[:5]}: wrong config or architecture?")
  return params


def params_to_hf(params, cfg: ModelConfig) -> dict[str, np.ndarray]:
  """Inverse of `params_from_hf` (for exporting and for round-trip tests)."""
  out = {"model.embed_tokens.weight": np.asarray(params["embed"]["embedding"]),
         "model.norm.weight": np.asarray(params["final_norm"]["scale"])}
  for suffix, path, transpose in _LAYER_MAP:
    stacked = np.asarray(_get(params["layers"], path))
    for i in range(cfg.num_layers):
      out[f"model.layers.{i}.{suffix}"] = np.ascontiguousarray(
          stacked[i].T if transpose else stacked[i])
  if not cfg.tie_embeddings:
    out["lm_head.weight"] = np.ascontiguousarray(np.asarray(params["lm_head"]["kernel"]).T)
  return out


def load_hf_checkpoint(path: str, cfg: ModelConfig | None = None, **overrides):
  """Loads `config.json` (unless `cfg` is given) and the safetensors weights of a folder.

  Returns:
    (cfg, params).
  """
  if cfg is None:
    config_path = os.path.join(path, "config.json")
    if not os.path.exists(config_path):
      raise FileNotFoundError(f"{config_path}: missing; pass cfg= explicitly")
    with open(config_path) as f:
      try:
        cfg = ModelConfig.from_hf_config(json.load(f), **overrides)
      except json.JSONDecodeError as e:
        raise ValueError(f"{config_path}: invalid JSON ({e})") from e
  return cfg, params_from_hf(read_hf_tensors(path), cfg)
