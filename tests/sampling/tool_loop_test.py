"""Multi-turn tool rollout: assembled layout, sampler/trainer agreement, masking of tool tokens,
GSPO ignores tool tokens, malformed calls, no recompiles."""
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rl_jax import logprobs
from rl_jax.algorithms import losses
from rl_jax.projects.translate_r1 import tool as tools
from rl_jax.projects.translate_r1 import world as cipher
from rl_jax.models import qwen3
from rl_jax.models.config import get_model_config
from rl_jax.sampling import generate as gen
from rl_jax.sampling import tool_loop
from rl_jax.tools import Episode, MalformedCall, ToolCall, ToolResult
from rl_jax.types import SampleKnobs

V = 40
CFG = get_model_config("tiny", vocab_size=V, num_layers=1, hidden_size=32, num_heads=2,
                       num_kv_heads=1, head_dim=16, intermediate_size=64, max_seq_len=64)
PARAMS = qwen3.init_params(CFG, jax.random.key(0))
TOOL_IDS = [5, 6, 7]


class IdTokenizer:
  """Text "w3 w17" <-> ids [3, 17]; pad 0, EOS 1."""
  vocab_size, pad_id, eos_id, bos_id, special_ids = V, 0, 1, None, {}

  def encode(self, text):
    return [int(w[1:]) for w in text.split()]

  def decode(self, ids, keep_specials=False):
    return " ".join(f"w{i}" for i in ids if i not in (0, 1))

  def token_id(self, piece):
    return int(piece[1:])


@dataclasses.dataclass
class EchoEnv:
  """A segment starting with an even id >= 10 calls the tool; one starting with a multiple of 3
  (>= 10) is malformed; anything else is an answer. The tool answers TOOL_IDS at cost 1."""

  def new_episode(self, item):
    return Episode(item)

  def parse_call(self, text, episode=None):
    ids = IdTokenizer().encode(text)
    if not ids or ids[0] < 10:
      return None
    if ids[0] % 3 == 0:
      return MalformedCall("multiple of three")
    return ToolCall("echo") if ids[0] % 2 == 0 else None

  def execute(self, call, episode):
    result = (ToolResult("", 0.0, call) if isinstance(call, MalformedCall)
              else ToolResult(" ".join(f"w{i}" for i in TOOL_IDS), 1.0))
    episode.ledger.record(call, result)
    return result


LOOP = tool_loop.ToolLoopCfg(prompt_len=6, turn_tokens=5, tool_tokens=4, max_calls=1,
                             stop_ids=(1, 2, 3), pad_id=0)
PROMPTS = ["w11 w12 w13", "w20 w21 w22 w23 w24 w25"]
ITEMS = [None, None]


def _rollout(key=1, group_size=8, prompts=PROMPTS):
  return tool_loop.tool_rollout(PARAMS, ITEMS, prompts, EchoEnv(), IdTokenizer(),
                                jax.random.key(key), SampleKnobs.create(1.0), model_cfg=CFG,
                                cfg=LOOP, group_size=group_size)


@pytest.fixture(scope="module")
def out():
  return _rollout()


def _tool_rows(out):
  return [i for i, e in enumerate(out.episodes) if e.ledger.n_calls > 0]


def test_layout_shapes_and_both_episode_kinds(out):
  ro = out.rollout
  assert ro.tokens_BxL.shape == (16, LOOP.total_len) == (16, 6 + 2 * 5 + 4)
  assert ro.prompt_len == 6
  calls = _tool_rows(out)
  assert calls and len(calls) < 16  # some rows called the tool, some answered directly
  for r in calls:
    assert len(out.segments[r]) == 2 and len(out.transcripts[r].split()) > 3


