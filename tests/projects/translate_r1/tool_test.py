"""Tests of the translate tool: call parsing, execution, cost accounting, malformed calls,
scoring."""
import pytest

from rl_jax import tools as generic
from rl_jax.projects.translate_r1 import world as cipher
from rl_jax.projects.translate_r1 import tool as tools


@pytest.fixture(scope="module")
def world():
  return cipher.CipherWorld(seed=0)


@pytest.fixture
def item(world):
  text_en = "tom has four apples . he gets three more . how many apples now ?"
  return world.make_item(text_en, "7", "arithmetic", "xl3")


def _env(world, **cfg):
  return tools.TranslateToolEnv(tools.OracleCipherTranslator(world), tools.TranslateToolCfg(**cfg))


def test_protocols(world):
  env = _env(world)
  assert isinstance(env, generic.ToolEnv)
  assert isinstance(env.syntax, generic.CallSyntax)
  assert isinstance(generic.get_syntax("cipher_translate"), tools.TranslateCallSyntax)
  assert isinstance(tools.OracleCipherTranslator(world), tools.Translator)


def test_oracle_translator(world, item):
  tr = tools.OracleCipherTranslator(world)
  assert tr.translate([item.text], "xl3", "en") == [item.text_en]
  assert tr.translate([item.text_en], "en", "hi2") == [world.encode(item.text_en, "hi2")]
  assert tr.translate([item.text], "xl3", "lo1") == [world.encode(item.text_en, "lo1")]


def test_parse_well_formed(world):
  env = _env(world)
  assert env.parse_call("<answer> 7 </answer>") is None
  assert env.parse_call("") is None
  assert env.parse_call("<tool_call> translate </tool_call>") == generic.ToolCall("translate")
  assert env.parse_call("<tool_call>translate</tool_call>  ") == generic.ToolCall("translate")
  call = env.parse_call("hmm <tool_call> translate ab cd </tool_call>")
  assert call == generic.ToolCall("translate", {"span": "ab cd"})
  assert call.raw == "<tool_call> translate ab cd </tool_call>"


def test_format_call_round_trips(world):
  syntax = _env(world).syntax
  for args in ({}, {"span": "ab cd"}):
    text = syntax.format_call("translate", args)
    assert syntax.parse(text) == generic.ToolCall("translate", args)
  assert syntax.format_call("translate", {}) == "<tool_call> translate </tool_call>"
  assert syntax.format_response("<tool_response> x </tool_response>") == \
      "<tool_response> x </tool_response>"
  assert syntax.stop_strings == ("</tool_call>",)


@pytest.mark.parametrize("text, reason", [
    ("<tool_call> translate", "unclosed"),
    ("translate </tool_call>", "without"),
    ("<tool_call> search x </tool_call>", "unknown tool 'search'"),
    ("<tool_call>  </tool_call>", "empty"),
    ("<tool_call> translate </tool_call> <answer> 3 </answer>", "text after"),
    ("<tool_call> <tool_call> translate </tool_call>", "nested"),
    ("<tool_response> tom </tool_response> <answer> 3 </answer>", "tool_response"),
])
def test_parse_malformed(world, text, reason):
  out = _env(world).parse_call(text)
  assert isinstance(out, tools.MalformedCall) and reason in out.reason


def test_execute_per_call_cost_and_response(world, item):
  env = _env(world, cost_mode="per_call", unit_cost=1.5)
  ep = env.new_episode(item)
  call = env.parse_call("<tool_call> translate </tool_call>", ep)
  res = env.execute(call, ep)
  assert res.malformed is None and res.cost == 1.5
  assert res.text == "<tool_response> " + item.text_en + " </tool_response>"
  assert ep.ledger.n_calls == 1 and ep.ledger.total_cost == 1.5 and ep.ledger.used_tool
  entry = ep.ledger.entries[0]
  assert (entry.name, entry.arguments, entry.malformed, entry.truncated) == \
      ("translate", "{}", None, False)
  assert entry.response == res.text


def test_execute_per_token_cost_and_span(world, item):
  env = _env(world, cost_mode="per_token", token_cost=0.02, max_calls=2)
  ep = env.new_episode(item)
  env.execute(generic.ToolCall("translate"), ep)
  # Span = the cipher of "how many apples" (3 words, contiguous in the prompt).
  span = world.encode("how many apples", "xl3")
  res = env.execute(env.parse_call(f"<tool_call> translate {span} </tool_call>", ep), ep)
  assert res.text == "<tool_response> how many apples </tool_response>"
  n_words = 15  # "tom has four apples . he gets three more . how many apples now ?"
  assert ep.ledger.call_costs == pytest.approx([0.02 * n_words, 0.02 * 3])
  assert ep.ledger.total_cost == pytest.approx(0.02 * 18)
  assert ep.ledger.entries[1].arguments == f'{{"span": "{span}"}}'
  assert env.full_translation_cost(item) == pytest.approx(0.02 * n_words)


