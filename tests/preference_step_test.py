"""The preference step: exact micro-batch accumulation over whole pairs, DPO = log 2 at the
reference, the cached reference log-probs, and the pair encoding (prompt masked out)."""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rl_jax import logprobs, optim
from rl_jax.models import qwen3
from rl_jax.models.config import get_model_config
from rl_jax.preference_step import (PairBatch, PreferenceCfg, PreferenceKnobs, _pair_loss_fn,
                                    make_preference_step, reference_sequence_logprobs)
from rl_jax.stages.preference import encode_pairs
from rl_jax.types import TrainState
from rl_jax.update import accumulate_gradients

MODEL = get_model_config("tiny", vocab_size=32, num_layers=2, hidden_size=64, num_heads=2,
                         num_kv_heads=1, head_dim=32, intermediate_size=128, max_seq_len=32)
PARAMS = qwen3.init_params(MODEL, jax.random.key(0))
B, P, N = 8, 4, 6


def _side(rng):
  tokens = rng.integers(3, 32, (B, P + N)).astype(np.int32)
  valid = np.ones((B, P + N), bool)
  valid[:3, :2] = False  # left padding
  mask = np.zeros((B, P + N), np.float32)
  for i, n in enumerate(rng.integers(1, N + 1, B)):  # unequal response lengths
    mask[i, P:P + n] = 1
    valid[i, P + n:] = False
  return tokens, valid, mask


def _pairs(seed=0, ref_noise=0.5):
  rng = np.random.default_rng(seed)
  chosen, rejected = _side(rng), _side(rng)
  rejected[0][:, :P] = chosen[0][:, :P]  # the same prompt
  rejected[1][:, :P] = chosen[1][:, :P]
  ref = [reference_sequence_logprobs(PARAMS, *side, cfg=MODEL, implementation="auto",
                                     chunk_size=3) + rng.normal(0, ref_noise, B)
         for side in (chosen, rejected)]
  return PairBatch(*map(jnp.asarray, chosen), *map(jnp.asarray, rejected),
                   *(jnp.asarray(r, jnp.float32) for r in ref))


def _seq_logp_numpy(params, tokens, valid, mask):
  """Independent float64 reference: naive logits, softmax in numpy, masked sum."""
  out = np.zeros(tokens.shape[0])
  for i in range(tokens.shape[0]):
    logp = np.asarray(logprobs.token_logprobs(params, jnp.asarray(tokens[i:i + 1]),
                                              jnp.asarray(valid[i:i + 1]), cfg=MODEL,
                                              implementation="naive"), np.float64)
    out[i] = (logp[0] * mask[i]).sum()
  return out


@pytest.mark.parametrize("kind,knob", [("dpo", dict(beta=0.5, label_smoothing=0.1)),
                                       ("ipo", dict(beta=0.5)),
                                       ("simpo", dict(beta=2.0, gamma=1.0))])
def test_one_vs_four_microbatches_give_the_same_update(kind, knob):
  batch = _pairs(1)
  knobs = PreferenceKnobs.create(learning_rate=1e-2, **knob)
  opt = optim.OptimCfg(max_grad_norm=0.0)
  results = []
  for m in (1, 4):
    cfg = PreferenceCfg(model=MODEL, optim=opt, kind=kind, num_microbatches=m)
    grads, loss, denom, _ = jax.jit(functools.partial(
        accumulate_gradients, functools.partial(_pair_loss_fn, knobs=knobs, cfg=cfg)),
        static_argnums=(2, 3))(PARAMS, batch, m, "test")
    state = TrainState(jnp.int32(0), jax.tree.map(jnp.copy, PARAMS),
                       optim.make_optimizer(opt).init(PARAMS))
    state, metrics = make_preference_step(cfg)(state, batch, knobs)
    results.append((grads, metrics, state.params))
    assert float(denom) == B  # the denominator counts pairs
  (g1, m1, p1), (g4, m4, p4) = results
  # Same gradient to float reassociation (the optimizer's first Adam step is sign(g), so the
  # comparison is on the gradient it receives, as in tests/update_test.py).
  for a, b in zip(jax.tree.leaves(g1), jax.tree.leaves(g4)):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-6, rtol=1e-5)
  assert float(m1["grad/norm"]) > 1e-3
  for name in m1:
    np.testing.assert_allclose(float(m1[name]), float(m4[name]), rtol=1e-5, atol=1e-6,
                               err_msg=name)
  assert max(float(jnp.max(jnp.abs(a - b)))
             for a, b in zip(jax.tree.leaves(p1), jax.tree.leaves(PARAMS))) > 0


