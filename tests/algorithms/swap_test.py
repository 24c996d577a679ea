"""SWAP (rl_jax.algorithms.swap) against numpy references and hand cases.

- the splitter: delimiter and regex, blank chunks, the trigger, no step at all;
- excess lengths, step penalties and the unified advantage against a float64 numpy loop
  written from the formulas (docs/swap.md), on a hand-made group: incorrect responses get no
  length penalty, every correct response's penalties sum to its mass, low-importance steps
  carry more of it, a response without steps falls back to the uniform penalty;
- the one-pass probe equals one forward per prefix (<= 1e-5) and a forward of the trimmed
  sequence itself; the qwen3 forward without a mask is bitwise unchanged.
"""
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rl_jax.algorithms import swap, swap_probe
from rl_jax.algorithms.advantage_parts import ADVANTAGES
from rl_jax.models import qwen3
from rl_jax.models.config import get_model_config
from rl_jax.rewards.scorers import Scores
from rl_jax.sampling.rollouts import RolloutOutput
from rl_jax.tokenizers import train_sentencepiece
from rl_jax.types import Rollout

CFG = swap.SwapCfg(delimiter=";", trigger="A", max_steps=4, max_answer_tokens=3)


# ------------------------------------------------------------------------------- splitting


def test_delimiter_splitter_hand_cases():
  text = "q7+5;7+5=12;;v7+5=12;A12"
  spans, end = swap_probe.split_steps(text, CFG)
  assert [text[a:b] for a, b in spans] == ["q7+5;", "7+5=12;", "v7+5=12;"]
  assert end == text.index("A")
  # no trigger: the whole text is reasoning; a last chunk without delimiter is a step
  spans, end = swap_probe.split_steps("1+2=3;3+4=7", CFG)
  assert [(0, 6), (6, 11)] == spans and end == 11


def test_regex_splitter():
  cfg = dataclasses.replace(CFG, splitter="regex", pattern=r"\n\n+|(?=Step)", trigger="Final:")
  text = "Step 1 add\n\nStep 2 more\n\n\nnote\nFinal: 3"
  spans, _ = swap_probe.split_steps(text, cfg)
  assert [text[a:b] for a, b in spans] == ["Step 1 add\n\n", "Step 2 more\n\n\n", "note\n"]


def test_splitter_that_finds_no_step():
  # Answering at once, or blank reasoning: no step (the documented fallback applies later).
  assert swap_probe.split_steps("A12", CFG) == ([], 0)
  assert swap_probe.split_steps(";;  ;A3", CFG)[0] == []


def test_bad_config_is_named():
  with pytest.raises(ValueError, match="rl.advantage.weighting"):
    swap.SwapCfg(weighting="cubic")
  with pytest.raises(ValueError, match="empty string"):
    swap.SwapCfg(splitter="regex", pattern="x*")
  with pytest.raises(ValueError, match="unknown SWAP field"):
    swap.swap_cfg({"name": "swap", "alpah": 1.0})
  with pytest.raises(ValueError, match="tau"):
    swap.SwapCfg(tau=0.0)


# ------------------------------------------------------------------------------- penalties


def np_excess(resp, correct, g, reference="shortest", ratio=1.0):
  out = np.zeros(len(resp))
  for s in range(0, len(resp), g):
    lens = [resp[i] for i in range(s, s + g) if correct[i]]
    if not lens:
      continue
    ref = min(lens) if reference == "shortest" else ratio * np.mean(lens)
    for i in range(s, s + g):
      out[i] = max(0.0, resp[i] - ref) if correct[i] else 0.0
  return out


def np_token_pen(p_rows, seg_rows, excess, resp, mask_rows, alpha, tau, units):
  """Per-row loop from the formulas: softmax normalisation, linear weighting."""
  out = []
  for p, seg, e, n, m in zip(p_rows, seg_rows, excess, resp, mask_rows):
    seg = np.asarray(seg)
    mass = alpha * e / n if n > 0 else 0.0
    steps = sorted(set(int(s) for s in seg if s >= 0))
    pen = np.zeros(len(seg))
    if not steps:  # fallback: uniform over the response's tokens
      pen = np.where(np.asarray(m) > 0, mass / n, 0.0)
    else:
      lens = np.array([np.sum(seg == k) for k in steps], float)
      imp = np.array([p[k + 1] - p[k] for k in steps])
      soft = np.exp(imp / tau) / np.exp(imp / tau).sum()
      raw = lens * (1 - soft)
      u = raw / raw.sum() if raw.sum() > 0 else lens / lens.sum()
      for j, k in enumerate(steps):
        pen[seg == k] = mass * u[j] / lens[j]
    out.append(pen * (n if units == "per_response" else 1.0))
  return np.array(out)


