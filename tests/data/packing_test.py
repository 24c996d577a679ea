"""Packed pretraining equals unpacked: the loss (and its gradient) of documents packed into rows
with segment ids equals that of the same documents one per row through the plain forward."""
import jax
import numpy as np

from rl_jax import optim
from rl_jax.data import loader
from rl_jax.models import qwen3
from rl_jax.models.config import get_model_config
from rl_jax.sft import SFTCfg, nll_loss

ROW_LEN = 16


def _setup():
  model = get_model_config("tiny", vocab_size=64, hidden_size=32, num_layers=2, num_heads=4,
                           num_kv_heads=2, head_dim=8, intermediate_size=64, max_seq_len=ROW_LEN)
  params = qwen3.init_params(model, jax.random.key(0))
  rng = np.random.default_rng(0)
  docs = [rng.integers(3, 64, size=rng.integers(2, 9)).astype(np.int32) for _ in range(24)]
  return SFTCfg(model=model, optim=optim.OptimCfg()), params, docs


def _unpacked(docs):
  """One document per row, right-padded; every token but the first is predicted."""
  tokens = np.zeros((len(docs), ROW_LEN), np.int32)
  valid = np.zeros(tokens.shape, bool)
  for i, d in enumerate(docs):
    tokens[i, :len(d)], valid[i, :len(d)] = d, True
  mask = valid.copy()
  mask[:, 0] = False
  return tokens, valid, mask.astype(np.float32)


def test_packed_and_unpacked_pretraining_give_equal_loss_and_gradient():
  cfg, params, docs = _setup()
  batches = loader.packed_batches(docs, lambda r, i: r, batch_size=4, row_len=ROW_LEN,
                                  seed_words=(0,), shard=(0, 1))
  tokens, valid, mask, segments = next(batches)
  assert (segments.max(axis=1) >= 2).all()  # several documents share every row
  # The documents of the packed batch, in row order, one per row.
  rows = [tokens[r][segments[r] == s] for r in range(4) for s in range(1, segments[r].max() + 1)]

  def loss(params, *batch):
    loss_sum, denom = nll_loss(params, *batch, cfg=cfg)
    return loss_sum / denom, denom

  loss_and_grad = jax.jit(jax.value_and_grad(loss, has_aux=True))
  (packed, n_packed), g_packed = loss_and_grad(params, tokens, valid, mask, segments)
  (unpacked, n_unpacked), g_unpacked = loss_and_grad(params, *_unpacked(rows))
  assert int(n_packed) == int(n_unpacked) == sum(len(d) - 1 for d in rows)
  assert abs(float(packed) - float(unpacked)) <= 1e-5, (float(packed), float(unpacked))
  for a, b in zip(jax.tree.leaves(g_packed), jax.tree.leaves(g_unpacked)):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-5)
  # Without segment ids the same packed rows give another loss: documents see each other.
  crossed, _ = jax.jit(loss)(params, tokens, valid, mask)
  assert abs(float(crossed) - float(unpacked)) > 1e-3
