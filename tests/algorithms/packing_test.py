"""Sequence packing in the update step (`rl_jax.packing`): packed rows give the unpacked loss and
gradient for every aggregation mode and ratio level; the packing itself against a hand layout."""
import functools
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rl_jax import logprobs, optim, packing
from rl_jax.algorithms import losses
from rl_jax.models import qwen3
from rl_jax.models.config import get_model_config
from rl_jax.types import Batch
from rl_jax.update import UpdateCfg, UpdateKnobs, _policy_loss_fn, accumulate_gradients


def test_pack_rows_matches_a_hand_layout():
  # Row 0: left pad 2, 3 tokens; row 1: 5 tokens; row 2: pad 1, 2 tokens, a gap, 1 token.
  tokens = np.array([[0, 0, 11, 12, 13, 0], [21, 22, 23, 24, 25, 0], [0, 31, 32, 0, 33, 0]])
  valid = np.array([[0, 0, 1, 1, 1, 0], [1, 1, 1, 1, 1, 0], [0, 1, 1, 0, 1, 0]])
  p = packing.pack_rows(tokens, valid, row_len=8)
  # First fit decreasing: 5 tokens (row 1) open bin 0, 3 (row 0) fit in it, 3 (row 2) a new one.
  np.testing.assert_array_equal(p.tokens_RxT, [[21, 22, 23, 24, 25, 11, 12, 13],
                                               [31, 32, 33, 0, 0, 0, 0, 0]])
  np.testing.assert_array_equal(p.segment_ids_RxT, [[0, 0, 0, 0, 0, 1, 1, 1],
                                                    [0, 0, 0, -1, -1, -1, -1, -1]])
  # Log-probs are defined where the slot and its predecessor were valid: 33 follows a gap.
  np.testing.assert_array_equal(p.target_valid_RxT.astype(int), [[0, 1, 1, 1, 1, 0, 1, 1],
                                                                 [0, 1, 0, 0, 0, 0, 0, 0]])
  np.testing.assert_array_equal(p.unpack_index_BxL, [[-1, -1, 5, 6, 7, -1], [0, 1, 2, 3, 4, -1],
                                                     [-1, 8, 9, -1, 10, -1]])
  np.testing.assert_array_equal(qwen3.packed_positions(jnp.asarray(p.segment_ids_RxT))[0],
                                [0, 1, 2, 3, 4, 0, 1, 2])
  with pytest.raises(ValueError, match="more than the packed row length 4"):
    packing.pack_rows(tokens, valid, row_len=4)


def _mixed_batch(seed=0, b=16, p=4, n=12, vocab=64):
  """Left-padded prompts of 1..P tokens and responses of 1..N tokens (mixed lengths)."""
  rng = np.random.default_rng(seed)
  prompt_len, resp_len = rng.integers(1, p + 1, size=b), rng.integers(1, n + 1, size=b)
  idx = np.arange(p + n)[None]
  valid = (idx >= p - prompt_len[:, None]) & (idx < p + resp_len[:, None])
  mask = valid & (idx >= p)
  tokens = np.where(valid, rng.integers(1, vocab, size=(b, p + n)), 0)
  old = np.where(mask, -rng.uniform(0.5, 4.0, size=(b, p + n)), 0.0)
  ref = np.where(mask, -rng.uniform(0.5, 4.0, size=(b, p + n)), 0.0)
  return Batch(tokens_BxL=jnp.asarray(tokens, jnp.int32), valid_BxL=jnp.asarray(valid),
               loss_mask_BxL=jnp.asarray(mask, jnp.float32),
               old_logp_BxL=jnp.asarray(old, jnp.float32),
               ref_logp_BxL=jnp.asarray(ref, jnp.float32),
               advantages_B=jnp.asarray(rng.normal(size=b), jnp.float32),
               is_weight_BxL=jnp.asarray(np.where(mask, rng.uniform(0.2, 2, (b, p + n)), 0),
                                         jnp.float32))


MODES = [("token", "token_mean"), ("token", "seq_mean_token_mean"),
         ("token", "seq_mean_token_sum"), ("token", "seq_mean_token_sum_norm"),
         ("sequence", "seq_mean_token_mean"), ("sequence_token", "seq_mean_token_mean")]


