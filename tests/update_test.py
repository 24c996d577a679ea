"""Update step: exact gradient accumulation for every loss mode, traced knobs, PPO inner loop."""
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rl_jax import logprobs, optim
from rl_jax.algorithms import losses
from rl_jax.models import qwen3
from rl_jax.models.config import get_model_config
from rl_jax.types import Batch
from rl_jax.update import (UpdateCfg, UpdateKnobs, _policy_loss_fn, accumulate_gradients,
                           drop_zero_advantage_rows,
                           init_train_state, train_on_rollout, update_step)

MODEL = get_model_config("tiny", vocab_size=32, num_layers=2, hidden_size=64, num_heads=2,
                         num_kv_heads=1, head_dim=32, intermediate_size=128, max_seq_len=32)
PARAMS = qwen3.init_params(MODEL, jax.random.key(0))
B, P, N = 8, 4, 6


def _batch(seed=0, token_adv=False):
  rng = np.random.default_rng(seed)
  tokens = rng.integers(2, 32, (B, P + N)).astype(np.int32)
  lengths = rng.integers(1, N + 1, B)  # unequal response lengths
  valid = np.ones((B, P + N), bool)
  valid[:2, :1] = False  # left padding on two rows
  loss_mask = np.zeros((B, P + N), np.float32)
  for i, n in enumerate(lengths):
    loss_mask[i, P:P + n] = 1
    valid[i, P + n:] = False
  logp = logprobs.token_logprobs(PARAMS, jnp.asarray(tokens), jnp.asarray(valid), cfg=MODEL)
  old = np.asarray(logp) + rng.normal(0, 0.3, logp.shape) * loss_mask  # off-policy ratios
  ref = np.asarray(logp) + rng.normal(0, 0.2, logp.shape) * loss_mask
  return Batch(tokens_BxL=jnp.asarray(tokens), valid_BxL=jnp.asarray(valid),
               loss_mask_BxL=jnp.asarray(loss_mask), old_logp_BxL=jnp.asarray(old, jnp.float32),
               ref_logp_BxL=jnp.asarray(ref, jnp.float32),
               advantages_B=jnp.asarray(rng.normal(size=B), jnp.float32),
               advantages_BxL=(jnp.asarray(rng.normal(size=(B, P + N)), jnp.float32)
                               if token_adv else None))


MODES = [("token", agg) for agg in losses.AGGS] + [("sequence", "seq_mean_token_mean"),
                                                     ("sequence_token", "token_mean")]


@pytest.mark.parametrize("level,agg", MODES)
def test_one_vs_four_microbatches_give_same_update(level, agg):
  loss_cfg = losses.LossCfg(level=level, agg=agg, use_kl_loss=True, norm_len=N)
  knobs = UpdateKnobs.create(losses.LossKnobs.create(eps_low=0.2, eps_high=0.28, beta=0.05), 1e-2)
  # SGD-like check on the raw update: clip disabled so the gradient itself is compared.
  opt = optim.OptimCfg(max_grad_norm=0.0)
  batch = _batch(1, token_adv=(level == "sequence_token"))
  results = []
  for m in (1, 4):
    cfg = UpdateCfg(model=MODEL, loss=loss_cfg, optim=opt, num_microbatches=m)
    grads, _, _, _ = jax.jit(functools.partial(
        accumulate_gradients, functools.partial(_policy_loss_fn, knobs=knobs, cfg=cfg)),
        static_argnums=(2, 3))(PARAMS, batch, m, "test")
    state = init_train_state(jax.tree.map(jnp.copy, PARAMS), cfg)
    state, metrics = update_step(state, batch, knobs, cfg=cfg)
    results.append((grads, state.params, metrics))
  (g1, p1, m1), (g4, p4, m4) = results
  # The accumulated gradient is the same to float reassociation. (Adam's first step is
  # lr * g / |g|, i.e. sign(g): it would turn 1e-9 noise on a ~0 gradient entry into a full lr
  # step, so the comparison is on the gradient the optimizer receives.)
  for a, b in zip(jax.tree.leaves(g1), jax.tree.leaves(g4)):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-6, rtol=1e-5)
  moved = [float(jnp.max(jnp.abs(a - b))) for a, b in zip(jax.tree.leaves(p1),
                                                            jax.tree.leaves(PARAMS))]
  assert max(moved) > 0
  for name in ("loss/total", "grad/norm", "clip/frac_low", "entropy"):
    np.testing.assert_allclose(float(m1[name]), float(m4[name]), rtol=1e-5, atol=1e-7)
  assert float(m1["grad/norm"]) > 0


