"""`tool_rollout` with up to 4 calls per episode: exact layouts from scripted policy turns over a
`FunctionToolEnv` (JSON syntax, plain and chat responses). The real sampler over 4 tool
responses: tests/sampling/tool_loop_test.py."""
import types

import jax
import numpy as np
import pytest

from rl_jax.sampling import tool_loop
from rl_jax.tools import FunctionToolEnv, Tool, answer_text, episode_extras, get_syntax
from rl_jax.types import SampleKnobs

SPECIALS = ("<tool_call>", "</tool_call>", "<tool_response>", "</tool_response>", "<|im_start|>",
            "<|im_end|>")
PAD, EOS = 0, 1
LONG = "abcdefghijklmnopqrstuvwxyz0123456789ABCD"  # 40 characters


class CharTokenizer:
  """One id per ASCII character (100 + ord) and per chat / tool tag; exact round trips."""
  vocab_size, pad_id, eos_id, bos_id = 256, PAD, EOS, None
  special_ids = {s: 2 + i for i, s in enumerate(SPECIALS)}

  def encode(self, text):
    ids, i = [], 0
    while i < len(text):
      tag = next((s for s in SPECIALS if text.startswith(s, i)), None)
      ids.append(self.special_ids[tag] if tag else 100 + ord(text[i]))
      i += len(tag) if tag else 1
    return ids

  def decode(self, ids, keep_specials=False):
    names = {v: k for k, v in self.special_ids.items()}
    return "".join(names.get(i) or chr(i - 100) for i in ids if i not in (PAD, EOS))

  def token_id(self, piece):
    if piece in self.special_ids:
      return self.special_ids[piece]
    if len(piece) == 1:
      return 100 + ord(piece)
    raise ValueError(f"unknown token {piece!r}")


TOK = CharTokenizer()


def _fail(reason):
  raise ValueError(reason)


def _env(syntax):
  return FunctionToolEnv({"add": Tool(lambda a, b: a + b, cost=1.0),
                          "echo": Tool(lambda: LONG, cost=0.5),
                          "fail": Tool(lambda: _fail("no"), cost=0.25)},
                         syntax=syntax, max_calls=4)


def _call(name, **arguments):
  return TOK.encode(get_syntax("json").format_call(name, arguments))


def _answer(text):
  return TOK.encode(text) + [EOS]


# Policy turns per row (ids): row 0 four calls then an answer; row 1 answers at once; row 2 one
# call then an unknown tool (malformed: ends); row 3 four calls, then a fifth (budget: malformed).
SCRIPT = [
    [_call("add", a=1, b=2), _call("echo"), _call("fail"), _call("add", a=3, b=4), _answer("7!")],
    [_answer("I know: 3")],
    [_call("add", a=5, b=5), _call("mul", a=1, b=1)],
    [_call("echo"), _call("add", a=0, b=0), _call("add", a=1, b=1), _call("add", a=2, b=2),
     _call("add", a=9, b=9)],
]
# What each executed call returns (row 2's second and row 3's fifth call are malformed).
RESPONSES = [["3", LONG, "error: ValueError: no", "7"], [], ["10"], [LONG, "0", "2", "4"]]


def _logp(row, turn, j):
  return -(1.0 + row + 0.1 * turn + 0.01 * j)


def scripted_generate(seen_stop_ids, prompt_len, turn_tokens, tool_tokens):
  """A stand-in for `generate`: row k of turn t writes SCRIPT[k][t] (the turn is read from the
  prompt width P_t = P + t (N + R)), with log-probs `_logp`."""

  def generate(params, tokens, valid, key, knobs, *, model_cfg, cfg):
    del params, valid, key, knobs, model_cfg
    seen_stop_ids.append(cfg.stop_ids)
    tokens = np.asarray(tokens)
    b, p_t = tokens.shape
    turn = (p_t - prompt_len) // (turn_tokens + tool_tokens)
    out = np.full((b, p_t + turn_tokens), PAD, np.int32)
    out[:, :p_t] = tokens
    mask = np.zeros(out.shape, np.float32)
    logp = np.zeros(out.shape, np.float32)
    for k in range(b):
      ids = SCRIPT[k][turn] if turn < len(SCRIPT[k]) else [EOS]
      assert len(ids) <= turn_tokens
      out[k, p_t:p_t + len(ids)] = ids
      mask[k, p_t:p_t + len(ids)] = 1
      logp[k, p_t:p_t + len(ids)] = [_logp(k, turn, j) for j in range(len(ids))]
    return types.SimpleNamespace(tokens_BxL=out, loss_mask_BxL=mask, logp_policy_BxL=logp,
                                 logp_sample_BxL=2 * logp, truncated_B=np.zeros(b, bool))

  return generate


