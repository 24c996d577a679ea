"""The cached API environment, trace synthesis, and bad input from the model through the env
and the scorer: the configured reward, counted in metrics, bounded time and memory."""
import json
import time
import tracemalloc
import types

import numpy as np
import pytest

from rl_jax.projects.tool_orchestration import api, reward as rw, scoring, task as task_lib
from rl_jax.projects.tool_orchestration import workflows as wf
from rl_jax.tools import ToolCall

CACHE = api.ResponseCache.build()


def test_cache_lookup_normalises_and_never_falls_back():
  hit = {"data": [{"hotel_id": "H32"}]}
  assert CACHE.lookup("search_hotels", {"dest_id": "D3", "day": 2}) == hit
  assert CACHE.lookup("search_hotels", {"day": "2", "dest_id": "D3"}) == hit  # str -> number
  assert CACHE.lookup("search_hotels", {"day": 2.0, "dest_id": "D3"}) == hit  # 2.0 -> 2
  assert CACHE.lookup("search_hotels", {"dest_id": "D3", "day": 9}) is None  # miss: no fallback
  assert CACHE.lookup("search_hotels", {"dest_id": "D3"}) is None
  assert api.normalise_value(True) is True and api.normalise_value("2.5") == 2.5
  # size: 6 per-city functions x 6 cities, 6 per-(city, day) functions x 24, 2 flight
  # functions x 120 (30 ordered city pairs x 4 days)
  assert len(CACHE) == 6 * 6 + 6 * 24 + 2 * 120


def test_env_miss_is_an_error_response_and_episode_goes_on():
  env = api.CachedApiEnv(CACHE, max_calls=2)
  ep = env.new_episode(None)
  r = env.execute(ToolCall("search_hotels", {"dest_id": "D9", "day": 1}), ep)
  assert r.malformed is None and r.error and json.loads(r.text)["error"].startswith("no cached")
  r = env.execute(ToolCall("search_destination", {"query": "rome"}), ep)
  assert json.loads(r.text) == {"data": [{"dest_id": "D2"}]}
  r = env.execute(ToolCall("search_destination", {"query": "rome"}), ep)
  assert r.malformed is not None and "too many calls" in r.malformed.reason


def test_reverse_index_synthesis_is_valid_by_construction():
  rng = np.random.default_rng(0)
  index = wf.reverse_index(CACHE)
  assert index["search_hotels"]["dest_id"][json.dumps("D3")] == {8, 9, 10, 11}
  for name, template in wf.TEMPLATES.items():
    flow = wf.synthesize(template, CACHE, index, rng)
    assert flow is not None, name
    for st, step in zip(template.steps, flow.steps):
      assert CACHE.lookup(step.function, step.arguments) == step.response  # a cache hit
      for arg, (src, path) in st.dependency_args.items():  # dependent fields wired
        assert step.arguments[arg] == wf.extract_field(flow.steps[src].response, path)
    # distractors: same-domain functions the workflow does not call
    used = {s.function for s in flow.steps}
    extra = set(flow.tools) - used
    domains = {api.FUNCTIONS[f].domain for f in used}
    pool = {f for f, fn in api.FUNCTIONS.items() if fn.domain in domains} - used
    assert extra <= pool and len(extra) == min(2, len(pool)) and used <= set(flow.tools)
  with pytest.raises(IndexError):
    wf.extract_field({"data": []}, "data[0].dest_id")


def test_hotel_and_car_share_the_day():
  rng = np.random.default_rng(1)
  index = wf.reverse_index(CACHE)
  for _ in range(10):
    flow = wf.synthesize(wf.TEMPLATES["hotel_and_car"], CACHE, index, rng)
    assert flow.steps[1].arguments["day"] == flow.steps[2].arguments["day"]


class CountingOracle(wf.TemplateQueryOracle):
  def __init__(self):
    self.invocations = 0

  def generate(self, prompts, n=1, temperature=0.0):
    self.invocations += 1
    return super().generate(prompts, n, temperature)


def test_queries_through_teacher_with_disk_cache(tmp_path):
  from rl_jax import intelligence
  spec = {"cache_dir": str(tmp_path)}
  oracle = CountingOracle()
  first = wf.synthesize_split(["hotels", "flights"], 12, CACHE, np.random.default_rng(3),
                              intelligence.build("teacher", spec, oracle), query_variants=3)
  again = CountingOracle()
  teacher = intelligence.build("teacher", spec, again)
  second = wf.synthesize_split(["hotels", "flights"], 12, CACHE, np.random.default_rng(3),
                               teacher, query_variants=3)
  assert [w.query for w in first] == [w.query for w in second]
  assert oracle.invocations == 1 and again.invocations == 0 and teacher.calls.stats.calls == 0
  for w in first:  # the query states every user-facing parameter
    for value in w.params.values():
      assert str(value) in w.query