def test_loss_matches_direct_policy_loss():
  """loss/total equals policy_loss(sum)/denom on the full batch with fresh log-probs."""
  loss_cfg = losses.LossCfg(level="token", agg="seq_mean_token_mean")
  knobs = UpdateKnobs.create(losses.LossKnobs.create(eps_low=0.2), 1e-3)
  batch = _batch(2)
  cfg = UpdateCfg(model=MODEL, loss=loss_cfg, optim=optim.OptimCfg(), num_microbatches=2)
  _, metrics = update_step(init_train_state(jax.tree.map(jnp.copy, PARAMS), cfg), batch, knobs,
                           cfg=cfg)
  logp = logprobs.token_logprobs(PARAMS, batch.tokens_BxL, batch.valid_BxL, cfg=MODEL)
  s, d, _ = losses.policy_loss(logp, batch.old_logp_BxL, batch.advantages_B, batch.loss_mask_BxL,
                               knobs.loss, cfg=loss_cfg)
  np.testing.assert_allclose(float(metrics["loss/total"]), float(s / d), rtol=1e-5)


def test_no_recompile_when_knobs_change():
  loss_cfg = losses.LossCfg(level="token", agg="token_mean", use_kl_loss=True)
  cfg = UpdateCfg(model=MODEL, loss=loss_cfg, optim=optim.OptimCfg(warmup_steps=3))
  batch = _batch(3)
  state = init_train_state(jax.tree.map(jnp.copy, PARAMS), cfg)
  before = update_step._cache_size()  # pylint: disable=protected-access
  for eps, beta, lr in [(0.2, 0.0, 1e-3), (0.1, 0.04, 3e-4), (3e-4, 0.5, 1e-5)]:
    knobs = UpdateKnobs.create(losses.LossKnobs.create(eps_low=eps, eps_high=eps, beta=beta), lr)
    state, _ = update_step(state, batch, knobs, cfg=cfg)
  assert update_step._cache_size() - before == 1  # pylint: disable=protected-access


def test_learning_rate_schedule_values():
  cfg = optim.OptimCfg(warmup_steps=4, schedule="cosine", decay_steps=14, min_lr_ratio=0.1)
  got = [float(optim.lr_multiplier(s, cfg)) for s in (0, 3, 4, 9, 14, 20)]
  frac = lambda s: (s - 4) / 10
  want = [0.25, 1.0, 1.0, 0.1 + 0.9 * 0.5 * (1 + np.cos(np.pi * frac(9))), 0.1, 0.1]
  np.testing.assert_allclose(got, want, rtol=1e-6)


def test_several_epochs_make_the_clip_fire_and_groups_stay_together():
  loss_cfg = losses.LossCfg(level="token", agg="token_mean")
  knobs = UpdateKnobs.create(losses.LossKnobs.create(eps_low=0.01, eps_high=0.01), 3e-2)
  cfg = UpdateCfg(model=MODEL, loss=loss_cfg, optim=optim.OptimCfg())
  batch = _batch(4)
  logp = logprobs.token_logprobs(PARAMS, batch.tokens_BxL, batch.valid_BxL, cfg=MODEL)
  batch = batch.replace(old_logp_BxL=logp * batch.loss_mask_BxL)  # on-policy start: ratio 1
  state = init_train_state(jax.tree.map(jnp.copy, PARAMS), cfg)
  _, first = update_step(init_train_state(jax.tree.map(jnp.copy, PARAMS), cfg), batch, knobs,
                         cfg=cfg)
  assert float(first["clip/frac_low"]) == 0 and float(first["clip/frac_high"]) == 0
  _, metrics = train_on_rollout(state, batch, knobs, jax.random.key(0), cfg=cfg, num_epochs=4,
                                num_minibatches=2, group_size=2)
  assert float(metrics["clip/frac_low"]) + float(metrics["clip/frac_high"]) > 0
  with pytest.raises(ValueError, match="not divisible by group_size 3"):
    train_on_rollout(state, batch, knobs, jax.random.key(0), cfg=cfg, group_size=3)
  with pytest.raises(ValueError, match="mini-batches"):
    train_on_rollout(state, batch, knobs, jax.random.key(0), cfg=cfg, group_size=2,
                     num_minibatches=3)


