"""Reward registry and the strict float32 batch helper."""
import functools

import numpy as np
import pytest

from rl_jax.rewards import registry
from rl_jax.rewards.registry import batch_rewards, get_reward, register_reward


@pytest.fixture(autouse=True)
def _isolated_registry(monkeypatch):
  monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))


def test_builtin_rewards_are_registered():
  assert {"arithmetic_exact", "gsm8k_math"} <= set(registry.registered_rewards())


def test_unknown_name_lists_registered():
  with pytest.raises(ValueError, match=r"unknown reward 'nope'.*arithmetic_exact"):
    get_reward("nope")


def test_register_and_duplicate():
  @register_reward("const_quarter")
  def quarter(prompt, completion):
    return 0.25

  assert get_reward("const_quarter") is quarter
  with pytest.raises(ValueError, match="already registered"):
    register_reward("const_quarter")(quarter)


def test_batch_rewards_float32_and_fractional_values_survive():
  out = batch_rewards(lambda p, c, scale: scale * len(c), ["a", "b", "c"], ["x", "xy", ""],
                      scale=[0.25, 0.5, 1.0])
  assert out.dtype == np.float32 and out.shape == (3,)
  np.testing.assert_array_equal(out, np.array([0.25, 1.0, 0.0], np.float32))


def test_builtin_rewards_in_a_batch():
  arith = batch_rewards(get_reward("arithmetic_exact"), ["21+43+65=", "21+43+65=", "1+2="],
                        ["640,201", "640,200", "30"])
  np.testing.assert_array_equal(arith, [1.0, 0.0, 1.0])
  math = batch_rewards(get_reward("gsm8k_math"), ["q1", "q2"], ["#### 1,000", "so 7"],
                       answer=["1000", "8"])
  np.testing.assert_array_equal(math, [1.0, 0.0])


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), 1e39, "1.0", None, True])
def test_non_finite_or_non_numeric_names_the_sample(bad):
  fn = lambda p, c: bad if c == "bad" else 1.0  # noqa: E731
  with pytest.raises(ValueError, match="sample 2"):
    batch_rewards(fn, ["p"] * 3, ["ok", "ok", "bad"])


def test_exceptions_propagate_with_index():
  def boom(prompt, completion):
    if completion == "x":
      raise KeyError("kaboom")
    return 0.0

  with pytest.raises(KeyError) as info:
    batch_rewards(boom, ["p", "p"], ["a", "x"])
  assert any("sample 1" in note for note in info.value.__notes__)


def test_length_checks():
  fn = get_reward("gsm8k_math")
  with pytest.raises(ValueError, match="completions"):
    batch_rewards(fn, ["p", "p"], ["c"])
  with pytest.raises(ValueError, match="'answer': expected 2 values"):
    batch_rewards(fn, ["p", "p"], ["c", "c"], answer=["1"])
  with pytest.raises(ValueError, match="functools.partial"):
    batch_rewards(fn, ["p", "p"], ["c", "c"], answer="1")
  const = functools.partial(fn, answer="7")
  np.testing.assert_array_equal(batch_rewards(const, ["p", "p"], ["7", "6"]), [1.0, 0.0])