def hand_group():
  """One group of G = 4 over a layout of P = 2 prompt slots + 10 response slots.

  row 0: correct, 3 steps (lengths 2, 3, 2) + 2 answer tokens + stop = 10 tokens; step 1 is
         the important one (P jumps there)
  row 1: correct, 2 steps, 6 tokens (the group's shortest correct: E = 0)
  row 2: incorrect, 10 tokens (no length penalty whatever its length)
  row 3: correct, no step at all (answers at once), 8 tokens: fallback to uniform"""
  p_len, n = 2, 10
  seg = np.full((4, p_len + n), -1, np.int32)
  seg[0, 2:9] = [0, 0, 1, 1, 1, 2, 2]
  seg[1, 2:5] = [0, 1, 1]
  seg[2, 2:10] = [0, 0, 1, 1, 2, 2, 3, 3]
  resp = np.array([10, 6, 10, 8], np.float32)
  mask = np.zeros((4, p_len + n), np.float32)
  for i, r in enumerate(resp):
    mask[i, p_len:p_len + int(r)] = 1
  # P_k = answer log-prob after k steps, k = 0..4 (one answer token here).
  logp = np.array([[-5.0, -4.9, -1.0, -1.1, -1.1],
                   [-5.0, -3.0, -0.5, -0.5, -0.5],
                   [-6.0, -6.0, -5.0, -5.5, -5.0],
                   [-2.0, -2.0, -2.0, -2.0, -2.0]], np.float32)[:, :, None]
  amask = np.ones((4, 1), bool)
  correct = np.array([1, 1, 0, 1], bool)
  return seg, resp, mask, logp, amask, correct


def test_excess_lengths_hand_case():
  _, resp, _, _, _, correct = hand_group()
  e = swap.excess_lengths(resp, correct, 4)
  np.testing.assert_array_equal(e, [4.0, 0.0, 0.0, 2.0])  # shortest correct = 6; row 2 wrong
  np.testing.assert_allclose(swap.excess_lengths(resp, correct, 4, "ratio", 0.5),
                             np_excess(resp, correct, 4, "ratio", 0.5))
  # a group without a correct response has no excess at all
  np.testing.assert_array_equal(swap.excess_lengths(resp, np.zeros(4, bool), 4), 0.0)


@pytest.mark.parametrize("units", ["per_response", "per_token"])
def test_swap_penalties_match_numpy_and_sum_to_the_mass(units):
  seg, resp, mask, logp, amask, correct = hand_group()
  cfg = dataclasses.replace(CFG, alpha=2.0, tau=0.5, units=units)
  excess = swap.excess_lengths(resp, correct, 4)
  pen, out, no_step = swap.token_penalties(cfg, logp, amask, seg, mask, excess, resp)
  ref = np_token_pen(logp[:, :, 0], seg, excess, resp, mask, 2.0, 0.5, units)
  # atol: f32 cancellation in 1 - softmax when one step holds ~all the softmax mass.
  np.testing.assert_allclose(pen, ref, rtol=1e-5, atol=1e-6)
  np.testing.assert_array_equal(no_step, [False, False, False, True])
  scale = resp if units == "per_response" else np.ones(4)
  mass = 2.0 * excess / resp
  np.testing.assert_allclose(pen.sum(1) / scale, mass, rtol=1e-5)  # penalties sum to M_i
  assert pen[2].sum() == 0.0 and pen[1].sum() == 0.0   # incorrect / shortest: no penalty
  # Row 0: the important step (1) carries less per token than the unimportant ones.
  per_token = {k: pen[0][seg[0] == k][0] for k in range(3)}
  assert per_token[1] < per_token[0] and per_token[1] < per_token[2]
  # Answer and stop tokens (not in any step) of a row with steps carry nothing.
  assert np.all(pen[0][(seg[0] < 0)] == 0.0)