def test_microbatch_count_must_divide_batch():
  cfg = UpdateCfg(model=MODEL, loss=losses.LossCfg(), optim=optim.OptimCfg(),
                  num_microbatches=3)
  knobs = UpdateKnobs.create(losses.LossKnobs.create(), 1e-3)
  with pytest.raises(ValueError, match="not divisible into 3 micro-batches"):
    update_step(init_train_state(jax.tree.map(jnp.copy, PARAMS), cfg), _batch(5), knobs, cfg=cfg)


def test_train_on_rollout_shards_each_minibatch_over_data_and_fsdp(monkeypatch):
  """With a mesh, every mini-batch reaches update_step with its rows split over (data, fsdp),
  whole groups together, and no row lost or repeated."""
  from rl_jax import sharding, update  # pylint: disable=g-import-not-at-top
  mesh = sharding.make_mesh(sharding.MeshCfg(data=2, fsdp=2, tensor=2))
  seen = []

  def record(state, mini, knobs, *, cfg):
    del knobs, cfg
    seen.append(mini)
    return state, {"loss/total": jnp.zeros(())}

  monkeypatch.setattr(update, "update_step", record)
  batch = _batch(5)
  cfg = UpdateCfg(model=MODEL, loss=losses.LossCfg(), optim=optim.OptimCfg())
  knobs = UpdateKnobs.create(losses.LossKnobs.create(), 1e-3)
  train_on_rollout(None, batch, knobs, jax.random.key(0), cfg=cfg, num_minibatches=2,
                   group_size=2, mesh=mesh)
  assert len(seen) == 2
  host_tokens = np.asarray(batch.tokens_BxL)
  rows_seen = []
  for mini in seen:
    tokens = mini.tokens_BxL
    assert tokens.sharding.spec == sharding.batch_spec()
    assert {s.data.shape for s in tokens.addressable_shards} == {(1, P + N)}  # 4 rows / 4 shards
    assert mini.advantages_B.sharding.spec == sharding.batch_spec()
    for row in np.asarray(tokens):
      (index,) = np.flatnonzero((host_tokens == row).all(axis=1))
      rows_seen.append(int(index))
  assert sorted(rows_seen) == list(range(B))
  groups = [sorted(rows_seen[i:i + 2]) for i in range(0, B, 2)]
  assert all(g[0] % 2 == 0 and g[1] == g[0] + 1 for g in groups)  # groups stay together



def _zero_some_rows(batch, zero_rows):
  """Advantages exactly 0 on `zero_rows` (groups whose rewards are all equal); token-level
  advantages there are non-zero off the loss mask, which must not count."""
  keep_B = jnp.asarray(~np.isin(np.arange(batch.tokens_BxL.shape[0]), zero_rows))
  out = batch.replace(advantages_B=jnp.where(keep_B, batch.advantages_B, 0.0))
  if batch.advantages_BxL is not None:
    out = out.replace(advantages_BxL=jnp.where(
        keep_B[:, None], batch.advantages_BxL, jnp.where(batch.loss_mask_BxL > 0, 0.0, 5.0)))
  return out


def _toy_loss_fn(params, mb, *, knobs, cfg):
  """A policy loss on log-probs that are linear in a small parameter: cheap to compile for
  every loss mode (the model is beside the point of row dropping)."""
  logp_BxL = mb.old_logp_BxL + params["w"] * mb.tokens_BxL.astype(jnp.float32) / 32.0
  adv = mb.advantages_BxL if mb.advantages_BxL is not None else mb.advantages_B
  loss_sum, denom, _ = losses.policy_loss(logp_BxL, mb.old_logp_BxL, adv, mb.loss_mask_BxL,
                                          knobs, cfg=cfg)
  return loss_sum, (denom, {})