def test_held_out_chains_are_disjoint():
  exp = types.SimpleNamespace(prompt_len=28, max_new_tokens=36, rl=types.SimpleNamespace(
      rollout=types.SimpleNamespace(max_calls=3, tool_tokens=16)))
  t = task_lib.tool_orchestration_task(seed=0, exp=exp, train_size=40, eval_size=20)
  assert not {w.key for w in t.train} & {w.key for w in t.eval}
  # the worked episode replays through the env and scores 1 under every reward
  item = t.train[0]
  text = t.completion_fn(item)
  for reward in rw.REWARD_NAMES:
    assert task_lib.transcript_reward(item, text, reward) == pytest.approx(1.0)


def _item():
  rng = np.random.default_rng(0)
  return wf.synthesize(wf.TEMPLATES["hotel_stars"], CACHE, wf.reverse_index(CACHE), rng)


def run_episode(env, item, segments):
  """Drives the env like the rollout loop: parse, execute, stop on malformed or no call."""
  ep = env.new_episode(item)
  for text in segments:
    call = env.parse_call(text, ep)
    if call is None:
      break
    if env.execute(call, ep).malformed is not None:
      break
  return ep


def score_rows(episodes, items, **kw):
  out = types.SimpleNamespace(episodes=episodes)
  return scoring.orchestration_scorer(**kw)(items, out)


def test_bad_model_input_gets_configured_reward_and_is_counted():
  env = api.CachedApiEnv(CACHE, max_calls=3)
  item = _item()
  first = env.syntax.format_call(item.steps[0].function, dict(item.steps[0].arguments))
  huge = '<tool_call>\n{"name": "search_hotels", "arguments": {"dest_id": "' + "D" * (1 << 20) \
      + '", "day": 1}}\n</tool_call>'
  bad = {
      "malformed_json": [first, '<tool_call>\n{"name": "search_hotels", "arguments": {\n'
                                '</tool_call>'],
      "unknown_function": [first, env.syntax.format_call("book_spaceship", {"dest_id": "D1"})],
      "one_megabyte_argument": [first, huge],
  }
  items = [item] * (len(bad) + 1)
  tracemalloc.start()
  start = time.perf_counter()
  episodes = [run_episode(env, item, segs) for segs in bad.values()]
  # wrong argument types are not malformed: the call runs (normalised lookup) and the reward's
  # structure / value scores see the type error.
  wrong_types = [first, env.syntax.format_call(
      "search_hotels", {"dest_id": item.steps[1].arguments["dest_id"],
                        "day": str(item.steps[1].arguments["day"])})]
  episodes.append(run_episode(env, item, wrong_types))
  s = score_rows(episodes, items, malformed_reward=-0.5)
  elapsed = time.perf_counter() - start
  _, peak = tracemalloc.get_traced_memory()
  tracemalloc.stop()
  assert elapsed < 2.0
  assert peak < 16 * (1 << 20)  # the 1 MB text plus small change; nothing quadratic
  assert [e.ledger.n_malformed for e in episodes] == [1, 1, 1, 0]
  assert "exceeds the cap" in episodes[2].ledger.malformed_reasons[0]
  assert "unknown function" in episodes[1].ledger.malformed_reasons[0]
  np.testing.assert_allclose(s.reward_B[:3], -0.5)
  np.testing.assert_allclose(s.extras["tool/malformed"], [1, 1, 1, 0])
  # wrong types by hand: step 0 exact (1); search_hotels day "2": 0.33 + 0.33 * 1/2 + 0, sem 1
  # (the lookup normalised "2") -> 0.7475; R_atomic 0.87375; R_orch 2/3 -> 0.770208.
  assert s.reward_B[3] == pytest.approx(0.770208, abs=1e-5)
  assert s.extras["correct"][3] == 0.0


def test_malformed_reward_none_scores_like_the_authors_parser():
  """malformed_reward=None: a syntax error is dropped, an unknown function is an unanswered call
  (ast 0, sem 0): the ledger route equals the transcript route on the same episode."""
  env = api.CachedApiEnv(CACHE, max_calls=3)
  item = _item()
  first = env.syntax.format_call(item.steps[0].function, dict(item.steps[0].arguments))
  unknown = env.syntax.format_call("book_spaceship", {"dest_id": "D1"})
  ep = run_episode(env, item, [first, unknown])
  s = score_rows([ep], [item], malformed_reward=None)
  response = env.syntax.format_response(ep.ledger.entries[0].response)
  transcript = first + response + unknown
  assert s.reward_B[0] == pytest.approx(task_lib.transcript_reward(item, transcript))
  # by hand: (1 + 0) / 2 = 0.5 atomic; 1 of 3 steps: 0.25 + 0.166667
  assert s.reward_B[0] == pytest.approx(0.416667, abs=1e-5)


def test_scorer_config_errors():
  with pytest.raises(ValueError, match="rl.scorer.reward"):
    scoring.orchestration_scorer(reward="dense")
  with pytest.raises(ValueError, match="weight_mode"):
    scoring.orchestration_scorer(weight_mode="x")
  with pytest.raises(ValueError, match="rl.scorer.atomic_match must be one of"):
    scoring.orchestration_scorer(atomic_match="x")