def test_uniform_and_none_arms():
  seg, resp, mask, logp, amask, correct = hand_group()
  excess = swap.excess_lengths(resp, correct, 4)
  pen, _, _ = swap.token_penalties(dataclasses.replace(CFG, penalty="uniform"), logp, amask, seg,
                                   mask, excess, resp)
  np.testing.assert_allclose(pen, mask * (excess / resp)[:, None], rtol=1e-6)  # M_i per token
  pen, _, _ = swap.token_penalties(dataclasses.replace(CFG, penalty="none"), logp, amask, seg,
                                   mask, excess, resp)
  assert not pen.any()


def test_unified_advantage_matches_numpy():
  seg, resp, mask, logp, amask, correct = hand_group()
  reward = correct.astype(np.float32)
  excess = swap.excess_lengths(resp, correct, 4)
  pen, _, _ = swap.token_penalties(CFG, logp, amask, seg, mask, excess, resp)
  adv_out, adv = swap.unified_advantages(reward, pen, mask, 4, gamma=0.7)
  r = reward.astype(np.float64)
  ref_out = (r - r.mean()) / (r.std(ddof=1) + 1e-6)
  np.testing.assert_allclose(adv_out, ref_out, rtol=1e-5)
  mean_pen = pen[mask > 0].mean()
  ref = np.where(mask > 0, ref_out[:, None] - 0.7 * (pen - mean_pen), 0.0)
  np.testing.assert_allclose(adv, ref, rtol=1e-5, atol=1e-6)
  # The incorrect row's advantage is its outcome advantage shifted by the same constant on
  # every token: no step of it is singled out.
  row2 = adv[2][mask[2] > 0]
  np.testing.assert_allclose(row2, row2[0])


def test_advantage_part_reads_extras_and_refuses_a_plain_rollout():
  seg, resp, mask, logp, amask, correct = hand_group()
  section = type("S", (), {"group_size": 4})()
  part = ADVANTAGES.build({"name": "swap", "delimiter": ";", "trigger": "A", "max_steps": 4},
                          "rl.advantage", section=section)
  tokens = np.zeros(mask.shape, np.int32)
  ro = Rollout(tokens, mask > 0, mask, mask * 0, mask * 0, resp.astype(np.int32),
               np.zeros(4, bool), prompt_len=2)
  scores = Scores(correct.astype(np.float32), {"correct": correct.astype(np.float32)})
  with pytest.raises(ValueError, match="rl.rollout.name='swap'"):
    part(scores, [None], RolloutOutput(ro, [""] * 4), {}, 0)
  extras = {swap.EXTRA_SEG: seg, swap.EXTRA_LOGP: logp,
            swap.EXTRA_AMASK: np.broadcast_to(amask[:, None], logp.shape).astype(np.float32)}
  adv_B, adv_BxL, metrics, _ = part(scores, [None], RolloutOutput(ro, [""] * 4, extras=extras),
                                    {}, 0)
  pen, _, _ = swap.token_penalties(part.cfg, logp, amask, seg, mask,
                                   swap.excess_lengths(resp, correct, 4), resp)
  np.testing.assert_allclose(adv_BxL, swap.unified_advantages(correct, pen, mask, 4, 1.0)[1])
  assert metrics["swap/no_step_frac"] == 0.25


# ------------------------------------------------------------------------------- probe pass


@pytest.fixture(scope="module")
def tiny():
  tok = train_sentencepiece(["0123456789+-=;>qvdA", "q7+5;7+5=12;A12"], vocab_size=40,
                            model_type="char", byte_fallback=False)
  cfg = get_model_config("tiny", vocab_size=tok.vocab_size, num_layers=2, hidden_size=32,
                         num_heads=4, num_kv_heads=2, head_dim=8, intermediate_size=64,
                         max_seq_len=128)
  return tok, cfg, qwen3.init_params(cfg, jax.random.key(3))


