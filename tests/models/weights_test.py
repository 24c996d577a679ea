"""HF safetensors <-> rl_jax params: round trip, validation errors, pickle refusal."""
import json
import os
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from safetensors.numpy import save_file

from rl_jax.models import qwen3, weights
from rl_jax.models.config import get_model_config


def _write_hf(tmp_path, tensors, cfg_dict=None):
  save_file(tensors, str(tmp_path / "model.safetensors"))
  if cfg_dict:
    (tmp_path / "config.json").write_text(json.dumps(cfg_dict))
  return str(tmp_path)


@pytest.mark.parametrize("tied", [True, False])
def test_hf_layout_round_trip_gives_same_logits(tmp_path, tied):
  cfg = get_model_config("tiny", vocab_size=50, num_layers=2, tie_embeddings=tied)
  params = qwen3.init_params(cfg, jax.random.key(0))
  hf = weights.params_to_hf(params, cfg)
  # HF layout: linear weights are [out, in].
  assert hf["model.layers.0.self_attn.q_proj.weight"].shape == (128, 128)
  assert hf["model.layers.1.mlp.down_proj.weight"].shape == (128, 384)
  path = _write_hf(tmp_path, hf)
  loaded = weights.params_from_hf(weights.read_hf_tensors(path), cfg)
  ids = jnp.arange(10)[None] % 50
  valid = jnp.ones(ids.shape, bool)
  pos = qwen3.positions_from_mask(valid)
  a = qwen3.logits(params, qwen3.forward(params, ids, pos, valid, cfg=cfg)[0], cfg=cfg)
  b = qwen3.logits(loaded, qwen3.forward(loaded, ids, pos, valid, cfg=cfg)[0], cfg=cfg)
  np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_sharded_checkpoint_with_index(tmp_path):
  cfg = get_model_config("tiny", vocab_size=50, num_layers=2)
  hf = weights.params_to_hf(qwen3.init_params(cfg, jax.random.key(0)), cfg)
  names = sorted(hf)
  half = len(names) // 2
  save_file({n: hf[n] for n in names[:half]}, str(tmp_path / "model-00001-of-00002.safetensors"))
  save_file({n: hf[n] for n in names[half:]}, str(tmp_path / "model-00002-of-00002.safetensors"))
  index = {"weight_map": {n: ("model-00001-of-00002.safetensors" if i < half else
                              "model-00002-of-00002.safetensors") for i, n in enumerate(names)}}
  (tmp_path / "model.safetensors.index.json").write_text(json.dumps(index))
  loaded = weights.params_from_hf(weights.read_hf_tensors(str(tmp_path)), cfg)
  np.testing.assert_array_equal(np.asarray(loaded["layers"]["mlp"]["up_proj"]["kernel"][1]),
                                hf["model.layers.1.mlp.up_proj.weight"].T)


def test_missing_and_misshaped_tensors_are_named(tmp_path):
  cfg = get_model_config("tiny", vocab_size=50, num_layers=2)
  hf = weights.params_to_hf(qwen3.init_params(cfg, jax.random.key(0)), cfg)
  broken = dict(hf)
  del broken["model.layers.1.self_attn.k_norm.weight"]
  with pytest.raises(ValueError, match=r"missing tensor 'model.layers.1.self_attn.k_norm.weight'"):
    weights.params_from_hf(broken, cfg)
  broken = dict(hf)
  broken["model.layers.0.mlp.up_proj.weight"] = np.zeros((3, 3), np.float32)
  with pytest.raises(ValueError, match=r"'model.layers.0.mlp.up_proj.weight' has shape"):
    weights.params_from_hf(broken, cfg)
  broken = dict(hf)
  broken["model.layers.9.extra.weight"] = np.zeros((3,), np.float32)
  with pytest.raises(ValueError, match="does not use"):
    weights.params_from_hf(broken, cfg)


def test_pickle_formats_are_refused(tmp_path):
  (tmp_path / "pytorch_model.bin").write_bytes(b"\x80\x04not really")
  with pytest.raises(ValueError, match="pickle"):
    weights.checkpoint_files(str(tmp_path))
  with pytest.raises(ValueError, match="pickle"):
    weights.checkpoint_files(str(tmp_path / "pytorch_model.bin"))


def test_corrupt_safetensors_is_refused(tmp_path):
  (tmp_path / "model.safetensors").write_bytes(b"garbage that is not a header")
  with pytest.raises(ValueError, match="not a readable safetensors"):
    weights.read_hf_tensors(str(tmp_path))


REF_DIR = os.path.join(os.path.dirname(__file__), "..", "testdata", "qwen3_tiny_reference")