def test_sampler_logp_equals_teacher_forced_on_assembled_sequence(out):
  ro = out.rollout
  tf = np.asarray(logprobs.token_logprobs(PARAMS, ro.tokens_BxL, ro.valid_BxL, cfg=CFG))
  mask = np.asarray(ro.loss_mask_BxL)
  # Policy tokens of BOTH turns are in the mask (turn 2 follows the tool response).
  assert mask[_tool_rows(out)].sum() > 3 * len(_tool_rows(out))
  np.testing.assert_allclose(tf * mask, np.asarray(ro.logp_policy_BxL), atol=1e-5)


def test_tool_response_tokens_have_loss_mask_zero(out):
  ro = out.rollout
  p = LOOP.prompt_len
  tokens, valid = np.asarray(ro.tokens_BxL)[:, p:], np.asarray(ro.valid_BxL)[:, p:]
  mask = np.asarray(ro.loss_mask_BxL)
  calls = _tool_rows(out)
  for r in range(16):
    resp, resp_mask = tokens[r][valid[r]], mask[r, p:][valid[r]]
    assert valid[r, :len(resp)].all()  # the conversation is contiguous after the prompt
    zeros = np.flatnonzero(resp_mask == 0)
    if r in calls:
      # [turn 1, mask 1] [tool ids, mask 0] [turn 2, mask 1]
      assert zeros.tolist() == list(range(zeros[0], zeros[0] + 3)) and zeros[0] > 0
      np.testing.assert_array_equal(resp[zeros], TOOL_IDS)
      assert zeros[-1] < len(resp) - 1
    else:
      assert zeros.size == 0
  assert mask[:, :p].sum() == 0  # prompt slots are never trained


def _gspo_reference(logp, old, mask, adv, eps_low, eps_high):
  n = mask.sum(1)
  s = np.exp((mask * (logp - old)).sum(1) / n)
  return np.mean(np.maximum(-adv * s, -adv * np.clip(s, 1 - eps_low, 1 + eps_high)))


def test_tool_tokens_do_not_affect_gspo_ratio_or_loss(out):
  ro = out.rollout
  mask = np.asarray(ro.loss_mask_BxL)
  valid = np.asarray(ro.valid_BxL)
  tool_pos = valid & (mask == 0)
  tool_pos[:, :LOOP.prompt_len] = False
  assert tool_pos.sum() == 3 * len(_tool_rows(out))
  # A moved policy: perturbed params, so ratios differ from 1.
  params2 = jax.tree.map(lambda p: p * 1.02, PARAMS)
  logp = np.asarray(logprobs.token_logprobs(params2, ro.tokens_BxL, ro.valid_BxL, cfg=CFG))
  old = np.asarray(ro.logp_policy_BxL)
  adv = np.linspace(-0.5, 1.5, 16).astype(np.float32)
  pre = losses.preset("gspo")
  knobs = losses.LossKnobs.create(eps_low=0.05, eps_high=0.08)

  def loss(lp, ol):
    s, d, _ = losses.policy_loss(jnp.asarray(lp), jnp.asarray(ol), jnp.asarray(adv),
                                 jnp.asarray(mask), knobs, cfg=pre.cfg)
    return float(s / d)

  base = loss(logp, old)
  ref = _gspo_reference(logp.astype(np.float64), old.astype(np.float64), mask, adv, 0.05, 0.08)
  np.testing.assert_allclose(base, ref, rtol=1e-4, atol=1e-6)
  assert abs(ref) > 1e-3
  noise = np.random.default_rng(0).normal(size=logp.shape).astype(np.float32) * 5
  old_perturbed = np.where(tool_pos, old + noise, old)
  logp_perturbed = np.where(tool_pos, logp - noise, logp)
  assert loss(logp_perturbed, old_perturbed) == pytest.approx(base, abs=1e-7)
  # The sampler wrote 0 there (not a log-prob) and the reference uses only policy tokens.
  assert np.all(old[tool_pos] == 0.0)


