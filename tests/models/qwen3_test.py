"""Qwen3 model: HF reference logits, shapes, published parameter counts, config errors."""
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rl_jax.models import qwen3, weights
from rl_jax.models.config import ModelConfig, get_model_config

REF_DIR = os.path.join(os.path.dirname(__file__), "..", "testdata", "qwen3_tiny_reference")


def test_reproduces_transformers_logits():
  """Logits computed by `transformers` (f32) for the bundled random-weight Qwen3 checkpoint."""
  cfg, params = weights.load_hf_checkpoint(REF_DIR)
  ref = np.load(os.path.join(REF_DIR, "reference_logits.npz"))
  ids = jnp.asarray(ref["input_ids"], jnp.int32)
  valid = jnp.ones(ids.shape, bool)
  hidden, _ = qwen3.forward(params, ids, qwen3.positions_from_mask(valid), valid, cfg=cfg)
  got = np.asarray(qwen3.logits(params, hidden, cfg=cfg))
  np.testing.assert_allclose(got, ref["logits"], atol=2e-5, rtol=0)


def test_left_padding_does_not_change_logits():
  cfg, params = weights.load_hf_checkpoint(REF_DIR)
  ref = np.load(os.path.join(REF_DIR, "reference_logits.npz"))
  ids = jnp.asarray(ref["input_ids"][:, :20], jnp.int32)
  pad = 7
  padded = jnp.concatenate([jnp.zeros((3, pad), jnp.int32), ids], axis=1)
  valid = jnp.concatenate([jnp.zeros((3, pad), bool), jnp.ones(ids.shape, bool)], axis=1)
  hidden, _ = qwen3.forward(params, padded, qwen3.positions_from_mask(valid), valid, cfg=cfg)
  got = np.asarray(qwen3.logits(params, hidden, cfg=cfg))[:, pad:]
  np.testing.assert_allclose(got, ref["logits"][:, :20], atol=2e-5, rtol=0)


def test_qwen3_4b_parameter_count_without_allocating():
  cfg = get_model_config("qwen3_4b")
  shapes = qwen3.abstract_params(cfg)
  count = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(shapes))
  # Published: Qwen3-4B has 4.02B parameters (tied embeddings).
  assert count == cfg.num_params()
  assert abs(count / 1e9 - 4.02) < 0.01, count
  assert shapes["embed"]["embedding"].dtype == jnp.bfloat16
  assert "lm_head" not in shapes


@pytest.mark.parametrize("name,billions", [("qwen3_0_6b", 0.596), ("qwen3_1_7b", 1.72),
                                           ("qwen3_8b", 8.19)])
def test_published_parameter_counts(name, billions):
  count = get_model_config(name).num_params()
  assert abs(count / 1e9 - billions) / billions < 0.01, count


def test_unknown_model_config_name():
  with pytest.raises(ValueError, match="unknown model config 'qwen9'.*valid names"):
    get_model_config("qwen9")


def test_bad_config_fields():
  with pytest.raises(ValueError, match="num_kv_heads"):
    ModelConfig(vocab_size=10, hidden_size=8, num_layers=1, num_heads=3, num_kv_heads=2,
                head_dim=4, intermediate_size=8)
  with pytest.raises(ValueError, match="dtype"):
    get_model_config("tiny", dtype="float16")


def test_bf16_compute_close_to_f32():
  cfg = get_model_config("tiny", vocab_size=64)
  params = qwen3.init_params(cfg, jax.random.key(0))
  ids = jax.random.randint(jax.random.key(1), (2, 12), 0, 64)
  valid = jnp.ones(ids.shape, bool)
  pos = qwen3.positions_from_mask(valid)
  h32, _ = qwen3.forward(params, ids, pos, valid, cfg=cfg)
  cfg16 = cfg.replace(dtype="bfloat16")
  h16, _ = qwen3.forward(params, ids, pos, valid, cfg=cfg16)
  l32 = qwen3.logits(params, h32, cfg=cfg)
  l16 = qwen3.logits(params, h16, cfg=cfg16)
  assert l16.dtype == jnp.float32
  assert float(jnp.max(jnp.abs(l32 - l16))) < 0.05 * float(jnp.max(jnp.abs(l32)))