def _layout(tok, texts, answers, p_len=6, n=32, cfg=CFG):
  b = len(texts)
  tokens = np.full((b, p_len + n), tok.pad_id, np.int32)
  valid = np.zeros((b, p_len + n), bool)
  mask = np.zeros((b, p_len + n), np.float32)
  for i, text in enumerate(texts):
    prompt = tok.encode(["7+5", "3-1+4", "9"][i % 3])
    tokens[i, p_len - len(prompt):p_len] = prompt
    valid[i, p_len - len(prompt):p_len] = True
    ids = tok.encode(text) + [tok.eos_id]
    tokens[i, p_len:p_len + len(ids)] = ids
    valid[i, p_len:p_len + len(ids)] = True
    mask[i, p_len:p_len + len(ids)] = 1
  problems = [type("P", (), {"answer": a})() for a in answers]
  return tokens, valid, mask, swap_probe.build_layout(tok, problems, tokens, mask, p_len,
                                                (tok.eos_id,), cfg)


def test_one_pass_equals_one_forward_per_prefix(tiny):
  tok, cfg, params = tiny
  texts = ["q7+5;7+5=12;v7+5=12;A12", "3-1=2;2+4=6;A6", "A9", "d9>1;q9;9;A9"]
  tokens, valid, _, lay = _layout(tok, texts, ["12", "6", "9", "9"])
  np.testing.assert_array_equal(lay.num_steps_B, [3, 2, 0, 3])
  args = (params, jnp.asarray(tokens), jnp.asarray(valid), jnp.asarray(lay.cut_BxKp1),
          jnp.asarray(lay.probe_BxQ), jnp.asarray(lay.probe_valid_BxQ),
          jnp.asarray(lay.answer_BxA))
  one = np.asarray(swap_probe.probe_answer_logp(*args, model_cfg=cfg, trigger_len=lay.trigger_len))
  naive = np.asarray(swap_probe.naive_probe_answer_logp(*args, model_cfg=cfg,
                                                  trigger_len=lay.trigger_len))
  assert one.shape == (4, CFG.max_steps + 1, CFG.max_answer_tokens)
  np.testing.assert_allclose(one, naive, atol=1e-5)
  # And against the trimmed sequence on its own (no padding at all): row 0 after step 2.
  p_len = 6
  prompt = tok.encode("7+5")
  cut = int(lay.cut_BxKp1[0, 2])
  seq = prompt + list(tokens[0, p_len:cut]) + tok.encode("A") + tok.encode("12") + [tok.eos_id]
  x = jnp.asarray([seq], jnp.int32)
  hidden, _ = qwen3.forward(params, x, jnp.arange(len(seq))[None], jnp.ones_like(x, bool),
                            cfg=cfg)
  logp = jax.nn.log_softmax(qwen3.logits(params, hidden, cfg=cfg), -1)[0]
  start = len(seq) - 4  # the trigger; answer ids at start+1..start+3
  direct = [float(logp[start + j, seq[start + 1 + j]]) for j in range(3)]
  np.testing.assert_allclose(one[0, 2], direct, atol=1e-5)


def test_forward_without_mask_is_unchanged(tiny):
  tok, cfg, params = tiny
  tokens, valid, _, _ = _layout(tok, ["q7+5;7+5=12;A12"], ["12"])
  pos = qwen3.positions_from_mask(jnp.asarray(valid))
  plain, _ = qwen3.forward(params, jnp.asarray(tokens), pos, jnp.asarray(valid), cfg=cfg)
  ones = jnp.ones((1, tokens.shape[1], tokens.shape[1]), bool)
  masked, _ = qwen3.forward(params, jnp.asarray(tokens), pos, jnp.asarray(valid), cfg=cfg,
                            attend_BxTxS=ones)
  np.testing.assert_array_equal(np.asarray(plain), np.asarray(masked))
  mask_default = qwen3._attention_mask(jnp.asarray(valid), tokens.shape[1], 0)
  causal = np.tril(np.ones((tokens.shape[1],) * 2, bool)) & valid[:, None, :]
  np.testing.assert_array_equal(np.asarray(mask_default), causal)


def test_too_long_answer_is_an_error(tiny):
  tok, _, _ = tiny
  with pytest.raises(ValueError, match="max_answer_tokens"):
    _layout(tok, ["A1234"], ["1234"])