def _setup():
  cfg = get_model_config("tiny", vocab_size=64, num_layers=2, hidden_size=64, head_dim=16,
                         intermediate_size=128)
  params = qwen3.init_params(cfg, jax.random.PRNGKey(0))
  batch = _mixed_batch()
  packed = packing.pack_batch(batch, num_microbatches=2)
  assert packed.packed.tokens_RxT.shape[0] < batch.tokens_BxL.shape[0]  # it does pack
  knobs = UpdateKnobs.create(losses.LossKnobs.create(eps_low=0.2, eps_high=0.28, beta=0.1), 1e-3)
  return cfg, params, batch, packed, knobs


def test_the_update_step_loss_and_gradient_equal_unpacked():
  """Through the update's micro-batch scan (2 micro-batches, each packed on its own), with KL
  and off-policy weights: loss, denominator, entropy and every gradient leaf."""
  cfg, params, batch, packed, knobs = _setup()
  ucfg = UpdateCfg(model=cfg, loss=losses.LossCfg("token", "seq_mean_token_mean", "k3", True),
                   optim=optim.OptimCfg(), num_microbatches=2, logprob_impl="naive")
  fn = functools.partial(_policy_loss_fn, knobs=knobs, cfg=ucfg)
  run = jax.jit(lambda p, b: accumulate_gradients(fn, p, b, 2, "test"))
  g_ref, loss_ref, den_ref, stats_ref = run(params, batch)
  g_pack, loss_pack, den_pack, stats_pack = run(params, packed)
  assert float(den_pack) == float(den_ref)
  np.testing.assert_allclose(float(loss_pack), float(loss_ref), atol=1e-5, rtol=0)
  np.testing.assert_allclose(np.asarray(stats_pack["entropy"]), np.asarray(stats_ref["entropy"]),
                             atol=1e-4, rtol=1e-6)
  for a, b in zip(jax.tree.leaves(g_pack), jax.tree.leaves(g_ref)):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-5, rtol=0)
  assert max(float(jnp.abs(g).max()) for g in jax.tree.leaves(g_ref)) > 1e-4  # not vacuous


def test_every_aggregation_mode_loss_and_gradient_equal_unpacked():
  """Every mode and ratio level, KL on: loss and parameter gradient (the chain rule through each
  path's log-prob VJP, dL/dparams = J^T dL/dlogp, with J packed or unpacked) within 1e-5."""
  cfg, params, batch, packed, knobs = _setup()
  micro = lambda b: jax.tree.map(lambda x: x[:8], b)  # one micro-batch, packed on its own
  unpacked_logp = jax.jit(lambda p: logprobs.token_logprobs(
      p, batch.tokens_BxL[:8], batch.valid_BxL[:8], cfg=cfg))
  rows = packed.packed.tokens_RxT.shape[0] // 2  # micro-batch 0's packed rows
  rows0 = jax.tree.map(lambda x: x[:rows], packed.packed)
  rows0 = rows0.replace(unpack_index_BxL=packed.packed.unpack_index_BxL[:8])
  packed_logp = jax.jit(lambda p: logprobs.packed_token_logprobs(p, rows0, cfg=cfg))
  logp_ref, vjp_ref = jax.vjp(unpacked_logp, params)
  logp_pack, vjp_pack = jax.vjp(packed_logp, params)
  mb = micro(batch)
  np.testing.assert_allclose(np.asarray(logp_pack), np.asarray(logp_ref), atol=1e-5, rtol=0)
  for (level, agg), w in itertools.product(MODES, (None, batch.is_weight_BxL)):
    loss_cfg = losses.LossCfg(level, agg, "k3", True, norm_len=12)

    def loss(logp_BxL):
      s, d, _ = losses.policy_loss(logp_BxL, mb.old_logp_BxL, mb.advantages_B, mb.loss_mask_BxL,
                                   knobs.loss, cfg=loss_cfg, ref_logp_BxT=mb.ref_logp_BxL,
                                   is_weight_BxT=None if w is None else w[:8])
      return s / d
    value_ref, dlogp_ref = jax.value_and_grad(loss)(logp_ref)
    value_pack, dlogp_pack = jax.value_and_grad(loss)(logp_pack)
    np.testing.assert_allclose(float(value_pack), float(value_ref), atol=1e-5, rtol=0,
                               err_msg=f"{level}/{agg}")
    (g_ref,), (g_pack,) = vjp_ref(dlogp_ref), vjp_pack(dlogp_pack)
    for a, b in zip(jax.tree.leaves(g_pack), jax.tree.leaves(g_ref)):
      np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-5, rtol=0,
                                 err_msg=f"{level}/{agg}")
    assert max(float(jnp.abs(g).max()) for g in jax.tree.leaves(g_ref)) > 1e-5, (level, agg)
