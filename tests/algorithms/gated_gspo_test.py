"""Tests of the confidence gates, gated reward and gated advantages against plain numpy."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rl_jax.algorithms import gated_gspo as gg

G = 4


def _inputs(seed=0, num_groups=5):
  rng = np.random.default_rng(seed)
  b = num_groups * G
  translated = (rng.random(b) < 0.5).astype(np.float32)
  translated[0:G] = 1.0        # group 0: every rollout translated (n_native = 0)
  translated[G:2 * G] = 0.0    # group 1: none translated
  translated[2 * G:3 * G] = [1, 1, 1, 0]  # group 2: exactly one native rollout
  correct = (rng.random(b) < 0.6).astype(np.float32)
  return dict(
      correct=correct, translated=translated,
      reward=correct.copy(), cost=np.where(translated > 0, rng.uniform(0.5, 1.5, b), 0.0),
      verbal=rng.uniform(0, 1, b).astype(np.float32),
      logp=np.log(rng.uniform(0.05, 1.0, b)).astype(np.float32))


def _np_gate(x, gate, mode, m_min, tau, kappa):
  """Per-group reference with explicit loops."""
  out = []
  for q in range(len(x["correct"]) // G):
    rows = range(q * G, (q + 1) * G)
    native = [i for i in rows if x["translated"][i] == 0]
    if gate == "none":
      out.append(1.0)
      continue
    if gate == "native_success":
      conf = sum(x["correct"][i] for i in native) / max(1, len(native))
    elif gate == "verbal_conf":
      conf = sum(x["verbal"][i] for i in rows) / G
    else:
      conf = math.exp(sum(x["logp"][i] for i in rows) / G)
    enough = 1.0 if len(native) >= m_min else 0.0
    if mode == "hard":
      out.append(enough * (1.0 if conf >= tau else 0.0))
    else:
      out.append(enough / (1.0 + math.exp(-kappa * (conf - tau))))
  return np.asarray(out)


@pytest.mark.parametrize("gate", gg.GATES)
@pytest.mark.parametrize("mode", gg.MODES)
@pytest.mark.parametrize("m_min", [0, 1, 2])
def test_gate_matches_numpy(gate, mode, m_min):
  x = _inputs(seed=m_min)
  cfg = gg.GateCfg(gate=gate, mode=mode, m_min=m_min, group_size=G)
  for tau, kappa in ((0.5, 10.0), (0.3, 3.0)):
    g = gg.compute_gate(x["correct"], x["translated"], gg.GateKnobs.create(tau=tau, kappa=kappa),
                        cfg=cfg, verbal_conf_B=x["verbal"], first_token_logp_B=x["logp"])
    np.testing.assert_allclose(np.asarray(g), _np_gate(x, gate, mode, m_min, tau, kappa),
                               rtol=1e-5, atol=1e-6)


def test_native_stats_and_all_translated_group():
  # Group 0: all translated; group 1: natives 2 of which 1 correct; group 2: natives all correct.
  correct = np.array([1, 1, 1, 1, 1, 0, 1, 1, 1, 1, 0, 0], np.float32)
  translated = np.array([1, 1, 1, 1, 0, 0, 1, 1, 0, 0, 0, 1], np.float32)
  p, n = gg.native_stats(correct, translated, group_size=4)
  np.testing.assert_allclose(np.asarray(p), [0.0, 0.5, 2 / 3], rtol=1e-6)
  np.testing.assert_allclose(np.asarray(n), [0, 2, 3])
  knobs = gg.GateKnobs.create(lam=0.5, tau=0.5, kappa=4.0)
  hard = gg.compute_gate(correct, translated, knobs, cfg=gg.GateCfg(group_size=4))
  np.testing.assert_allclose(np.asarray(hard), [0.0, 1.0, 1.0])
  # Soft gate with m_min = 0: the all-translated group has p = 0 -> sigmoid(4 * (0 - 0.5)).
  soft = gg.compute_gate(correct, translated, knobs,
                         cfg=gg.GateCfg(group_size=4, mode="soft", m_min=0))
  np.testing.assert_allclose(np.asarray(soft)[0], 1 / (1 + math.exp(2.0)), rtol=1e-6)
  # Translating is free where the gate is closed: R = r in group 0, r - lam c elsewhere.
  cost = translated * 1.0
  r = gg.gated_reward(correct, cost, hard, knobs.lam)
  np.testing.assert_allclose(np.asarray(r), correct - 0.5 * cost * np.repeat([0, 1, 1], 4))


def test_gated_reward_and_advantages_match_numpy():
  x = _inputs(seed=7)
  lam = 0.3
  g = np.array([0.0, 1.0, 0.25, 0.8, 1.0], np.float32)
  r = np.asarray(gg.gated_reward(x["reward"], x["cost"], g, lam))
  ref_r = np.array([x["reward"][i] - lam * x["cost"][i] * g[i // G] for i in range(len(g) * G)])
  np.testing.assert_allclose(r, ref_r, rtol=1e-6, atol=1e-6)
  for normalize in ("std", "none"):
    cfg = gg.GateCfg(group_size=G, normalize=normalize)
    a = np.asarray(gg.gated_advantages(r, cfg=cfg))
    ref = []
    for q in range(len(g)):
      grp = ref_r[q * G:(q + 1) * G]
      centred = grp - grp.mean()
      ref.extend(centred / (grp.std(ddof=1) + 1e-6) if normalize == "std" else centred)
    np.testing.assert_allclose(a, np.asarray(ref), rtol=1e-5, atol=1e-5)


def test_cost_in_advantage_adds_the_unnormalised_cost_after_the_group_norm():
  x = _inputs(seed=3)
  knobs = gg.GateKnobs.create(lam=0.4, tau=0.5)
  cfg_r = gg.GateCfg(group_size=G, gate="native_success", m_min=1)
  cfg_a = gg.GateCfg(group_size=G, gate="native_success", m_min=1, cost_in="advantage")
  g = np.asarray(gg.compute_gate(x["correct"], x["translated"], knobs, cfg=cfg_r))
  a, _ = gg.gated_gspo_advantages(x["reward"], x["cost"], x["correct"], x["translated"], knobs,
                                  cfg=cfg_a)
  ref = []
  for q in range(len(g)):
    grp = np.asarray(x["reward"][q * G:(q + 1) * G], np.float64)
    norm = (grp - grp.mean()) / (grp.std(ddof=1) + 1e-6)
    ref.extend(norm - 0.4 * np.asarray(x["cost"][q * G:(q + 1) * G]) * g[q])
  np.testing.assert_allclose(np.asarray(a), np.asarray(ref), rtol=1e-5, atol=1e-5)
  # A group where every rollout pays the same charged cost: "reward" cancels it, "advantage" not.
  same = dict(reward_B=np.ones(G), cost_B=np.ones(G), correct_B=np.ones(G),
              translated_B=np.r_[np.zeros(2), np.ones(G - 2)])
  for cfg, want in ((cfg_r, 0.0), (cfg_a, -0.4)):
    adv, _ = gg.gated_gspo_advantages(**same, knobs=knobs, cfg=cfg)
    np.testing.assert_allclose(np.asarray(adv), want, atol=1e-6)
  with pytest.raises(ValueError, match="cost_in"):
    gg.GateCfg(cost_in="loss")


def test_end_to_end_jit_one_compile_for_a_knob_sweep():
  x = _inputs(seed=3)
  cfg = gg.GateCfg(gate="native_success", mode="soft", m_min=1, group_size=G)
  traces = []

  def fn(knobs, reward, cost, correct, translated):
    traces.append(1)  # runs only while tracing
    return gg.gated_gspo_advantages(reward, cost, correct, translated, knobs, cfg=cfg)

  jitted = jax.jit(fn)
  args = (x["reward"], x["cost"], x["correct"], x["translated"])
  for lam, tau, kappa in ((0.0, 0.5, 10.0), (0.2, 0.3, 5.0), (1.0, 0.9, 20.0)):
    adv, metrics = jitted(gg.GateKnobs.create(lam=lam, tau=tau, kappa=kappa), *args)
    g = _np_gate(x, "native_success", "soft", 1, tau, kappa)
    big_r = x["reward"] - lam * x["cost"] * np.repeat(g, G)
    ref = []
    for q in range(len(g)):
      grp = big_r[q * G:(q + 1) * G]
      ref.extend((grp - grp.mean()) / (grp.std(ddof=1) + 1e-6))
    np.testing.assert_allclose(np.asarray(adv), ref, rtol=1e-4, atol=1e-4)
    assert float(metrics["gate/mean"]) == pytest.approx(g.mean(), rel=1e-5)
    assert float(metrics["reward/gated_mean"]) == pytest.approx(big_r.mean(), rel=1e-5, abs=1e-6)
    assert float(metrics["tool/translate_rate"]) == pytest.approx(x["translated"].mean())
  assert len(traces) == 1


def test_gate_none_is_the_ungated_penalty():
  x = _inputs(seed=5)
  cfg = gg.GateCfg(gate="none", group_size=G, normalize="none")
  adv, _ = gg.gated_gspo_advantages(x["reward"], x["cost"], x["correct"], x["translated"],
                                    gg.GateKnobs.create(lam=0.4), cfg=cfg)
  big_r = x["reward"] - 0.4 * x["cost"]
  ref = (big_r.reshape(-1, G) - big_r.reshape(-1, G).mean(axis=1, keepdims=True)).reshape(-1)
  np.testing.assert_allclose(np.asarray(adv), ref, rtol=1e-5, atol=1e-6)


def test_errors():
  with pytest.raises(ValueError, match="native_success, verbal_conf, logprob_conf"):
    gg.GateCfg(gate="entropy")
  with pytest.raises(ValueError, match="mode"):
    gg.GateCfg(mode="medium")
  with pytest.raises(ValueError, match="m_min"):
    gg.GateCfg(m_min=-1)
  x = _inputs()
  knobs = gg.GateKnobs.create()
  with pytest.raises(ValueError, match="verbal_conf_B"):
    gg.compute_gate(x["correct"], x["translated"], knobs, cfg=gg.GateCfg(gate="verbal_conf",
                                                                         group_size=G))
  with pytest.raises(ValueError, match="first_token_logp_B"):
    gg.compute_gate(x["correct"], x["translated"], knobs, cfg=gg.GateCfg(gate="logprob_conf",
                                                                         group_size=G))
  with pytest.raises(ValueError, match="not divisible by group_size 3"):
    gg.native_stats(x["correct"], x["translated"], group_size=3)
  with pytest.raises(ValueError, match="translated_B has 3 rows"):
    gg.native_stats(x["correct"], x["translated"][:3], group_size=G)
  with pytest.raises(ValueError, match="g_Q"):
    gg.gated_reward(x["reward"], x["cost"], jnp.ones(3), 0.1)


def test_native_history_pools_decayed_per_language_evidence():
  """Three steps of a per-language dict loop in numpy vs NativeHistory + pooled native_stats."""
  decay, num_langs, tau = 0.8, 3, 0.5
  hist = gg.NativeHistory.create(num_langs)
  ref_hits, ref_n = np.zeros(num_langs), np.zeros(num_langs)
  cfg = gg.GateCfg(group_size=G, m_min=2)
  knobs = gg.GateKnobs.create(tau=tau)
  for step in range(3):
    x = _inputs(seed=10 + step)
    lang_Q = np.array([0, 2, 2, 1, 0])  # two groups of language 2 and of language 0 in one step
    prior_hits, prior_n = hist.prior(lang_Q)
    np.testing.assert_allclose(np.asarray(prior_hits), ref_hits[lang_Q], rtol=1e-6)
    np.testing.assert_allclose(np.asarray(prior_n), ref_n[lang_Q], rtol=1e-6)
    step_hits, step_n = np.zeros(num_langs), np.zeros(num_langs)
    expected_gate = []
    for q, lang in enumerate(lang_Q):
      rows = range(q * G, (q + 1) * G)
      native = [i for i in rows if x["translated"][i] == 0]
      hits = sum(x["correct"][i] for i in native)
      n = len(native) + ref_n[lang]
      p = (hits + ref_hits[lang]) / max(1.0, n)
      expected_gate.append(float(p >= tau and n >= 2))
      step_hits[lang] += hits
      step_n[lang] += len(native)
    g = gg.compute_gate(x["correct"], x["translated"], knobs, cfg=cfg, prior_hits_Q=prior_hits,
                        prior_n_Q=prior_n)
    np.testing.assert_allclose(np.asarray(g), expected_gate)
    hist = hist.update(lang_Q, *gg.native_counts(x["correct"], x["translated"], group_size=G),
                       decay)
    ref_hits, ref_n = decay * (ref_hits + step_hits), decay * (ref_n + step_n)
  np.testing.assert_allclose(np.asarray(hist.hits_K), ref_hits, rtol=1e-6)
  assert ref_n.min() > 0  # every language has evidence by now
  # A group with no native rollout of its own still gets a gate from its language's history.
  translated = np.ones(G, np.float32)
  g = gg.compute_gate(np.ones(G), translated, knobs, cfg=cfg, prior_hits_Q=jnp.array([3.0]),
                      prior_n_Q=jnp.array([4.0]))
  np.testing.assert_allclose(np.asarray(g), [1.0])
  with pytest.raises(ValueError, match="both prior_hits_Q and prior_n_Q"):
    gg.native_stats(np.ones(G), translated, group_size=G, prior_hits_Q=jnp.array([3.0]))
  with pytest.raises(ValueError, match="one per group"):
    gg.native_stats(np.ones(G), translated, group_size=G, prior_hits_Q=jnp.zeros(2),
                    prior_n_Q=jnp.zeros(2))


def test_history_weight_caps_the_prior_at_w_native_answers():
  """prior(max_weight=w) vs hand-computed counts; with w = 2 a 2-answer group decides (2/2 on a
  cell of rate 0.3 opens the gate, 1/2 does not), with the full history the cell's rate wins."""
  hist = gg.NativeHistory(hits_K=jnp.array([3.0, 0.5, 0.0]), n_K=jnp.array([10.0, 1.0, 0.0]))
  cell_Q = np.array([0, 1, 2, 0])
  hits, n = hist.prior(cell_Q, 2.0)
  # cell 0: rate 0.3 over 10 answers -> 2 answers at rate 0.3; cell 1: 1 answer, under the cap;
  # cell 2: no history.
  np.testing.assert_allclose(np.asarray(hits), [0.6, 0.5, 0.0, 0.6], rtol=1e-6)
  np.testing.assert_allclose(np.asarray(n), [2.0, 1.0, 0.0, 2.0], rtol=1e-6)
  for w in (None, float("inf")):
    np.testing.assert_allclose(np.asarray(hist.prior(cell_Q, w)[0]), [3.0, 0.5, 0.0, 3.0])
  np.testing.assert_allclose(np.asarray(hist.prior(cell_Q, 0.0)[1]), [0.0] * 4)
  with pytest.raises(ValueError, match="max_weight must be >= 0"):
    hist.prior(cell_Q, -1.0)
  # Two groups of cell 0 (rate 0.3), each with 2 native answers (the other 2 rows translated):
  # 2/2 correct and 1/2 correct.
  cfg, knobs = gg.GateCfg(group_size=G, m_min=2), gg.GateKnobs.create(tau=0.5)
  translated = np.array([1, 1, 0, 0, 1, 1, 0, 0], np.float32)
  correct = np.array([1, 1, 1, 1, 1, 1, 1, 0], np.float32)
  capped = dict(zip(("prior_hits_Q", "prior_n_Q"), hist.prior(np.array([0, 0]), 2.0)))
  full = dict(zip(("prior_hits_Q", "prior_n_Q"), hist.prior(np.array([0, 0]))))
  # (2 + 0.6) / 4 = 0.65 >= 0.5; (1 + 0.6) / 4 = 0.4 < 0.5; full history: 5/12, 4/12 < 0.5.
  np.testing.assert_allclose(np.asarray(gg.compute_gate(correct, translated, knobs, cfg=cfg,
                                                        **capped)), [1.0, 0.0])
  np.testing.assert_allclose(np.asarray(gg.compute_gate(correct, translated, knobs, cfg=cfg,
                                                        **full)), [0.0, 0.0])