# Plain: "<tool_response>" + text + "</tool_response>" = 2 wrapper tokens; chat: 25 wrapper tokens
# ("<|im_end|>\n<|im_start|>user\n<tool_response>\n" + text + "\n</tool_response><|im_end|>\n
# <|im_start|>assistant\n"). R leaves 28 (plain) / 25 (chat) characters of text: LONG is cut.
@pytest.mark.parametrize("syntax, tool_tokens, kept", [("json", 30, 28), ("json_chat", 50, 25)])
def test_scripted_four_call_episodes_layout(monkeypatch, syntax, tool_tokens, kept):
  loop = tool_loop.ToolLoopCfg(prompt_len=8, turn_tokens=64, tool_tokens=tool_tokens,
                               max_calls=4, stop_ids=(EOS,), pad_id=PAD)
  stops = []
  monkeypatch.setattr(tool_loop, "generate", scripted_generate(stops, 8, 64, tool_tokens))
  env = _env(syntax)
  prompts = ["q0", "q1?", "q2", "q3"]
  out = tool_loop.tool_rollout(None, [0, 1, 2, 3], prompts, env, TOK, jax.random.key(0),
                               SampleKnobs.create(1.0), model_cfg=None, cfg=loop)
  # The syntax's stop strings end a turn, added to the configured stop ids.
  want = (EOS, TOK.token_id("</tool_call>")) + ((TOK.token_id("<|im_end|>"),) if
                                                 syntax == "json_chat" else ())
  assert all(s == want for s in stops)
  assert len(stops) == 5  # turns 0..4, each a generate call on all rows
  ro = out.rollout
  assert ro.tokens_BxL.shape == (4, loop.total_len) == (4, 8 + 5 * 64 + 4 * tool_tokens)
  tokens, valid = np.asarray(ro.tokens_BxL), np.asarray(ro.valid_BxL)
  mask, logp = np.asarray(ro.loss_mask_BxL), np.asarray(ro.logp_policy_BxL)
  sample = np.asarray(ro.logp_sample_BxL)
  for r in range(4):
    # Expected response: each turn's policy ids (mask 1), then the wrapped (cut) tool response.
    ids, m, lp = [], [], []
    for t, turn_ids in enumerate(SCRIPT[r]):
      ids += turn_ids
      m += [1.0] * len(turn_ids)
      lp += [_logp(r, t, j) for j in range(len(turn_ids))]
      if t < len(RESPONSES[r]):
        text = RESPONSES[r][t]
        resp = TOK.encode(env.syntax.format_response(text[:kept]))
        assert len(resp) <= tool_tokens
        ids += resp
        m += [0.0] * len(resp)
        lp += [0.0] * len(resp)
    prompt = TOK.encode(prompts[r])
    np.testing.assert_array_equal(tokens[r, 8 - len(prompt):8], prompt)
    assert not valid[r, :8 - len(prompt)].any() and mask[r, :8].sum() == 0
    n = len(ids)
    np.testing.assert_array_equal(tokens[r, 8:8 + n], ids)
    np.testing.assert_array_equal(mask[r, 8:8 + n], m)  # 0 exactly on tool-response tokens
    np.testing.assert_allclose(logp[r, 8:8 + n], lp, rtol=1e-6)
    np.testing.assert_allclose(sample[r, 8:8 + n], 2 * np.asarray(lp, np.float32), rtol=1e-6)
    assert valid[r, 8:8 + n].all() and not valid[r, 8 + n:].any()
    assert (tokens[r, 8 + n:] == PAD).all() and mask[r, 8 + n:].sum() == 0
    assert int(ro.response_len_B[r]) == sum(m)
    assert len(out.segments[r]) == len(SCRIPT[r])

  np.testing.assert_array_equal(out.truncated_responses_B, [1, 0, 0, 1])
  ledgers = [e.ledger for e in out.episodes]
  assert [lg.n_calls for lg in ledgers] == [4, 0, 1, 4]
  assert [lg.n_malformed for lg in ledgers] == [0, 0, 1, 1]
  assert [e.truncated for e in ledgers[0].entries] == [False, True, False, False]
  assert ledgers[0].entries[1].response == LONG  # the full text; the context held a prefix
  assert ledgers[0].entries[2].error == "ValueError: no"
  assert "unknown tool 'mul'" in ledgers[2].malformed_reasons[0]
  assert "max_calls=4" in ledgers[3].malformed_reasons[0]
  assert ledgers[0].total_cost == 1.0 + 0.5 + 0.25 + 1.0
  extras = episode_extras(out.episodes)
  np.testing.assert_array_equal(extras["tool/n_calls"], [4, 0, 1, 4])
  np.testing.assert_array_equal(extras["tool/attempted"], [1, 0, 1, 1])
  np.testing.assert_array_equal(extras["tool/errors"], [1, 0, 0, 0])
  np.testing.assert_array_equal(extras["tool/truncated_responses"], [1, 0, 0, 1])
  answers = [answer_text(s, e.ledger) for s, e in zip(out.segments, out.episodes)]
  assert answers == ["7!", "I know: 3", "", ""]
  assert out.transcripts[0].endswith(env.syntax.format_response("7") + " 7!")
  assert env.syntax.format_response(LONG[:kept]) in out.transcripts[0]


def test_a_wrapper_longer_than_tool_tokens_is_a_clear_error(monkeypatch):
  loop = tool_loop.ToolLoopCfg(prompt_len=8, turn_tokens=64, tool_tokens=10, max_calls=4,
                               stop_ids=(EOS,), pad_id=PAD)
  monkeypatch.setattr(tool_loop, "generate", scripted_generate([], 8, 64, 10))
  with pytest.raises(ValueError, match="wrapper alone takes 25 tokens.*tool_tokens=10"):
    tool_loop.tool_rollout(None, [0], ["q0"], _env("json_chat"), TOK, jax.random.key(0),
                           SampleKnobs.create(1.0), model_cfg=None, cfg=loop)


def test_a_stop_string_that_is_not_one_token_is_a_clear_error():
  syntax = types.SimpleNamespace(stop_strings=("</call>",))
  with pytest.raises(ValueError, match="stop string '</call>'.*not a single token"):
    tool_loop.turn_stop_ids((EOS,), syntax, TOK)
  assert tool_loop.turn_stop_ids((EOS, 3), get_syntax("json"), TOK) == (EOS, 3)
  assert tool_loop.turn_stop_ids((EOS,), None, TOK) == (EOS,)