def test_custom_token_counter(world, item):
  env = tools.TranslateToolEnv(tools.OracleCipherTranslator(world),
                               tools.TranslateToolCfg(cost_mode="per_token", token_cost=0.5),
                               count_tokens=len)  # characters
  ep = env.new_episode(item)
  cost = env.execute(generic.ToolCall("translate"), ep).cost
  assert cost == pytest.approx(0.5 * len(item.text_en))


def test_max_calls_and_bad_span(world, item):
  env = _env(world, max_calls=1)
  ep = env.new_episode(item)
  env.execute(env.parse_call("<tool_call> translate </tool_call>", ep), ep)
  second = env.parse_call("<tool_call> translate </tool_call>", ep)
  assert isinstance(second, generic.MalformedCall) and "max_calls=1" in second.reason
  # The loop may skip the episode-aware parse: execute enforces the limit itself.
  res = env.execute(generic.ToolCall("translate"), ep)
  assert res.malformed is not None and res.cost == 0.0 and res.text == ""
  assert ep.ledger.n_calls == 1 and ep.ledger.n_malformed == 1 and ep.ledger.total_cost == 1.0
  ep2 = env.new_episode(item)
  bad = env.parse_call("<tool_call> translate tom has </tool_call>", ep2)  # English, not in prompt
  assert isinstance(bad, generic.MalformedCall) and "bad arguments" in bad.reason
  assert isinstance(_env(world, max_calls=0).parse_call(
      "<tool_call> translate </tool_call>", ep2), generic.MalformedCall)
  # Arguments other than a string span (another syntax could produce them) are malformed.
  for args in ({"lang": "en"}, {"span": 3}):
    res = env.execute(generic.ToolCall("translate", args), env.new_episode(item))
    assert res.malformed is not None and "bad arguments" in res.malformed.reason


def test_scoring(world, item):
  env = _env(world, malformed_reward=-0.5)
  ep = env.new_episode(item)
  s = env.score("<answer> 7 </answer>", ep)
  assert (s.reward, s.correct, s.cost, s.translated, s.malformed) == (1.0, True, 0.0, False, False)
  assert env.score("<answer> 07 </answer>", ep).correct
  for wrong in ("<answer> 8 </answer>", "7", "<answer> seven </answer>", "<answer> 7.0 </answer>",
                "<answer> </answer>"):
    assert env.score(wrong, ep).reward == 0.0, wrong
  # An answer that only appears inside the tool response does not count.
  ep_t = env.new_episode(item)
  res = env.execute(generic.ToolCall("translate"), ep_t)
  assert not env.score(f"<answer> 7 </answer> {res.text}", ep_t).correct
  s = env.score(f"{res.text} <answer> 7 </answer>", ep_t)
  assert (s.reward, s.cost, s.translated, s.n_calls) == (1.0, 1.0, True, 1)
  # Malformed episode: the configured reward even with a correct answer.
  ep_m = env.new_episode(item)
  env.execute(env.parse_call("<tool_call> nope </tool_call>"), ep_m)
  s = env.score("<answer> 7 </answer>", ep_m)
  assert (s.reward, s.correct, s.malformed) == (-0.5, False, True)
  assert tools.episode_reward("<answer> 7 </answer>", item, ep_m.ledger) == 0.0


def test_scripted_multi_turn_episode(world, item):
  """A rollout loop driven by scripted model segments, as `rl_jax.sampling` will drive it."""
  env = _env(world, cost_mode="per_token", token_cost=0.02)
  segments = iter(["<tool_call> translate </tool_call>", "<answer> 7 </answer>"])
  ep, context = env.new_episode(item), item.text
  while True:
    seg = next(segments)
    context += " " + seg
    call = env.parse_call(seg, ep)
    if call is None:
      break
    res = env.execute(call, ep)
    assert res.malformed is None
    context += " " + res.text
  s = env.score(context[len(item.text):], ep)
  assert s.correct and s.n_calls == 1 and s.cost == pytest.approx(0.02 * 15)


def test_cfg_validation():
  with pytest.raises(ValueError, match="cost_mode"):
    tools.TranslateToolCfg(cost_mode="per_char")
  with pytest.raises(ValueError, match="max_calls"):
    tools.TranslateToolCfg(max_calls=-1)
