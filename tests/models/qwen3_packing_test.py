"""Packed rows (`segment_ids_BxT`): each packed segment's hidden states equal the segment run
alone, the reference being separate unpacked forward passes."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from rl_jax.models import qwen3
from rl_jax.models.config import get_model_config


def test_packed_positions_restart_at_each_segment():
  seg = jnp.array([[0, 0, 0, 1, 1, 2, 2, 2], [5, 5, 5, 5, 5, 5, 5, 5]])
  np.testing.assert_array_equal(qwen3.packed_positions(seg),
                                [[0, 1, 2, 0, 1, 0, 1, 2], [0, 1, 2, 3, 4, 5, 6, 7]])


def test_packed_segments_match_separate_forwards():
  cfg = get_model_config("tiny", vocab_size=64)
  params = qwen3.init_params(cfg, jax.random.PRNGKey(0))
  lengths = (5, 3, 4)
  docs = [np.random.default_rng(i).integers(1, 64, size=n) for i, n in enumerate(lengths)]
  tokens = jnp.asarray(np.concatenate(docs))[None]
  seg = jnp.asarray(np.repeat(np.arange(len(lengths)), lengths))[None]
  valid = jnp.ones_like(tokens, bool)
  packed, _ = qwen3.forward(params, tokens, qwen3.packed_positions(seg), valid, cfg=cfg,
                            segment_ids_BxT=seg)
  start = 0
  for doc in docs:
    alone, _ = qwen3.forward(params, jnp.asarray(doc)[None], jnp.arange(len(doc))[None],
                             jnp.ones((1, len(doc)), bool), cfg=cfg)
    np.testing.assert_allclose(packed[0, start:start + len(doc)], alone[0], atol=1e-5)
    start += len(doc)
  # Without the segment mask the second document would see the first: the test can fail.
  leaky, _ = qwen3.forward(params, tokens, qwen3.packed_positions(seg), valid, cfg=cfg)
  assert np.abs(np.asarray(leaky[0, 5:8]) - np.asarray(packed[0, 5:8])).max() > 1e-3