class _Items:
  """Translate-tool world: the real env and a word tokenizer of its vocabulary."""

  def __init__(self):
    # pylint: disable-next=g-import-not-at-top
    from rl_jax.projects.translate_r1.tokenizer import build_tokenizer
    self.world = cipher.CipherWorld(0)
    self.tok = build_tokenizer(self.world)
    self.items = self.world.sample_items(2, 0, langs=["xl1", "hi1"])
    self.cfg = get_model_config("tiny", vocab_size=self.tok.vocab_size, num_layers=1,
                                hidden_size=32, num_heads=2, num_kv_heads=1, head_dim=16,
                                intermediate_size=64, max_seq_len=64)
    self.params = qwen3.init_params(self.cfg, jax.random.key(3))
    close = self.tok.token_id(tools.TOOL_CALL_CLOSE)
    self.loop = tool_loop.ToolLoopCfg(prompt_len=28, turn_tokens=4, tool_tokens=26, max_calls=1,
                                      stop_ids=(self.tok.eos_id, close), pad_id=0)

  def run(self, env, forced_prefix, loop=None):
    return tool_loop.tool_rollout(self.params, self.items, [it.text for it in self.items], env,
                                  self.tok, jax.random.key(0), SampleKnobs.create(1.0),
                                  model_cfg=self.cfg, cfg=loop or self.loop, group_size=2,
                                  forced_prefix=forced_prefix)


@pytest.fixture(scope="module")
def world():
  return _Items()


@pytest.mark.parametrize("prefix", ["<tool_call> dance </tool_call>", "<tool_call> translate w",
                                    "</tool_call>"])
def test_malformed_call_yields_configured_reward(world, prefix):
  env = tools.TranslateToolEnv(tools.OracleCipherTranslator(world.world),
                               tools.TranslateToolCfg(malformed_reward=-0.5))
  prefix = prefix.replace(" w", " " + world.world.encode("tom", "hi1"))
  out = world.run(env, prefix)
  for transcript, episode in zip(out.transcripts, out.episodes):
    score = env.score(transcript, episode)
    assert score.malformed and score.reward == -0.5 and score.cost == 0.0
  assert np.asarray(out.rollout.loss_mask_BxL)[:, :28].sum() == 0


