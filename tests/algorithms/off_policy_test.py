"""The off-policy correction of asynchronous RL (`rl_jax.algorithms.off_policy`) against numpy
references written from the formulas (docs/async_rl.md), on a constructed stale batch; the
decoupled PPO loss; the in-flight queue's checkpoint round trip; config errors."""
import itertools

import numpy as np
import pytest

from rl_jax.algorithms import losses, off_policy


def _stale_batch(seed=0, b=6, t=7):
  """Rows 0-3 stale (sampled by older params), 4-5 fresh; prox and behaviour log-probs that
  differ by up to ~1.5 nats, so weights land above, inside and below [1/C, C]; NaN garbage in
  masked slots."""
  rng = np.random.default_rng(seed)
  mask = (np.arange(t)[None] >= rng.integers(1, 3, size=(b, 1))) & \
         (np.arange(t)[None] < rng.integers(4, t + 1, size=(b, 1)))
  behaviour = -rng.uniform(0.1, 3.0, size=(b, t))
  prox = behaviour + rng.uniform(-1.5, 1.5, size=(b, t))
  behaviour[~mask], prox[~mask] = np.nan, np.nan
  stale = np.array([1, 1, 1, 1, 0, 0], bool)
  return prox, behaviour, mask, stale


def _numpy_weights(prox, behaviour, mask, stale, level, mode, cap):
  """Independent float64 reference, one row at a time."""
  w = np.zeros(prox.shape)
  for i in range(prox.shape[0]):
    m = mask[i]
    if not stale[i]:
      w[i, m] = 1.0
      continue
    log_rho = prox[i, m] - behaviour[i, m]  # per token
    if level == "sequence":
      log_rho = np.full(m.sum(), log_rho.sum())  # prod_t rho_t
    elif level == "geometric":
      log_rho = np.full(m.sum(), log_rho.mean())  # (prod_t rho_t)^(1/n)
    rho = np.exp(np.clip(log_rho, -20.0, 20.0))
    w[i, m] = np.minimum(rho, cap) if mode == "truncate" else \
        np.where((rho >= 1 / cap) & (rho <= cap), rho, 0.0)
  return w


@pytest.mark.parametrize("level,mode", list(itertools.product(off_policy.LEVELS,
                                                              off_policy.MODES)))
def test_importance_weights_match_numpy_reference(level, mode):
  prox, behaviour, mask, stale = _stale_batch()
  cap = 1.5
  got = np.asarray(off_policy.importance_weights(prox, behaviour, mask, stale, level=level,
                                                 mode=mode, cap=cap))
  want = _numpy_weights(prox, behaviour, mask, stale, level, mode, cap)
  np.testing.assert_allclose(got, want, rtol=2e-6, atol=1e-7)
  assert np.all(got[4:][mask[4:]] == 1.0) and np.all(got[~mask] == 0.0)
  stale_tokens = mask & stale[:, None]
  # The constructed batch exercises every branch: weights capped or zeroed, and kept below C.
  if mode == "truncate":
    assert np.any(got[stale_tokens] == cap) and np.any(got[stale_tokens] < cap)
  elif level == "token":
    assert np.any(got[stale_tokens] == 0) and np.any(got[stale_tokens] > 0)
  # Gauges, over the stale rows' tokens.
  stats = off_policy.weight_stats(got, mask, stale, cap)
  assert float(stats["offpolicy/stale_frac"]) == pytest.approx(4 / 6)
  assert float(stats["offpolicy/weight_mean"]) == pytest.approx(want[stale_tokens].mean(),
                                                                rel=1e-5)
  assert float(stats["offpolicy/weight_zero_frac"]) == pytest.approx(
      (want[stale_tokens] == 0).mean())


def test_correct_batch_uses_prox_on_stale_rows_and_the_samplers_log_probs_elsewhere():
  prox, behaviour, mask, stale = _stale_batch()
  old, _ = off_policy.correct_batch(np.nan_to_num(prox), np.nan_to_num(behaviour), mask, stale,
                                    level="token", mode="truncate", cap=2.0)
  np.testing.assert_array_equal(np.asarray(old)[:4], np.nan_to_num(prox)[:4].astype(np.float32))
  np.testing.assert_array_equal(np.asarray(old)[4:],
                                np.nan_to_num(behaviour)[4:].astype(np.float32))