def test_decision_weight_scales_only_the_decision_gradient_of_gspo():
  """GSPO-token with decision-weighted advantages: the gradient of GSPO with the decision
  token's entry times the weight (hand-derived, numpy)."""
  from rl_jax.algorithms import losses
  rng = np.random.default_rng(3)
  b, length, weight = 6, 9, 10.0
  mask = np.zeros((b, length), np.float32)
  decision = np.zeros((b, length), np.float32)
  for i, (start, n) in enumerate([(2, 5), (2, 7), (3, 3), (2, 1), (4, 5), (2, 6)]):
    mask[i, start:start + n] = 1.0
    if i != 4:  # row 4 has no decision token (a forced native row)
      decision[i, start] = 1.0
  old = np.log(rng.uniform(0.1, 0.9, (b, length))).astype(np.float32)
  # Within GSPO's clip range (eps 3e-4 / 4e-4), so no sequence is clipped.
  logp = (old + rng.uniform(-1e-4, 1e-4, (b, length))).astype(np.float32)
  adv = rng.normal(size=b).astype(np.float32)
  adv_BxL = gg.decision_weighted_advantages(adv, decision, weight)
  np.testing.assert_allclose(np.asarray(adv_BxL),
                             adv[:, None] * np.where(decision > 0, weight, 1.0), rtol=1e-6)

  # Reference: n_i tokens, s_i = exp(mean_t (logp - old)); L = -(1/B) sum_i A_i s_i.
  n = mask.sum(1)
  s = np.exp((mask * (logp - old)).sum(1) / n)
  weight_BxL = np.where(decision > 0, weight, 1.0)
  ref_value_gspo = -(adv * s).mean()
  ref_value_weighted = -(adv * s * (mask * weight_BxL).sum(1) / n).mean()
  ref_grad_gspo = -(adv * s / n)[:, None] * mask / b
  ref_grad_weighted = ref_grad_gspo * weight_BxL
  for name, a, ref_value, ref_grad in (
      ("gspo", adv, ref_value_gspo, ref_grad_gspo),
      ("gspo_token", adv_BxL, ref_value_weighted, ref_grad_weighted)):
    pre = losses.preset(name)

    def f(lp, pre=pre, a=a):
      s_, d_, _ = losses.policy_loss(lp, old, a, mask, losses.LossKnobs.create(**pre.knobs),
                                     cfg=pre.cfg)
      return s_ / d_

    value, grad = jax.value_and_grad(f)(jnp.asarray(logp))
    np.testing.assert_allclose(float(value), ref_value, rtol=1e-5)
    np.testing.assert_allclose(np.asarray(grad), ref_grad, rtol=1e-4, atol=1e-7)
  with pytest.raises(ValueError, match="same B"):
    gg.decision_weighted_advantages(adv[:3], decision, weight)