def test_step_loss_matches_numpy_and_dpo_is_log_2_at_the_reference():
  batch = _pairs(2, ref_noise=0.0)  # reference = the policy itself
  cfg = PreferenceCfg(model=MODEL, optim=optim.OptimCfg(), kind="dpo", num_microbatches=2)
  knobs = PreferenceKnobs.create(beta=0.1, learning_rate=1e-3)
  state = TrainState(jnp.int32(0), jax.tree.map(jnp.copy, PARAMS),
                     optim.make_optimizer(cfg.optim).init(PARAMS))
  _, metrics = make_preference_step(cfg)(state, batch, knobs)
  np.testing.assert_allclose(float(metrics["preference/loss"]), np.log(2.0), atol=1e-6)
  np.testing.assert_allclose(float(metrics["preference/rewards_margin"]), 0.0, atol=1e-6)

  # Off the reference: the loss against float64 numpy of the naive per-token log-probs.
  batch = _pairs(3)
  pc = _seq_logp_numpy(PARAMS, *(np.asarray(x) for x in (batch.chosen_tokens_BxL,
                                                         batch.chosen_valid_BxL,
                                                         batch.chosen_mask_BxL)))
  pr = _seq_logp_numpy(PARAMS, *(np.asarray(x) for x in (batch.rejected_tokens_BxL,
                                                         batch.rejected_valid_BxL,
                                                         batch.rejected_mask_BxL)))
  h = 0.1 * ((pc - np.asarray(batch.ref_chosen_logp_B)) - (pr - np.asarray(
      batch.ref_rejected_logp_B)))
  expected = np.mean(np.log1p(np.exp(-h)))
  _, metrics = make_preference_step(cfg)(
      TrainState(jnp.int32(0), jax.tree.map(jnp.copy, PARAMS),
                 optim.make_optimizer(cfg.optim).init(PARAMS)), batch, knobs)
  np.testing.assert_allclose(float(metrics["preference/loss"]), expected, rtol=1e-5)
  np.testing.assert_allclose(float(metrics["preference/logps_chosen"]), pc.mean(), rtol=1e-5)


def test_reference_cache_is_chunked_and_exact():
  rng = np.random.default_rng(4)
  side = _side(rng)
  whole = _seq_logp_numpy(PARAMS, *side)
  for chunk in (1, 3, 8, 20):  # the last chunk padded; results independent of the chunking
    got = reference_sequence_logprobs(PARAMS, *side, cfg=MODEL, implementation="auto",
                                      chunk_size=chunk)
    assert got.shape == (B,)
    np.testing.assert_allclose(got, whole, rtol=1e-5)


class CharTok:
  """One id per character (3..), pad 0, eos 1."""
  pad_id, eos_id, bos_id, vocab_size, special_ids = 0, 1, None, 64, {}

  def encode(self, text):
    return [3 + ord(c) - ord("a") if c.isalpha() else 2 for c in text]


def test_encode_pairs_masks_the_prompt_and_reports_malformed_records():
  tok = CharTok()
  data = encode_pairs(tok, [("ab", "c", "de")], prompt_len=3, max_new_tokens=3)
  pad, eos = 0, 1
  a, b, c, d, e = 3, 4, 5, 6, 7
  np.testing.assert_array_equal(data.chosen[0], [[pad, a, b, c, eos, pad]])
  np.testing.assert_array_equal(data.chosen[1], [[0, 1, 1, 1, 1, 0]])
  np.testing.assert_array_equal(data.chosen[2], [[0, 0, 0, 1, 1, 0]])  # response + EOS only
  np.testing.assert_array_equal(data.rejected[0], [[pad, a, b, d, e, eos]])
  np.testing.assert_array_equal(data.rejected[2], [[0, 0, 0, 1, 1, 1]])

  records = [("ab", "c", "d"), ("ab", "", "d"), ("ab", "c", "c"), ("abcd", "c", "d"),
             ("ab", "cde", "d"), ("ab", "c"), ("ab", "d", "c")]
  with pytest.raises(ValueError) as err:
    encode_pairs(tok, records, prompt_len=3, max_new_tokens=3, where="test pairs")
  msg = str(err.value)
  assert "test pairs: 5 malformed pair(s) of 7" in msg
  for expected in ("record 1: empty chosen response",
                   "record 2: chosen and rejected are identical",
                   "record 3: prompt has 4 tokens, more than prompt_len=3",
                   "record 4: chosen response has 3 tokens + EOS, more than max_new_tokens=3",
                   "record 5: expected (prompt, chosen, rejected) strings"):
    assert expected in msg
  kept = encode_pairs(tok, records, prompt_len=3, max_new_tokens=3, skip_malformed=True)
  np.testing.assert_array_equal(kept.index, [0, 6])
  assert [i for i, _ in kept.skipped] == [1, 2, 3, 4, 5]
  with pytest.raises(ValueError, match="no usable pair among 1 records"):
    encode_pairs(tok, [("ab", "", "c")], 3, 3, skip_malformed=True)
