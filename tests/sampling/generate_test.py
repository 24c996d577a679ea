"""Rollout: sampler/trainer log-prob agreement, cached decode = recompute, no recompiles."""
import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rl_jax import logprobs
from rl_jax.models import qwen3
from rl_jax.models.config import get_model_config
from rl_jax.sampling import generate as gen
from rl_jax.sampling.samplers import filter_logits
from rl_jax.types import SampleKnobs

CFG = get_model_config("tiny", vocab_size=40, num_layers=2, max_seq_len=64)
PARAMS = qwen3.init_params(CFG, jax.random.key(0))
GEN = gen.GenerateCfg(max_new_tokens=10, group_size=3, stop_ids=(1,), pad_id=0)


def _prompts():
  """Two left-padded prompts of different lengths."""
  tokens = jnp.array([[0, 0, 0, 5, 6, 7], [8, 9, 10, 11, 12, 13]], jnp.int32)
  valid = tokens != 0
  return tokens, valid


def test_sampler_logp_equals_teacher_forced_forward():
  tokens, valid = _prompts()
  r = gen.generate(PARAMS, tokens, valid, jax.random.key(1), SampleKnobs.create(1.0),
                   model_cfg=CFG, cfg=GEN)
  assert r.tokens_BxL.shape == (6, 16)
  tf = logprobs.token_logprobs(PARAMS, r.tokens_BxL, r.valid_BxL, cfg=CFG)
  mask = np.asarray(r.loss_mask_BxL)
  assert mask.sum() > 0
  np.testing.assert_allclose(np.asarray(tf) * mask, np.asarray(r.logp_policy_BxL), atol=1e-5)
  # At temperature 1 without filtering the sampling distribution is the policy.
  np.testing.assert_allclose(np.asarray(r.logp_sample_BxL), np.asarray(r.logp_policy_BxL),
                             atol=1e-5)


def test_logp_sample_matches_tempered_teacher_forcing():
  tokens, valid = _prompts()
  knobs = SampleKnobs.create(0.7)
  r = gen.generate(PARAMS, tokens, valid, jax.random.key(2), knobs, model_cfg=CFG, cfg=GEN)
  tf = logprobs.token_logprobs(PARAMS, r.tokens_BxL, r.valid_BxL, cfg=CFG, temperature=0.7)
  np.testing.assert_allclose(np.asarray(tf) * np.asarray(r.loss_mask_BxL),
                             np.asarray(r.logp_sample_BxL), atol=1e-5)


def test_cached_decode_logits_equal_recompute_at_every_step():
  tokens, valid = _prompts()
  cfg = gen.GenerateCfg(max_new_tokens=10, group_size=2, stop_ids=(), return_logits=True)
  r, decode_logits = gen.generate(PARAMS, tokens, valid, jax.random.key(3),
                                  SampleKnobs.create(1.0), model_cfg=CFG, cfg=cfg)
  hidden, _ = qwen3.forward(PARAMS, r.tokens_BxL, qwen3.positions_from_mask(r.valid_BxL),
                            r.valid_BxL, cfg=CFG)
  full = qwen3.logits(PARAMS, hidden, cfg=CFG)
  p = r.prompt_len
  # Slot p-1+s predicts the token at slot p+s, which decode step s sampled.
  np.testing.assert_allclose(np.asarray(decode_logits), np.asarray(full[:, p - 1:-1]), atol=1e-5)


def test_stop_token_ends_response_and_masks_rest():
  tokens, valid = _prompts()
  r = gen.generate(PARAMS, tokens, valid, jax.random.key(4), SampleKnobs.create(3.0),
                   model_cfg=CFG, cfg=gen.GenerateCfg(max_new_tokens=30, group_size=4,
                                                      stop_ids=(1, 2, 3, 4)))
  toks = np.asarray(r.tokens_BxL)[:, r.prompt_len:]
  mask = np.asarray(r.loss_mask_BxL)[:, r.prompt_len:]
  for row_t, row_m, n, trunc in zip(toks, mask, np.asarray(r.response_len_B),
                                    np.asarray(r.truncated_B)):
    assert row_m[:n].all() and not row_m[n:].any()
    if not trunc:
      assert row_t[n - 1] in (1, 2, 3, 4)
      assert not np.isin(row_t[:n - 1], (1, 2, 3, 4)).any()
      assert (row_t[n:] == 0).all()
  assert (~np.asarray(r.truncated_B)).any()


def test_greedy_is_deterministic_and_keys_reproduce():
  tokens, valid = _prompts()
  run = lambda key, t: gen.generate(PARAMS, tokens, valid, key, SampleKnobs.create(t),
                                    model_cfg=CFG, cfg=GEN).tokens_BxL
  g1, g2 = run(jax.random.key(1), 0.0), run(jax.random.key(2), 0.0)
  np.testing.assert_array_equal(g1, g2)
  # Greedy rows of one group are identical.
  np.testing.assert_array_equal(g1[0], g1[1])
  s1, s1b, s2 = run(jax.random.key(5), 1.0), run(jax.random.key(5), 1.0), run(jax.random.key(6), 1.0)
  np.testing.assert_array_equal(s1, s1b)
  assert not np.array_equal(s1, s2)


def test_no_recompile_when_knobs_or_key_change():
  tokens, valid = _prompts()

  @jax.jit
  @chex.assert_max_traces(n=1)
  def run(key, knobs):
    return gen.generate(PARAMS, tokens, valid, key, knobs, model_cfg=CFG, cfg=GEN).tokens_BxL

  for seed, (t, p, k) in enumerate([(1.0, 1.0, 0), (0.5, 0.9, 0), (0.0, 1.0, 5), (1.3, 0.5, 3)]):
    run(jax.random.key(seed), SampleKnobs.create(t, p, k))


def test_filter_logits_top_k_and_top_p_vs_numpy():
  logits = jnp.array([[2.0, 1.0, 0.5, 0.0, -1.0]])
  kept = lambda knobs: np.asarray(filter_logits(logits, knobs) > -1e29)[0]
  np.testing.assert_array_equal(kept(SampleKnobs.create(1.0, 1.0, 2)), [1, 1, 0, 0, 0])
  probs = np.exp(2.0 - np.array([0, 1, 1.5, 2, 3])); probs /= probs.sum()
  # Smallest prefix whose mass reaches 0.8.
  n = int(np.searchsorted(np.cumsum(probs), 0.8) + 1)
  np.testing.assert_array_equal(kept(SampleKnobs.create(1.0, 0.8, 0)), np.arange(5) < n)
  np.testing.assert_array_equal(kept(SampleKnobs.create(1.0, 1e-6, 0)), [1, 0, 0, 0, 0])


def test_prompt_too_long_is_a_clear_error():
  tokens = jnp.ones((1, 60), jnp.int32)
  with pytest.raises(ValueError, match="exceeds the model's max_seq_len 64"):
    gen.generate(PARAMS, tokens, tokens > 0, jax.random.key(0), SampleKnobs.create(),
                  model_cfg=CFG, cfg=GEN)


def test_bad_knobs():
  with pytest.raises(ValueError, match="top_p"):
    SampleKnobs.create(1.0, 0.0)
  with pytest.raises(ValueError, match="temperature"):
    SampleKnobs.create(-1.0)