def test_decoupled_ppo_loss_matches_numpy_reference():
  """policy_loss with the weights: L = sum_i,t m w_t max(-A r_t, -A clip(r_t)) / sum m, with
  r = pi_theta / pi_prox (token level, token_mean), and for GSPO the per-sequence loss times the
  sequence's weight (sequence level: w constant along the row)."""
  prox, behaviour, mask, stale = _stale_batch(seed=1)
  prox, behaviour = np.nan_to_num(prox), np.nan_to_num(behaviour)
  rng = np.random.default_rng(2)
  logp = np.where(mask, prox + rng.uniform(-0.4, 0.4, size=prox.shape), 0.0)
  adv = rng.normal(size=prox.shape[0])
  knobs = losses.LossKnobs.create(eps_low=0.2, eps_high=0.28)
  w = _numpy_weights(prox, behaviour, mask, stale, "token", "truncate", 2.0)
  r = np.exp(logp - prox)
  per_token = np.maximum(-adv[:, None] * r, -adv[:, None] * np.clip(r, 0.8, 1.28))
  want = (per_token * w * mask).sum() / mask.sum()
  s, d, _ = losses.policy_loss(logp, prox, adv, mask, knobs, cfg=losses.LossCfg("token"),
                               is_weight_BxT=w)
  assert float(s / d) == pytest.approx(want, rel=1e-5)
  # GSPO: sequence ratio against pi_prox, one sequence-level weight per row.
  w_seq = _numpy_weights(prox, behaviour, mask, stale, "sequence", "truncate", 2.0)
  n = mask.sum(axis=1)
  s_i = np.exp(((logp - prox) * mask).sum(axis=1) / n)
  seq_loss = np.maximum(-adv * s_i, -adv * np.clip(s_i, 1 - 3e-4, 1 + 4e-4))
  want_seq = (seq_loss * w_seq.max(axis=1)).mean()
  s, d, _ = losses.policy_loss(logp, prox, adv, mask, losses.LossKnobs.create(
      eps_low=3e-4, eps_high=4e-4), cfg=losses.LossCfg("sequence"), is_weight_BxT=w_seq)
  assert float(s / d) == pytest.approx(want_seq, rel=1e-5)
  # Without weights the loss is the synchronous one, bit for bit, and weights of 1 change nothing.
  plain = losses.policy_loss(logp, prox, adv, mask, knobs, cfg=losses.LossCfg("token"))[0]
  ones = losses.policy_loss(logp, prox, adv, mask, knobs, cfg=losses.LossCfg("token"),
                            is_weight_BxT=mask.astype(np.float32))[0]
  assert float(plain) == float(ones)


def test_inflight_queue_round_trips_through_checkpoint_arrays():
  rng = np.random.default_rng(0)
  make = lambda step, with_adv: off_policy.make_pending(
      step, step - 1, tokens=rng.integers(0, 50, (4, 6)), valid=rng.integers(0, 2, (4, 6)) > 0,
      loss_mask=rng.integers(0, 2, (4, 6)), behaviour_logp=rng.normal(size=(4, 6)),
      adv=rng.normal(size=4), adv_BxL=rng.normal(size=(4, 6)) if with_adv else None,
      host={"reward/mean": 0.5})
  queue = [make(3, False), make(4, True)]
  arrays, meta = off_policy.to_arrays(queue, 3, 4, 6)
  assert arrays["tokens"].shape == (3, 4, 6) and arrays["adv"].shape == (3, 4)
  back = off_policy.from_arrays(arrays, meta)
  assert [(p.step, p.version, p.has_adv_BxL) for p in back] == [(3, 2, False), (4, 3, True)]
  for a, b in zip(queue, back):
    for name in off_policy.ARRAY_FIELDS:
      np.testing.assert_array_equal(a.arrays[name], b.arrays[name])
      assert a.arrays[name].dtype == b.arrays[name].dtype
  with pytest.raises(ValueError, match="more than off_policy_steps=1"):
    off_policy.to_arrays(queue, 1, 4, 6)


@pytest.mark.parametrize("kwargs,match", [
    (dict(off_policy_steps=-1), "off_policy_steps must be an int >= 0"),
    (dict(level="tok"), "importance_level must be one of"),
    (dict(mode="clip"), "importance_mode must be one of"),
    (dict(cap=1.0), "importance_cap must be > 1"),
    (dict(off_policy_steps=0, rollout_devices=2), "needs rl.off_policy_steps >= 1"),
    (dict(rollout_devices=8), "leaves no training device"),
])
def test_config_errors_name_the_field(kwargs, match):
  args = dict(off_policy_steps=1, rollout_devices=0, level="token", mode="truncate", cap=2.0,
              num_devices=8)
  args.update(kwargs)
  with pytest.raises(ValueError, match=match):
    off_policy.check_config(**args)
