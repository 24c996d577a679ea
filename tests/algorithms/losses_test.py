"""policy_loss vs an independent numpy loop over sequences and tokens, written from SPEC §0."""
import functools
import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rl_jax.algorithms import losses

LEVELS = ("token", "sequence", "sequence_token")
AGGS = ("token_mean", "seq_mean_token_mean", "seq_mean_token_sum", "seq_mean_token_sum_norm")
NORM_LEN = 9


# ----------------------------------------------------------------------------- numpy reference
def np_kl(logp, ref, est):
  log_r = ref - logp
  if est == "k1":
    return -log_r
  if est == "k2":
    return 0.5 * log_r ** 2
  log_r = min(max(log_r, -20.0), 20.0)
  return math.exp(log_r) - 1.0 - log_r


def np_objective(r, a, eps_low, eps_high, eps_c):
  """Clipped surrogate to MAXIMISE; dual clip floors it at eps_c * a for a < 0."""
  obj = min(r * a, min(max(r, 1 - eps_low), 1 + eps_high) * a)
  if a < 0 and eps_c > 1:
    obj = max(obj, eps_c * a)
  return obj


def np_policy_loss(logp, old, adv, mask, *, level, agg, eps_low, eps_high, eps_c, beta,
                   use_kl, est="k3", ref=None, norm_len=NORM_LEN):
  logp, old, adv = (np.asarray(x, np.float64) for x in (logp, old, adv))
  seq_values, all_token_losses = [], []
  for i in range(logp.shape[0]):
    idx = [t for t in range(logp.shape[1]) if mask[i, t]]
    if not idx:
      continue
    n = len(idx)
    adv_t = {t: (adv[i] if adv.ndim == 1 else adv[i, t]) for t in idx}
    kl_t = {t: (np_kl(logp[i, t], ref[i, t], est) if use_kl else 0.0) for t in idx}
    s = math.exp(sum(logp[i, t] - old[i, t] for t in idx) / n)
    if level == "sequence":
      a = sum(adv_t.values()) / n
      seq_values.append(-np_objective(s, a, eps_low, eps_high, eps_c)
                        + beta * sum(kl_t.values()) / n)
      continue
    toks = []
    for t in idx:
      r = s if level == "sequence_token" else math.exp(logp[i, t] - old[i, t])
      toks.append(-np_objective(r, adv_t[t], eps_low, eps_high, eps_c) + beta * kl_t[t])
    all_token_losses += toks
    if agg == "seq_mean_token_mean":
      seq_values.append(sum(toks) / n)
    elif agg == "seq_mean_token_sum":
      seq_values.append(sum(toks))
    elif agg == "seq_mean_token_sum_norm":
      seq_values.append(sum(toks) / norm_len)
  if level != "sequence" and agg == "token_mean":
    return sum(all_token_losses) / len(all_token_losses)
  return sum(seq_values) / len(seq_values)


# ----------------------------------------------------------------------------- inputs
def make_batch(seed, batch=8, seq_len=7):
  rng = np.random.default_rng(seed)
  mask = np.zeros((batch, seq_len), bool)
  for i in range(batch):
    start = rng.integers(0, 3)  # prompt tokens before the response
    length = rng.integers(1, seq_len - start + 1)
    mask[i, start:start + length] = True
  mask[3] = False  # an empty row (padding row in a micro-batch)
  logp = -rng.uniform(0.1, 3.0, (batch, seq_len))
  old = logp + rng.normal(0.0, 0.3, (batch, seq_len))
  old[0, mask[0].argmax()] = logp[0, mask[0].argmax()] - 1.5  # ratio ~4.5: dual clip if A < 0
  ref = logp + rng.normal(0.0, 0.3, (batch, seq_len))
  adv_B = rng.normal(size=batch)
  adv_B[0] = -1.0
  adv_BxT = rng.normal(size=(batch, seq_len))
  adv_BxT[0] = -1.0
  f32 = lambda x: np.asarray(x, np.float32)
  return f32(logp), f32(old), f32(ref), f32(adv_B), f32(adv_BxT), mask