@pytest.mark.parametrize("mode", gg.MODES)
@pytest.mark.parametrize("threshold", ["tool_gain", "tool_gain_floor"])
def test_tool_gain_threshold_matches_numpy(mode, threshold):
  """threshold "tool_gain": tau_q = p_tool_q - lam * (mean cost of the group's calls), with the
  call counts pooled with a prior; "tool_gain_floor": max(tau, that); vs a per-group loop."""
  x = _inputs(seed=7)
  num_groups = len(x["correct"]) // G
  tool_hits, tool_n = np.arange(num_groups, dtype=np.float32), np.full(num_groups, 4.0)
  cfg = gg.GateCfg(gate="native_success", mode=mode, threshold=threshold, m_min=1,
                   group_size=G)
  floor = 0.4
  for lam, kappa in ((0.1, 10.0), (0.5, 3.0)):
    expected = []
    for q in range(num_groups):
      rows = range(q * G, (q + 1) * G)
      native = [i for i in rows if x["translated"][i] == 0]
      calls = [i for i in rows if x["translated"][i] == 1]
      p_native = sum(x["correct"][i] for i in native) / max(1, len(native))
      p_tool = (sum(x["correct"][i] for i in calls) + tool_hits[q]) / max(1, len(calls) + 4)
      cbar = sum(x["cost"][i] for i in calls) / max(1, len(calls))
      tau = p_tool - lam * cbar
      if threshold == "tool_gain_floor":
        tau = max(floor, tau)
      if mode == "hard":
        open_ = float(p_native >= tau)
      else:
        open_ = 1 / (1 + math.exp(-kappa * (p_native - tau)))
      expected.append(open_ * float(len(native) >= 1))
    knobs = gg.GateKnobs.create(lam=lam, tau=floor, kappa=kappa)
    g = gg.compute_gate(x["correct"], x["translated"], knobs, cfg=cfg, cost_B=x["cost"],
                        prior_tool_hits_Q=tool_hits, prior_tool_n_Q=tool_n)
    np.testing.assert_allclose(np.asarray(g), expected, rtol=1e-5, atol=1e-6)
  # tool_B: only the calls that ran count for p_tool (row 0 of group 0 a malformed call: not a
  # tool call); with no call in the group or its prior, p_tool = 1 (an untried tool).
  tool_B = x["translated"].copy()
  tool_B[0] = 0.0
  p_tool, cbar = gg.tool_stats(x["correct"], tool_B, x["cost"], group_size=G)
  calls0 = range(1, G)
  np.testing.assert_allclose(float(p_tool[0]), sum(x["correct"][i] for i in calls0) / (G - 1),
                             rtol=1e-6)
  np.testing.assert_allclose(float(cbar[0]), sum(x["cost"][i] for i in calls0) / (G - 1),
                             rtol=1e-6)
  np.testing.assert_allclose([float(p_tool[1]), float(cbar[1])], [1.0, 0.0])  # group 1: no call
  with pytest.raises(ValueError, match="needs cost_B"):
    gg.compute_gate(x["correct"], x["translated"], gg.GateKnobs.create(), cfg=cfg)
  with pytest.raises(ValueError, match="GateCfg.threshold"):
    gg.GateCfg(threshold="gain")