def _reference_copy(tmp_path, edit):
  """A copy of the bundled Qwen3 checkpoint whose config.json dict is changed by `edit`."""
  shutil.copytree(REF_DIR, tmp_path / "ckpt")
  config_path = tmp_path / "ckpt" / "config.json"
  hf = json.loads(config_path.read_text())
  edit(hf)
  config_path.write_text(json.dumps(hf))
  return str(tmp_path / "ckpt"), str(config_path)


@pytest.mark.parametrize("changes,found", [
    ({"architectures": ["MixtralForCausalLM"]}, "architectures ['MixtralForCausalLM']"),
    ({"model_type": "mixtral"}, "model_type 'mixtral'"),
    ({"architectures": ["MixtralForCausalLM"], "model_type": "mixtral"},
     "architectures ['MixtralForCausalLM'] and model_type 'mixtral'"),
    ({"architectures": ["Qwen3MoeForCausalLM"], "model_type": "qwen3_moe"},
     "architectures ['Qwen3MoeForCausalLM'] and model_type 'qwen3_moe'"),
    ({"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2"},
     "architectures ['Qwen2ForCausalLM'] and model_type 'qwen2'"),
    ({"architectures": ["LlamaForCausalLM"]}, "architectures ['LlamaForCausalLM']"),
    ({"architectures": "Qwen3ForCausalLM"}, "architectures 'Qwen3ForCausalLM'"),  # not a list
    ({"architectures": []}, "architectures []"),
])
def test_non_qwen3_config_is_refused_naming_file_and_expectation(tmp_path, changes, found):
  path, config_path = _reference_copy(tmp_path, lambda hf: hf.update(changes))
  with pytest.raises(ValueError) as info:
    weights.load_hf_checkpoint(path)
  message = str(info.value)
  assert message.startswith(f"{config_path}: not a Qwen3 checkpoint: found {found};")
  assert "expected architectures ['Qwen3ForCausalLM'] and model_type 'qwen3'" in message


@pytest.mark.parametrize("drop", [("architectures", "model_type"), ("architectures",),
                                  ("model_type",)])
def test_config_without_architecture_keys_still_loads(tmp_path, drop):
  path, _ = _reference_copy(tmp_path, lambda hf: [hf.pop(k) for k in drop])
  cfg, params = weights.load_hf_checkpoint(path)
  ref_cfg, ref_params = weights.load_hf_checkpoint(REF_DIR)  # the untouched Qwen3 config loads
  assert cfg == ref_cfg and (cfg.num_layers, cfg.vocab_size, cfg.head_dim) == (2, 1024, 32)
  np.testing.assert_array_equal(np.asarray(params["layers"]["attn"]["q_norm"]["scale"]),
                                np.asarray(ref_params["layers"]["attn"]["q_norm"]["scale"]))


def test_config_that_is_not_a_json_object_is_refused(tmp_path):
  (tmp_path / "config.json").write_text("[1, 2]")
  with pytest.raises(ValueError, match=r"config\.json: got a JSON list; expected an object"):
    weights.load_hf_checkpoint(str(tmp_path))


@pytest.mark.parametrize("key", ["torch_dtype", "dtype"])
def test_checkpoint_loads_in_the_dtype_its_config_states(tmp_path, key):
  cfg = get_model_config("tiny", vocab_size=50, num_layers=2)
  params = qwen3.init_params(cfg, jax.random.key(0))
  hf_cfg = {k: v for k, v in cfg.to_hf_config().items() if k not in ("torch_dtype", "dtype")}
  path = _write_hf(tmp_path, weights.params_to_hf(params, cfg), dict(hf_cfg, **{key: "bfloat16"}))
  loaded_cfg, loaded = weights.load_hf_checkpoint(path)
  assert (loaded_cfg.param_dtype, loaded_cfg.dtype) == ("bfloat16", "bfloat16")
  assert {x.dtype for x in jax.tree.leaves(loaded)} == {jnp.dtype(jnp.bfloat16)}
  # The bf16 weights are the f32 ones rounded to the nearest bf16 (an independent cast).
  np.testing.assert_array_equal(
      np.asarray(loaded["embed"]["embedding"], np.float32),
      np.asarray(params["embed"]["embedding"]).astype(jnp.bfloat16).astype(np.float32))
  # The config's overrides win over the stored dtype.
  over_cfg, over = weights.load_hf_checkpoint(path, param_dtype="float32", dtype="float32")
  assert over_cfg.param_dtype == "float32"
  assert {x.dtype for x in jax.tree.leaves(over)} == {jnp.dtype(jnp.float32)}
  # float16 checkpoints load in float32; an unknown dtype is named.
  (tmp_path / "config.json").write_text(json.dumps(dict(hf_cfg, torch_dtype="float16")))
  assert weights.load_hf_checkpoint(path)[0].param_dtype == "float32"
  (tmp_path / "config.json").write_text(json.dumps(dict(hf_cfg, torch_dtype="int8")))
  with pytest.raises(ValueError, match="torch_dtype 'int8'"):
    weights.load_hf_checkpoint(path)