@pytest.mark.parametrize("level,agg", MODES)
@pytest.mark.parametrize("zero_rows,multiple,micro", [
    ([1, 2, 5], 2, 1),        # 5 kept rows -> 6 (one padding row)
    ([0, 3, 4, 6, 7], 1, 1),  # 3 kept rows, no padding
    ([0, 1, 2, 3], 4, 2),     # 4 kept rows, 2 micro-batches
    (list(range(B)), 4, 1),   # nothing kept: one block of padding rows
])
def test_dropping_zero_advantage_rows_keeps_loss_and_gradient(level, agg, zero_rows, multiple,
                                                              micro):
  loss_cfg = losses.LossCfg(level=level, agg=agg, use_kl_loss=False, norm_len=N)
  knobs = losses.LossKnobs.create(eps_low=0.2, eps_high=0.28)
  batch = _zero_some_rows(_batch(2, token_adv=level == "sequence_token"), zero_rows)
  mini, denom_extra, kept = drop_zero_advantage_rows(batch, loss_cfg, math.lcm(multiple, micro))
  assert kept == B - len(zero_rows)
  assert mini.tokens_BxL.shape[0] == max(-(-kept // multiple), 1) * multiple
  params = {"w": jnp.float32(0.3)}  # ratios != 1: the clip is active on some rows
  loss_fn = functools.partial(_toy_loss_fn, knobs=knobs, cfg=loss_cfg)
  grads_full, loss_full, denom_full, _ = accumulate_gradients(loss_fn, params, batch, micro, "t")
  grads_drop, loss_drop, denom_drop, _ = accumulate_gradients(loss_fn, params, mini, micro, "t",
                                                              denom_extra)
  assert float(denom_drop) == float(denom_full)
  np.testing.assert_allclose(loss_drop, loss_full, rtol=1e-6, atol=1e-8)
  np.testing.assert_allclose(grads_drop["w"], grads_full["w"], rtol=1e-5, atol=1e-8)
  if kept:
    assert float(grads_full["w"]) != 0.0


def test_train_on_rollout_without_zero_advantage_rows_matches_the_full_batch():
  """Through the model and Adam: a step with rows dropped, then one where every row is dropped
  (the optimizer still steps on its first moment, as with the full batch)."""
  loss_cfg = losses.LossCfg(level="sequence_token", agg="seq_mean_token_mean")  # GSPO-token
  cfg = UpdateCfg(model=MODEL, loss=loss_cfg, optim=optim.OptimCfg())
  knobs = UpdateKnobs.create(losses.LossKnobs.create(eps_low=0.2, eps_high=0.28), 1e-2)
  some = _zero_some_rows(_batch(2, token_adv=True), [1, 2, 5])
  every = _zero_some_rows(_batch(2, token_adv=True), list(range(B)))
  results = []
  for drop in (0, 4):
    state = init_train_state(jax.tree.map(jnp.copy, PARAMS), cfg)
    state, m_some = train_on_rollout(state, some, knobs, jax.random.key(0), cfg=cfg,
                                     drop_zero_advantage=drop)
    after_first = jax.tree.map(jnp.copy, state.params)
    state, m_every = train_on_rollout(state, every, knobs, jax.random.key(1), cfg=cfg,
                                      drop_zero_advantage=drop)
    results.append((after_first, state.params, m_some, m_every))
  (first_full, full, m_full, _), (first_drop, dropped, m_drop, m_drop_every) = results
  for name in ("loss/total", "grad/norm"):
    np.testing.assert_allclose(m_drop[name], m_full[name], rtol=1e-5, atol=1e-7)
  # Adam divides by sqrt(v): summation-order noise on near-zero gradients is up to ~1e-3 of a
  # step (lr 1e-2); the gradient itself is compared tightly in the test above.
  for a, b in ((first_drop, first_full), (dropped, full)):
    jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, rtol=0, atol=3e-5), a, b)
  np.testing.assert_allclose(m_drop["update/kept_rows_frac"], 5 / 8)
  np.testing.assert_allclose(m_drop_every["update/kept_rows_frac"], 0.0)
  assert max(float(np.abs(x - y).max()) for x, y in zip(jax.tree.leaves(dropped),
                                                        jax.tree.leaves(first_drop))) > 1e-4

def test_loss_denominator_matches_policy_loss():
  rng = np.random.default_rng(3)
  mask = (rng.random((6, 7)) < 0.5).astype(np.float32)
  mask[2] = 0  # a row without loss tokens is not a sequence
  expected = {"token_mean": mask.sum(), "seq_mean_token_mean": 5.0}
  for level, agg in MODES:
    cfg = losses.LossCfg(level=level, agg=agg, norm_len=N)
    want = expected["token_mean" if (level != "sequence" and agg == "token_mean")
                    else "seq_mean_token_mean"]
    assert losses.loss_denominator(mask, cfg=cfg) == want
    logp = jnp.asarray(rng.normal(size=mask.shape), jnp.float32)
    adv = jnp.ones((6, 7)) if level == "sequence_token" else jnp.ones(6)
    _, denom, _ = losses.policy_loss(logp, logp, adv, mask, losses.LossKnobs.create(), cfg=cfg)
    assert float(denom) == want


def test_dropping_zero_advantage_rows_refuses_a_kl_loss():
  cfg = losses.LossCfg(level="token", agg="token_mean", use_kl_loss=True)
  with pytest.raises(ValueError, match="KL"):
    drop_zero_advantage_rows(_batch(0), cfg, 2)