def test_tool_gain_threshold_charges_more_cells_at_a_higher_price():
  """One group, 2 native answers (1 correct: p_native 0.5) and 2 calls of cost 1 (both correct:
  p_tool 1): the tool gains 0.5. At lam = 0.25 the price is below the gain (free: g = 0), at
  lam = 0.5 it matches it (charged: g = 1); the fixed tau = 0.5 charges at both prices. With
  the floor tau = 0.75 (above p_native 0.5) "tool_gain_floor" charges at neither price; with
  tau = 0.5 it is "tool_gain"."""
  correct = np.array([1, 1, 1, 0], np.float32)
  translated = np.array([1, 1, 0, 0], np.float32)
  cost = np.array([1, 1, 0, 0], np.float32)
  for threshold, tau, expected in (("tool_gain", 0.5, [0.0, 1.0]), ("fixed", 0.5, [1.0, 1.0]),
                                   ("tool_gain_floor", 0.75, [0.0, 0.0]),
                                   ("tool_gain_floor", 0.5, [0.0, 1.0])):
    cfg = gg.GateCfg(group_size=G, m_min=2, threshold=threshold)
    got = [float(gg.compute_gate(correct, translated, gg.GateKnobs.create(lam=lam, tau=tau),
                                 cfg=cfg, cost_B=cost)[0]) for lam in (0.25, 0.5)]
    assert got == expected, (threshold, tau, got)
  # The gated reward then charges the calls at lam = 0.5 only: R = r - lam * c * g.
  adv, m = gg.gated_gspo_advantages(correct, cost, correct, translated,
                                    gg.GateKnobs.create(lam=0.5),
                                    cfg=gg.GateCfg(group_size=G, m_min=2, threshold="tool_gain"))
  np.testing.assert_allclose(float(m["reward/gated_mean"]), (0.5 + 0.5 + 1 + 0) / 4)