KNOBS = dict(eps_low=0.2, eps_high=0.28, eps_c=3.0, beta=0.05)
# Tests reuse the shapes [8, 7] and [2, 7]: eager JAX compiles each op once per shape, so fewer
# distinct shapes keep the suite fast.
MICRO_BATCHES = [slice(k, k + 2) for k in range(0, 8, 2)]


def cfg_for(level, agg, use_kl=False, est="k3"):
  return losses.LossCfg(level=level, agg=agg, kl_estimator=est, use_kl_loss=use_kl,
                        norm_len=NORM_LEN)


# ----------------------------------------------------------------------------- value vs numpy
@pytest.mark.parametrize("level,agg", list(itertools.product(LEVELS, AGGS)))
def test_matches_numpy_every_level_and_agg(level, agg):
  logp, old, ref, adv_B, adv_BxT, mask = make_batch(0)
  knobs = losses.LossKnobs.create(**KNOBS)
  for adv, use_kl in ((adv_B, False), (adv_BxT, True)):
    cfg = cfg_for(level, agg, use_kl)
    loss_sum, denom, _ = losses.policy_loss(logp, old, adv, mask, knobs, cfg=cfg,
                                            ref_logp_BxT=ref)
    expected = np_policy_loss(logp, old, adv, mask, level=level, agg=agg, use_kl=use_kl,
                              ref=ref, **KNOBS)
    np.testing.assert_allclose(loss_sum / denom, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("level,agg", [("token", "seq_mean_token_mean"), ("sequence", "token_mean"),
                                       ("sequence_token", "token_mean")])
def test_gradient_matches_finite_differences_of_numpy(level, agg):
  logp, old, ref, adv_B, _, mask = make_batch(1)
  knobs = dict(eps_low=0.2, eps_high=0.28, eps_c=3.0, beta=0.1)
  cfg = cfg_for(level, agg, use_kl=True)

  def loss(lp):
    s, d, _ = losses.policy_loss(lp, old, adv_B, mask, losses.LossKnobs.create(**knobs), cfg=cfg,
                                 ref_logp_BxT=ref)
    return s / d

  grad = jax.grad(loss)(jnp.asarray(logp))
  ref_fn = lambda lp: np_policy_loss(lp, old, adv_B, mask, level=level, agg=agg, use_kl=True,
                                     ref=ref, **knobs)
  h = 1e-5
  fd = np.zeros(logp.shape)
  base = logp.astype(np.float64)
  for i, t in zip(*np.nonzero(mask)):  # masked entries must have zero gradient (checked below)
    up, down = base.copy(), base.copy()
    up[i, t] += h
    down[i, t] -= h
    fd[i, t] = (ref_fn(up) - ref_fn(down)) / (2 * h)
  assert np.abs(fd).max() > 1e-3  # the check is not vacuous
  np.testing.assert_allclose(grad, fd, atol=2e-4)


# ----------------------------------------------------------------------------- accumulation
@pytest.mark.parametrize("level,agg", list(itertools.product(LEVELS, AGGS)))
def test_gradient_accumulation_is_exact(level, agg):
  logp, old, ref, _, adv_BxT, mask = make_batch(2)
  knobs = losses.LossKnobs.create(**KNOBS)
  cfg = cfg_for(level, agg, use_kl=True)

  def sum_and_denom(lp, s):  # eager: tiny shapes, and it avoids one compile per case
    loss_sum, denom, _ = losses.policy_loss(lp, old[s], adv_BxT[s], mask[s], knobs, cfg=cfg,
                                            ref_logp_BxT=ref[s])
    return loss_sum, denom

  def full_loss(lp):
    loss_sum, denom = sum_and_denom(lp, slice(None))
    return loss_sum / denom

  full_value, full_grad = jax.value_and_grad(full_loss)(jnp.asarray(logp))
  grad_fn = jax.value_and_grad(sum_and_denom, has_aux=True)
  sums, denoms, grads = [], [], []
  for s in MICRO_BATCHES:
    (loss_sum, denom), grad = grad_fn(jnp.asarray(logp[s]), s)
    sums.append(loss_sum), denoms.append(denom), grads.append(grad)
  total_denom = sum(denoms)
  micro_grad = np.concatenate(grads) / total_denom
  np.testing.assert_allclose(sum(sums) / total_denom, full_value, rtol=1e-6, atol=1e-6)
  np.testing.assert_allclose(micro_grad, full_grad, rtol=1e-6, atol=1e-6)
  assert np.abs(full_grad).max() > 1e-3


def test_stats_accumulate_like_the_loss():
  logp, old, ref, adv_B, _, mask = make_batch(3)
  knobs = losses.LossKnobs.create(**KNOBS)
  cfg = cfg_for("token", "seq_mean_token_mean", use_kl=True)
  _, _, full = losses.policy_loss(logp, old, adv_B, mask, knobs, cfg=cfg, ref_logp_BxT=ref)
  parts = [losses.policy_loss(logp[s], old[s], adv_B[s], mask[s], knobs, cfg=cfg,
                              ref_logp_BxT=ref[s])[2] for s in MICRO_BATCHES]
  assert set(full) == {"clip/frac_low", "clip/frac_high", "clip/frac_dual", "ratio/mean",
                       "loss/pg", "loss/kl", "kl/k3"}
  for name, (num, den) in full.items():
    np.testing.assert_allclose(sum(p[name][0] for p in parts) / sum(p[name][1] for p in parts),
                               num / den, rtol=1e-6, err_msg=name)
  kl_np = [np_kl(logp[i, t], ref[i, t], "k3") for i, t in zip(*np.nonzero(mask))]
  np.testing.assert_allclose(full["kl/k3"][0] / full["kl/k3"][1], np.mean(kl_np), rtol=1e-5)
  ratio_np = np.exp(logp - old)[mask]
  np.testing.assert_allclose(full["ratio/mean"][0] / full["ratio/mean"][1], ratio_np.mean(),
                             rtol=1e-5)


# ----------------------------------------------------------------------------- GSPO
def test_gspo_ratio_is_geometric_mean_of_token_ratios():
  logp, old, _, _, _, mask = make_batch(4)
  knobs = losses.LossKnobs.create(eps_low=0.9, eps_high=100.0)  # no clipping
  cfg = losses.LossCfg(level="sequence")
  for i in np.flatnonzero(mask.any(axis=1)):
    adv = np.zeros(8, np.float32)
    adv[i] = 1.0
    loss_sum, _, stats = losses.policy_loss(logp, old, adv, mask, knobs, cfg=cfg)
    expected = np.exp(np.mean((logp[i] - old[i])[mask[i]].astype(np.float64)))
    np.testing.assert_allclose(-loss_sum, expected, rtol=1e-5)
  seq_ratios = [np.exp(np.mean((logp[i] - old[i])[mask[i]])) for i in range(8) if mask[i].any()]
  np.testing.assert_allclose(stats["ratio/mean"][0] / stats["ratio/mean"][1],
                             np.mean(seq_ratios), rtol=1e-5)
  assert stats["ratio/mean"][1] == 7  # the empty row is not a sequence


def test_gspo_token_equals_gspo_in_value_and_gradient():
  logp, old, ref, adv_B, _, mask = make_batch(5)
  knobs = losses.LossKnobs.create(eps_low=0.05, eps_high=0.08, eps_c=3.0, beta=0.1)

  def loss(lp, level):
    cfg = losses.LossCfg(level=level, agg="seq_mean_token_mean", use_kl_loss=True)
    s, d, _ = losses.policy_loss(lp, old, adv_B, mask, knobs, cfg=cfg, ref_logp_BxT=ref)
    return s / d

  seq_value, seq_grad = jax.value_and_grad(loss)(jnp.asarray(logp), "sequence")
  tok_value, tok_grad = jax.value_and_grad(loss)(jnp.asarray(logp), "sequence_token")
  np.testing.assert_allclose(tok_value, seq_value, rtol=1e-6)
  np.testing.assert_allclose(tok_grad, seq_grad, rtol=1e-5, atol=1e-7)
  # Some sequences are clipped (zero pg gradient) and some are not, so the check covers both.
  _, _, stats = losses.policy_loss(logp, old, adv_B, mask, knobs, cfg=losses.LossCfg("sequence"))
  clipped = stats["clip/frac_low"][0] + stats["clip/frac_high"][0]
  assert 0 < clipped < stats["clip/frac_low"][1]


# ----------------------------------------------------------------------------- clipping cases
def test_clip_fractions_on_hand_built_tokens():
  # Row 1 is fully masked, and so is the last token of row 0 (it would count as low-clipped).
  ratios = np.array([[0.5, 0.9, 1.5, 1.1, 1.0, 4.0, 0.1], [0.1] * 7])
  adv = np.array([[-1.0, -1.0, 1.0, -1.0, 1.0, -2.0, -1.0], [-1.0] * 7], np.float32)
  mask = np.array([[1, 1, 1, 1, 1, 1, 0], [0] * 7], bool)
  old = np.full((2, 7), -1.0, np.float32)
  logp = (old + np.log(ratios)).astype(np.float32)
  knobs = losses.LossKnobs.create(eps_low=0.2, eps_high=0.2, eps_c=3.0)
  _, _, stats = losses.policy_loss(logp, old, adv, mask, knobs, cfg=losses.LossCfg())
  frac = lambda k: float(stats[k][0] / stats[k][1])
  # low: token 0 (0.5 < 0.8, A<0); high: token 2 (1.5 > 1.2, A>0); dual: token 5 (4 > 3, A<0).
  # Token 5 is not "low" (ratio above 1); token 1 and 3 sit inside the trust region.
  assert (frac("clip/frac_low"), frac("clip/frac_high"), frac("clip/frac_dual")) == (
      pytest.approx(1 / 6), pytest.approx(1 / 6), pytest.approx(1 / 6))


def test_dual_clip_caps_negative_advantage_loss():
  old = np.zeros((2, 7), np.float32)
  logp = np.full((2, 7), np.log(4.0), np.float32)
  mask = np.zeros((2, 7), bool)
  mask[0, 0] = True  # a single token with ratio 4
  cfg = losses.LossCfg()

  def run(adv, eps_c):
    knobs = losses.LossKnobs.create(eps_low=0.2, eps_high=0.2, eps_c=eps_c)
    f = lambda lp: losses.policy_loss(lp, old, np.full(2, adv, np.float32), mask, knobs,
                                      cfg=cfg)[0]
    value, grad = jax.value_and_grad(f)(jnp.asarray(logp))
    assert (grad[~mask] == 0).all()
    return value, grad

  # A=-1, r=4: PPO loss is max(4, 1.2) = 4 with gradient -A*r = 4; dual clip caps it at 3, grad 0.
  value, grad = run(-1.0, 3.0)
  assert float(value) == pytest.approx(3.0) and float(grad[0, 0]) == 0.0
  for disabled in (math.inf, 1.0, 0.0):
    value, grad = run(-1.0, disabled)
    assert float(value) == pytest.approx(4.0) and float(grad[0, 0]) == pytest.approx(4.0)
  # A>0 is untouched by the dual clip: r clipped at 1.2, loss -1.2, zero gradient.
  value, grad = run(1.0, 3.0)
  assert float(value) == pytest.approx(-1.2) and float(grad[0, 0]) == 0.0


# ----------------------------------------------------------------------------- robustness
@pytest.mark.parametrize("level", LEVELS)
def test_masked_garbage_does_not_leak(level):
  logp, old, ref, _, adv_BxT, mask = make_batch(6)
  knobs = losses.LossKnobs.create(**KNOBS)
  cfg = cfg_for(level, "seq_mean_token_mean", use_kl=True)

  def loss(lp, o, a, r):
    s, d, stats = losses.policy_loss(lp, o, a, mask, knobs, cfg=cfg, ref_logp_BxT=r)
    return s / d, stats

  dirty = []
  for x, bad in ((logp, np.nan), (old, -np.inf), (adv_BxT, np.inf), (ref, np.nan)):
    x = x.copy()
    x[~mask] = bad
    dirty.append(x)
  (clean_v, clean_stats), clean_g = jax.value_and_grad(loss, has_aux=True)(
      jnp.asarray(logp), old, adv_BxT, ref)
  (dirty_v, dirty_stats), dirty_g = jax.value_and_grad(loss, has_aux=True)(
      jnp.asarray(dirty[0]), *dirty[1:])
  assert np.isfinite(dirty_v) and np.isfinite(dirty_g).all()
  np.testing.assert_allclose(dirty_v, clean_v, rtol=1e-6)
  np.testing.assert_allclose(dirty_g, clean_g, rtol=1e-6)
  assert (np.asarray(dirty_g)[~mask] == 0).all()
  for name, (num, den) in dirty_stats.items():
    np.testing.assert_allclose(num / den, clean_stats[name][0] / clean_stats[name][1],
                               rtol=1e-6, err_msg=name)


def test_knob_changes_do_not_retrace():
  logp, old, _, adv_B, _, mask = make_batch(7)
  traces = []

  @functools.partial(jax.jit, static_argnames="cfg")
  def step(knobs, cfg):
    traces.append(1)
    return losses.policy_loss(logp, old, adv_B, mask, knobs, cfg=cfg)[0]

  cfg, name_knobs = losses.preset("dapo")[:2]
  a = step(losses.LossKnobs.create(**name_knobs), cfg)
  b = step(losses.LossKnobs.create(eps_low=0.1, eps_high=0.5, eps_c=2.0, beta=0.3), cfg)
  assert len(traces) == 1 and float(a) != float(b)


def test_presets_and_validation():
  grpo = losses.preset("grpo")
  assert grpo.cfg.agg == "seq_mean_token_mean" and grpo.cfg.use_kl_loss
  assert grpo.cfg.kl_estimator == "k3" and grpo.knobs["beta"] == 0.04
  assert grpo.adv_normalize == "std"
  dapo = losses.preset("dapo")
  assert dapo.cfg.agg == "token_mean" and (dapo.knobs["eps_low"], dapo.knobs["eps_high"]) == (
      0.2, 0.28)
  dr = losses.preset("dr_grpo", norm_len=64)
  assert (dr.cfg.agg, dr.cfg.norm_len, dr.adv_normalize, dr.knobs["beta"]) == (
      "seq_mean_token_sum_norm", 64, "none", 0.0)
  gspo = losses.preset("gspo")
  assert gspo.cfg.level == "sequence" and (gspo.knobs["eps_low"], gspo.knobs["eps_high"]) == (
      3e-4, 4e-4)
  assert losses.preset("gspo_token").cfg.level == "sequence_token"
  assert losses.preset("bnpo").cfg.agg == "token_mean"
  with pytest.raises(ValueError, match="valid names: grpo, dr_grpo"):
    losses.preset("ppo2")
  with pytest.raises(ValueError, match="norm_len"):
    losses.preset("dr_grpo")
  with pytest.raises(ValueError, match="LossCfg.agg"):
    losses.LossCfg(agg="seq-mean-token-mean")
  with pytest.raises(ValueError, match="LossCfg.level"):
    losses.LossCfg(level="tok")
  with pytest.raises(ValueError, match="norm_len"):
    losses.LossCfg(agg="seq_mean_token_sum_norm")
  with pytest.raises(ValueError, match="kl_estimator"):
    losses.LossCfg(kl_estimator="k4")
  with pytest.raises(ValueError, match="eps_low"):
    losses.LossKnobs.create(eps_low=-0.1)
  knobs = losses.LossKnobs.create(eps_low=0.2)
  assert knobs.eps_high.dtype == jnp.float32 and float(knobs.eps_high) == pytest.approx(0.2)
  logp, old, _, adv_B, _, mask = make_batch(8)
  with pytest.raises(ValueError, match="needs ref_logp_BxT"):
    losses.policy_loss(logp, old, adv_B, mask, knobs, cfg=losses.LossCfg(use_kl_loss=True))
  with pytest.raises(ValueError, match="adv has shape"):
    losses.policy_loss(logp, old, adv_B[:3], mask, knobs, cfg=losses.LossCfg())