def test_forced_call_runs_the_tool_and_call_budget_is_enforced(world):
  env = tools.TranslateToolEnv(tools.OracleCipherTranslator(world.world),
                               tools.TranslateToolCfg(malformed_reward=-1.0))
  call = "<tool_call> translate </tool_call>"
  out = world.run(env, call)
  for r, episode in enumerate(out.episodes):
    assert episode.ledger.n_calls == 1 and episode.ledger.total_cost == 1.0
    english = world.items[r // 2].text_en
    assert f"<tool_response> {english} </tool_response>" in out.transcripts[r]
  # No sampled call turn: the only loss tokens are the answer turn after the response.
  assert np.asarray(out.rollout.loss_mask_BxL).sum(1).max() <= 4
  # A loop with no call budget rejects the call as malformed.
  no_calls = dataclasses.replace(world.loop, max_calls=0)
  out = world.run(env, call, loop=no_calls)
  assert all(env.score(t, e).reward == -1.0 for t, e in zip(out.transcripts, out.episodes))


def test_long_translation_is_truncated_and_counted_not_an_error(world):
  env = tools.TranslateToolEnv(tools.OracleCipherTranslator(world.world))
  short = dataclasses.replace(world.loop, tool_tokens=5)
  out = world.run(env, "<tool_call> translate </tool_call>", loop=short)
  np.testing.assert_array_equal(out.truncated_responses_B, [1, 1, 1, 1])
  ro = out.rollout
  p = short.prompt_len
  tokens, valid = np.asarray(ro.tokens_BxL)[:, p:], np.asarray(ro.valid_BxL)[:, p:]
  mask = np.asarray(ro.loss_mask_BxL)[:, p:]
  for r, episode in enumerate(out.episodes):
    entry = episode.ledger.entries[0]
    assert entry.truncated and entry.response.startswith("<tool_response>")
    # The forced call is the prompt's tail; the response's first 5 tokens follow, loss_mask 0.
    resp = tokens[r][valid[r] & (mask[r] == 0)]
    np.testing.assert_array_equal(resp, world.tok.encode(entry.response)[:5])
  # The full responses fit the default layout: nothing cut there.
  full = world.run(env, "<tool_call> translate </tool_call>")
  assert not full.truncated_responses_B.any()
  assert not any(e.ledger.entries[0].truncated for e in full.episodes)


def test_no_recompile_across_steps():
  _rollout(key=5)
  size = gen.generate._cache_size()  # pylint: disable=protected-access
  _rollout(key=6, prompts=["w30 w31", "w14"])
  assert gen.generate._cache_size() == size  # pylint: disable=protected-access


def test_too_long_prompt_is_a_clear_error():
  with pytest.raises(ValueError, match="prompt_len=6"):
    _rollout(prompts=["w11 w12 w13 w14 w15 w16 w17", "w20"])


def test_per_row_forced_prefix_forces_answers_in_chosen_rows():
  # Rows 6 and 7 of each group start with "w4" (an answer: ids < 10 never call), loss_mask 0.
  prefixes = ["w4" if r % 8 >= 6 else "" for r in range(16)]
  got = tool_loop.tool_rollout(PARAMS, ITEMS, ["w11 w12 w13", "w20 w21 w22 w23"], EchoEnv(),
                               IdTokenizer(), jax.random.key(1), SampleKnobs.create(1.0),
                               model_cfg=CFG, cfg=LOOP, group_size=8, forced_prefix=prefixes)
  ro = got.rollout
  tokens, mask = np.asarray(ro.tokens_BxL), np.asarray(ro.loss_mask_BxL)
  p = LOOP.prompt_len
  free_calls = 0
  for r in range(16):
    if prefixes[r]:
      assert got.episodes[r].ledger.n_calls == 0 and len(got.segments[r]) == 1
      assert got.transcripts[r].startswith("w4")
      assert tokens[r, p - 1] == 4 and mask[r, :p].sum() == 0  # prefix is the prompt's last slot
    else:
      free_calls += got.episodes[r].ledger.n_calls
  assert free_calls > 0  # the other rows still call the tool
  with pytest.raises(ValueError, match="one per row"):
    tool_loop.tool_rollout(PARAMS, ITEMS, PROMPTS, EchoEnv(), IdTokenizer(), jax.random.key(1),
                           SampleKnobs.create(1.0), model_cfg=CFG, cfg=LOOP, group_size=8,
                           forced_prefix=["w4"] * 3)
  with pytest.raises(ValueError, match="is a tool call"):
    tool_loop.tool_rollout(PARAMS, ITEMS, PROMPTS, EchoEnv(), IdTokenizer(), jax.random.key(1),
                           SampleKnobs.create(1.0), model_cfg=CFG, cfg=LOOP, group_size=8,
                           forced_prefix=["w14"] * 16)


def test_row_bucket_runs_later_turns_on_the_calling_rows_only(out, monkeypatch):
  sizes = []
  real_generate = tool_loop.generate

  def recording_generate(params, tokens, valid, *args, **kwargs):
    sizes.append(tokens.shape[0])
    return real_generate(params, tokens, valid, *args, **kwargs)

  monkeypatch.setattr(tool_loop, "generate", recording_generate)
  bucketed = tool_loop.tool_rollout(PARAMS, ITEMS, PROMPTS, EchoEnv(), IdTokenizer(),
                                    jax.random.key(1), SampleKnobs.create(1.0), model_cfg=CFG,
                                    cfg=dataclasses.replace(LOOP, row_bucket=4), group_size=8)
  calls = _tool_rows(bucketed)
  assert sizes[0] == 16 and sizes[1] == -(-len(calls) // 4) * 4 < 16
  # Turn 0 ran on the same batch as without buckets: the same first segments and calls.
  assert [s[0] for s in bucketed.segments] == [s[0] for s in out.segments]
  assert calls == _tool_rows(out)
  ro = bucketed.rollout
  for r in calls:  # the second turn was generated, after the (loss-masked) tool response
    assert len(bucketed.segments[r]) == 2
  tf = np.asarray(logprobs.token_logprobs(PARAMS, ro.tokens_BxL, ro.valid_BxL, cfg=CFG))
  mask = np.asarray(ro.loss_mask_BxL)
  assert mask[calls].sum() > 3 * len(calls)
  np.testing.assert_allclose(tf * mask, np.asarray(ro.logp_policy_BxL), atol=1e-5)
  with pytest.raises(ValueError, match="row_bucket"):
    dataclasses.replace(LOOP, row_bucket=-1)


# Four tool responses with the real sampler; the env calls on every turn until the item's call
# count, and the third reply is cut to R = 4 tokens.
TOOL_REPLIES = [[5, 6, 7], [8], [5, 6, 7, 8, 9, 10], [11, 12]]  # the third is cut to R = 4


class CountingEnv:
  """Item n: the policy's first n segments are calls (whatever they say), then it answers. No
  `syntax`: the loop uses the configured stop ids and the response texts as they are."""

  def new_episode(self, item):
    return Episode(item)

  def parse_call(self, text, episode=None):
    if episode is None or episode.ledger.n_calls >= episode.item:
      return None
    return ToolCall("reply", {"text": text})

  def execute(self, call, episode):
    if isinstance(call, MalformedCall):
      result = ToolResult("", 0.0, call)
    else:
      ids = TOOL_REPLIES[episode.ledger.n_calls]
      result = ToolResult(" ".join(f"w{i}" for i in ids), 1.0)
    episode.ledger.record(call, result)
    return result


def test_real_sampler_logp_over_four_tool_responses():
  loop = tool_loop.ToolLoopCfg(prompt_len=6, turn_tokens=4, tool_tokens=4, max_calls=4,
                               stop_ids=(1, 2, 3), pad_id=0)
  items = [4, 2]
  out = tool_loop.tool_rollout(PARAMS, items, ["w11 w12 w13", "w20 w21"], CountingEnv(),
                               IdTokenizer(), jax.random.key(3), SampleKnobs.create(1.0),
                               model_cfg=CFG, cfg=loop, group_size=2)
  ro = out.rollout
  assert ro.tokens_BxL.shape == (4, 6 + 5 * 4 + 4 * 4)
  tokens, valid = np.asarray(ro.tokens_BxL), np.asarray(ro.valid_BxL)
  mask = np.asarray(ro.loss_mask_BxL)
  for r in range(4):
    n_calls = items[r // 2]
    assert out.episodes[r].ledger.n_calls == n_calls and len(out.segments[r]) == n_calls + 1
    replies = [ids[:4] for ids in TOOL_REPLIES[:n_calls]]
    resp_valid = valid[r, 6:]
    resp, resp_mask = tokens[r, 6:][resp_valid], mask[r, 6:][resp_valid]
    assert resp_valid[:len(resp)].all()  # contiguous after the prompt
    np.testing.assert_array_equal(resp[resp_mask == 0], np.concatenate(replies))
    # Policy and tool runs alternate: n_calls tool runs, each after >= 1 policy token, and the
    # answer turn after the last one.
    starts = np.flatnonzero(np.diff(np.concatenate([[1.0], resp_mask])) == -1)
    assert len(starts) == n_calls and starts[0] > 0 and resp_mask[-1] == 1
  np.testing.assert_array_equal(out.truncated_responses_B, [1, 1, 0, 0])
  assert out.episodes[0].ledger.entries[2].truncated
  tf = np.asarray(logprobs.token_logprobs(PARAMS, ro.tokens_BxL, ro.valid_BxL, cfg=CFG))
  np.testing.assert_allclose(tf * mask, np.asarray(ro.logp_policy_BxL), atol=1e-5)
