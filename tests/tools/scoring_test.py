"""EpisodeLedger accounting, per-row `tool/*` arrays and the answer segment."""
import numpy as np
import pytest

from rl_jax.tools import (Episode, EpisodeLedger, MalformedCall, ToolCall, ToolResult,
                          answer_text, episode_extras)
from rl_jax.tools.scoring import EXTRA_KEYS


def _ledger(*steps):
  """steps: ("ok", cost) | ("error", cost) | ("bad", reason) | ("cut", cost)."""
  led = EpisodeLedger()
  for kind, value in steps:
    if kind == "bad":
      led.record(MalformedCall(value), ToolResult("", 0.0, MalformedCall(value)))
      continue
    error = "ValueError: x" if kind == "error" else None
    led.record(ToolCall("f", {"x": 1}), ToolResult("out", value, error=error))
    if kind == "cut":
      led.mark_truncated()
  return led


def test_ledger_properties():
  led = _ledger(("ok", 1.0), ("error", 0.5), ("cut", 2.0), ("bad", "unclosed"))
  assert (led.n_calls, led.total_cost, led.call_costs) == (3, 3.5, [1.0, 0.5, 2.0])
  assert (led.n_malformed, led.malformed_reasons, led.n_errors, led.n_truncated) == \
      (1, ["unclosed"], 1, 1)
  assert led.used_tool
  assert [e.truncated for e in led.entries] == [False, False, True, False]
  bad = led.entries[-1]
  assert (bad.name, bad.arguments, bad.cost, bad.malformed) == ("", "", 0.0, "unclosed")
  empty = EpisodeLedger()
  assert (empty.n_calls, empty.total_cost, empty.used_tool, empty.n_malformed) == (0, 0.0, False, 0)
  with pytest.raises(ValueError, match="no entry to flag"):
    empty.mark_truncated()


def test_episode_extras():
  episodes = [Episode(None, _ledger()),
              Episode(None, _ledger(("ok", 1.0), ("cut", 0.25))),
              Episode(None, _ledger(("bad", "nested"))),
              Episode(None, _ledger(("error", 2.0), ("ok", 1.0), ("cut", 1.0), ("bad", "budget")))]
  got = episode_extras(episodes)
  want = {"tool/n_calls": [0, 2, 0, 3], "tool/cost": [0, 1.25, 0, 4.0],
          "tool/used": [0, 1, 0, 1], "tool/malformed": [0, 0, 1, 1],
          "tool/attempted": [0, 1, 1, 1], "tool/errors": [0, 0, 0, 1],
          "tool/truncated_responses": [0, 1, 0, 1]}
  assert set(got) == set(EXTRA_KEYS) == set(want)
  for key, values in want.items():
    assert got[key].dtype == np.float32 and got[key].shape == (4,)
    np.testing.assert_array_equal(got[key], np.asarray(values, np.float32), err_msg=key)
  assert all(v.shape == (0,) for v in episode_extras([]).values())


def test_answer_text():
  assert answer_text([]) == ""
  assert answer_text(["<tool_call>..</tool_call>", "the answer is 5"]) == "the answer is 5"
  # One executed call then an answer: 1 entry, 2 segments.
  assert answer_text(["call", "5"], _ledger(("ok", 1.0))) == "5"
  # The episode ended on a malformed call: no answer.
  assert answer_text(["call", "bad call"], _ledger(("ok", 1.0), ("bad", "unclosed"))) == ""
