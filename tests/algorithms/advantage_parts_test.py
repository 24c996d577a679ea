"""Advantage parts: group / RLOO against numpy formulas, the gated part against a per-group
numpy re-implementation of the gate, its cost-free hold, decision weight and JSON state."""
import json
import types

import numpy as np
import pytest

from rl_jax.algorithms.advantage_parts import ADVANTAGES
from rl_jax.rewards.scorers import Scores


def _section(group_size, adv_normalize="std", algorithm="grpo"):
  return types.SimpleNamespace(group_size=group_size, adv_normalize=adv_normalize,
                               algorithm=algorithm)


def _scores(reward_B, **extras):
  extras = {k.replace("__", "/"): np.asarray(v, np.float32) for k, v in extras.items()}
  return Scores(np.asarray(reward_B, np.float32), extras)


def _out(batch, forced_B=None, prompt_len=3, seq_len=8):
  rollout = types.SimpleNamespace(prompt_len=prompt_len,
                                  tokens_BxL=np.zeros((batch, seq_len), np.int32))
  return types.SimpleNamespace(rollout=rollout, forced_B=forced_B)


@pytest.mark.parametrize("normalize", ["std", "none"])
def test_group_advantage_matches_numpy(normalize):
  g, n = 5, 6
  r = np.random.default_rng(0).normal(size=n * g).astype(np.float32)
  r[:g] = 1.0  # a constant group: advantage 0, never NaN
  part = ADVANTAGES.build({"name": "group"}, "rl.advantage", section=_section(g, normalize))
  adv_B, adv_BxL, metrics, state = part(_scores(r), None, None, {}, 0)
  r_NxG = r.astype(np.float64).reshape(n, g)
  centred = r_NxG - r_NxG.mean(axis=1, keepdims=True)
  want = centred / (r_NxG.std(axis=1, ddof=1, keepdims=True) + 1e-6) if normalize == "std" \
      else centred
  np.testing.assert_allclose(adv_B, want.reshape(-1), rtol=1e-5, atol=1e-6)
  assert adv_BxL is None and metrics == {} and state == {}
  assert np.all(adv_B[:g] == 0.0)


def test_group_normalize_kwarg_overrides_the_section():
  r = np.asarray([0.0, 1.0, 3.0, 0.0], np.float32)
  part = ADVANTAGES.build({"name": "group", "normalize": "none"}, "rl.advantage",
                          section=_section(4, "std"))
  np.testing.assert_allclose(part(_scores(r), None, None, {}, 0)[0], r - 1.0, atol=1e-7)


def test_rloo_advantage_matches_numpy():
  g, n = 4, 5
  r = np.random.default_rng(1).uniform(size=n * g).astype(np.float32)
  part = ADVANTAGES.build({"name": "rloo"}, "rl.advantage", section=_section(g))
  adv_B = part(_scores(r), None, None, {}, 0)[0]
  r_NxG = r.astype(np.float64).reshape(n, g)
  want = r_NxG - (r_NxG.sum(axis=1, keepdims=True) - r_NxG) / (g - 1)
  np.testing.assert_allclose(adv_B, want.reshape(-1), rtol=1e-5, atol=1e-6)


# A hand batch of 4 groups of G = 4 for the gated part. attempted = a call was tried (not a
# native answer); cost is charged on attempts.
G = 4
ATTEMPTED = [0, 0, 0, 1,   # q0: 3 native, 2 correct: p = 2/3 >= tau, n >= m_min -> gate 1
             0, 1, 1, 1,   # q1: 1 native (correct): p = 1 but n = 1 < m_min = 2 -> gate 0
             0, 0, 1, 1,   # q2: 2 native, 1 correct: p = 0.5 = tau (>=) -> gate 1
             1, 0, 0, 1]   # q3: 2 native, none correct: p = 0 -> gate 0
CORRECT = [1, 1, 0, 1,
           1, 1, 1, 1,
           0, 1, 1, 0,
           1, 0, 0, 1]
COST = [0.0, 0.0, 0.0, 0.5,
        0.0, 0.25, 0.5, 0.5,
        0.0, 0.0, 1.0, 0.5,
        0.5, 0.0, 0.0, 0.25]
