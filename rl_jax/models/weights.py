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

Per-layer tensors are stacked on a leading L axis (the model scans over layers). LoRA adapters
are merged into the kernels on export (`rl_jax.models.lora`).
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

from rl_jax.models import lora, qwen3
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
  """Inverse of `params_from_hf` (for exporting and for round-trip tests). LoRA adapters, if
  params carry them, are merged into their kernels first (`lora.merge`): the HF layout has no
  place for them (`lora.save_peft_adapter` writes them separately)."""
  params, cfg = lora.merge(params, cfg)
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


QWEN3_ARCHITECTURE = "Qwen3ForCausalLM"
QWEN3_MODEL_TYPE = "qwen3"


def check_qwen3_config(hf: Mapping, where: str) -> None:
  """Raises ValueError if an HF config says it is not a Qwen3 dense decoder.

  Why: other decoders (Mixtral, Qwen3-MoE, Qwen2, Llama...) share most tensor names and
  config keys, so their config.json builds a ModelConfig without complaint; the only model
  implemented here is Qwen3, and loading anything else must fail before any tensor is read.

  Decision: `architectures` and `model_type` are checked only when present (and not null).
  Old or hand-written configs often carry only the shape keys; they still load, because every
  tensor is then validated by name and shape against the config (`params_from_hf`).
  """
  found = []
  architectures = hf.get("architectures")
  if architectures is not None and (
      not isinstance(architectures, list) or not architectures
      or any(a != QWEN3_ARCHITECTURE for a in architectures)):
    found.append(f"architectures {architectures!r}")
  model_type = hf.get("model_type")
  if model_type is not None and model_type != QWEN3_MODEL_TYPE:
    found.append(f"model_type {model_type!r}")
  if found:
    raise ValueError(f"{where}: not a Qwen3 checkpoint: found {' and '.join(found)}; expected "
                     f"architectures [{QWEN3_ARCHITECTURE!r}] and model_type "
                     f"{QWEN3_MODEL_TYPE!r} (or neither key), the only model rl_jax implements")


def read_hf_config(config_path: str) -> dict:
  """The parsed `config.json` of a Qwen3 checkpoint (a JSON object, checked by
  `check_qwen3_config`); errors name the file."""
  with open(config_path) as f:
    try:
      hf = json.load(f)
    except json.JSONDecodeError as e:
      raise ValueError(f"{config_path}: invalid JSON ({e})") from e
  if not isinstance(hf, dict):
    raise ValueError(f"{config_path}: got a JSON {type(hf).__name__}; expected an object of "
                     "Hugging Face config keys")
  check_qwen3_config(hf, config_path)
  return hf


# Checkpoints shipped in the package (rl_jax/data/assets/checkpoints/<name>/, README there),
# loadable by name wherever a checkpoint folder is expected (`model.hf_checkpoint`).
BUNDLED_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data",
                           "assets", "checkpoints")
BUNDLED = ("arith_tiny_sft", "swap_tiny_sft")


def resolve_checkpoint(path: str) -> str:
  """A bundled checkpoint's name -> its folder; any other string is a path, returned as is."""
  return os.path.join(BUNDLED_DIR, path) if path in BUNDLED else path


def load_hf_checkpoint(path: str, cfg: ModelConfig | None = None, *,
                       adapter_key: jax.Array | None = None, **overrides):
  """Loads `config.json` (unless `cfg` is given) and the safetensors weights of a folder (or of
  a bundled checkpoint by name: `BUNDLED`).

  A config.json naming another architecture or model_type than Qwen3 is refused
  (`check_qwen3_config`). With `cfg` given, config.json is not read; the tensors are still
  validated by name and shape against `cfg`. With `cfg.lora_rank > 0` (e.g. the override
  `lora_rank=16`) the loaded weights are the frozen base and fresh LoRA adapters are added
  (`lora.add_adapters` with `adapter_key`, default key(0); B = 0, so the model is unchanged).

  Returns:
    (cfg, params).
  """
  path = resolve_checkpoint(path)
  if cfg is None:
    config_path = os.path.join(path, "config.json")
    if not os.path.exists(config_path):
      raise FileNotFoundError(f"{config_path}: missing; pass cfg= explicitly")
    cfg = ModelConfig.from_hf_config(read_hf_config(config_path), **overrides)
  params = params_from_hf(read_hf_tensors(path), cfg.replace(lora_rank=0))
  if cfg.lora_rank:
    params = lora.add_adapters(params, cfg, jax.random.key(0) if adapter_key is None
                               else adapter_key)
  return cfg, params


def save_hf_checkpoint(path: str, params, cfg: ModelConfig) -> None:
  """Writes `config.json` and `model.safetensors` (Hugging Face Qwen3 layout) to folder `path`,
  loadable by `load_hf_checkpoint` (and by `transformers`' Qwen3ForCausalLM). LoRA adapters
  are merged into the base weights first (`lora.merge`); the config written is the base's."""
  from safetensors.numpy import save_file  # pylint: disable=g-import-not-at-top
  os.makedirs(path, exist_ok=True)
  params, cfg = lora.merge(params, cfg)
  tensors = params_to_hf(jax.device_get(params), cfg)
  save_file(tensors, os.path.join(path, "model.safetensors"), metadata={"format": "pt"})
  with open(os.path.join(path, "config.json"), "w", encoding="utf-8") as f:
    json.dump(cfg.to_hf_config(), f, indent=1)