GATE_BY_HAND = [1.0, 0.0, 1.0, 0.0]


def _gate_numpy(correct, attempted, tau, m_min):
  """g_q = 1[p_native_q >= tau and n_native_q >= m_min], per group (the gated_gspo docstring)."""
  gates = []
  for q in range(len(correct) // G):
    rows = range(q * G, (q + 1) * G)
    native = [i for i in rows if not attempted[i]]
    p_native = sum(correct[i] for i in native) / max(1, len(native))
    gates.append(float(p_native >= tau and len(native) >= m_min))
  return np.asarray(gates)


def _gated_numpy(reward, cost, gate_Q, lam):
  """A = group-normalised R, R_i = r_i - lam c_i g_q (std ddof 1, eps 1e-6)."""
  R = np.asarray(reward, np.float64) - lam * np.asarray(cost) * np.repeat(gate_Q, G)
  R_QxG = R.reshape(-1, G)
  A = (R_QxG - R_QxG.mean(1, keepdims=True)) / (R_QxG.std(1, ddof=1, keepdims=True) + 1e-6)
  return A.reshape(-1)


def _gated_scores(reward=CORRECT, cost=COST, correct=CORRECT, attempted=ATTEMPTED):
  return _scores(reward, tool__cost=cost, correct=correct, tool__attempted=attempted,
                 tool__used=attempted)


def _gated_part(**kwargs):
  algorithm = kwargs.pop("algorithm", "gspo")
  return ADVANTAGES.build({"name": "gated", **kwargs}, "rl.advantage",
                          section=_section(G, "std", algorithm))


def test_gated_matches_a_per_group_numpy_gate():
  lam, tau, m_min = 0.3, 0.5, 2
  gate_Q = _gate_numpy(CORRECT, ATTEMPTED, tau, m_min)
  np.testing.assert_array_equal(gate_Q, GATE_BY_HAND)
  part = _gated_part(lam=lam, tau=tau, m_min=m_min, history_decay=0.0, cost_free_steps=0)
  problems = [types.SimpleNamespace(id=q) for q in range(4)]
  adv_B, adv_BxL, metrics, _ = part(_gated_scores(), problems, _out(16), part.init_state(), 0)
  want = _gated_numpy(CORRECT, COST, gate_Q, lam)
  np.testing.assert_allclose(adv_B, want, rtol=1e-5, atol=1e-5)
  # The gate matters here: without it (all gates 1) the advantages differ.
  assert not np.allclose(want, _gated_numpy(CORRECT, COST, np.ones(4), lam), atol=1e-3)
  assert adv_BxL is None
  assert metrics["gate/lam"] == pytest.approx(lam)
  assert metrics["gate/mean"] == pytest.approx(0.5)


def test_gated_m_min_zero_opens_the_single_native_group():
  part = _gated_part(lam=0.3, tau=0.5, m_min=0)
  adv_B = part(_gated_scores(), [None] * 4, _out(16), part.init_state(), 0)[0]
  gate_Q = _gate_numpy(CORRECT, ATTEMPTED, 0.5, 0)
  np.testing.assert_array_equal(gate_Q, [1.0, 1.0, 1.0, 0.0])
  np.testing.assert_allclose(adv_B, _gated_numpy(CORRECT, COST, gate_Q, 0.3), rtol=1e-5,
                             atol=1e-5)


def test_cost_free_hold_until_the_sampled_attempt_rate_is_reached():
  lam = 0.3
  part = _gated_part(lam=lam, tau=0.5, m_min=2, cost_free_steps=1000, cost_free_until_rate=0.7)
  state = part.init_state()
  assert state["charging"] is False
  gate_Q = _gate_numpy(CORRECT, ATTEMPTED, 0.5, 2)
  free, charged = _gated_numpy(CORRECT, COST, gate_Q, 0.0), _gated_numpy(CORRECT, COST, gate_Q,
                                                                         lam)
  low = [1, 0, 0, 0] * 4   # attempt rate 0.25 (cost and correctness as in the hand batch)
  high = [1, 1, 1, 0] * 4  # attempt rate 0.75
  # The last row of each group is forced: its attempts do not count toward the rate.
  forced = np.asarray([0, 0, 0, 1] * 4, np.float32)
  forced_attempts = [1, 1, 0, 1] * 4  # sampled rate 2/3 < 0.7 <= all-row rate 0.75
  steps = [(_gated_scores(attempted=ATTEMPTED), None, False),  # ATTEMPTED: rate 0.5 < 0.7
           (_gated_scores(attempted=low), None, False),
           (_gated_scores(attempted=forced_attempts), forced, False),
           (_gated_scores(attempted=high), None, True),   # reaches 0.7: the price goes on
           (_gated_scores(attempted=low), None, True)]    # and stays on
  for step, (scores, forced_B, on) in enumerate(steps):
    adv_B, _, metrics, state = part(scores, [None] * 4, _out(16, forced_B), state, step)
    assert state["charging"] is on, step
    assert metrics["gate/lam"] == pytest.approx(lam if on else 0.0), step
    if step == 0:  # the hand batch: lam 0 gives the plain group advantages of r
      np.testing.assert_allclose(adv_B, free, rtol=1e-5, atol=1e-5)
  adv_B = part(_gated_scores(), [None] * 4, _out(16), state, 5)[0]
  np.testing.assert_allclose(adv_B, charged, rtol=1e-5, atol=1e-5)


def test_cost_free_steps_end_the_hold():
  part = _gated_part(lam=0.3, cost_free_steps=2, cost_free_until_rate=1.0)
  state = part.init_state()
  scores = _gated_scores(attempted=[0] * 16)
  for step, on in ((0, False), (1, False), (2, True)):
    _, _, metrics, state = part(scores, [None] * 4, _out(16), state, step)
    assert state["charging"] is on and metrics["gate/lam"] == pytest.approx(0.3 * on)


def test_decision_weight_scales_only_the_decision_slot_of_sampled_rows():
  prompt_len, seq_len, weight = 3, 8, 2.5
  part = _gated_part(lam=0.3, m_min=2, decision_weight=weight, algorithm="gspo_token")
  forced = np.asarray([0, 0, 0, 1] * 4, np.float32)
  adv_B, adv_BxL, _, _ = part(_gated_scores(), [None] * 4,
                              _out(16, forced, prompt_len, seq_len), part.init_state(), 0)
  assert adv_BxL.shape == (16, seq_len)
  want = np.repeat(np.asarray(adv_B, np.float64)[:, None], seq_len, axis=1)
  for i in range(16):
    if not forced[i]:
      want[i, prompt_len] *= weight
  np.testing.assert_allclose(adv_BxL, want, rtol=1e-6, atol=1e-7)
  assert np.abs(adv_B[forced == 0]).max() > 0  # some scaled entry is not zero
  with pytest.raises(ValueError, match="decision_weight != 1 gives per-token advantages"):
    _gated_part(decision_weight=2.0, algorithm="gspo")


def test_gated_state_json_round_trip():
  part = _gated_part(lam=0.3, tau=0.5, m_min=1, history_decay=0.5, cell_attrs=("lang",),
                     threshold="tool_gain", cost_free_steps=3, cost_free_until_rate=0.9)
  langs = ["de", "fr", "de", "sw"]
  problems = [types.SimpleNamespace(lang=lang) for lang in langs]
  _, _, _, state = part(_gated_scores(), problems, _out(16), part.init_state(), 0)
  assert state["cells"] == {"de": 0, "fr": 1, "sw": 2}
  assert any(state["native_n"]) and any(state["tool_n"])
  reloaded = json.loads(json.dumps(state, allow_nan=False))
  rng = np.random.default_rng(3)
  correct = (rng.uniform(size=16) < 0.5).astype(np.float32)
  attempted = (rng.uniform(size=16) < 0.5).astype(np.float32)
  scores = _gated_scores(reward=correct, correct=correct, attempted=attempted,
                         cost=0.5 * attempted)
  problems = [types.SimpleNamespace(lang=lang) for lang in ["sw", "en", "de", "fr"]]
  a = part(scores, problems, _out(16), state, 1)
  b = part(scores, problems, _out(16), reloaded, 1)
  np.testing.assert_array_equal(a[0], b[0])
  assert a[2] == b[2] and a[3] == b[3]
  assert a[3]["cells"]["en"] == 3
