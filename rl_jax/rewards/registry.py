"""Name -> reward function registry, and the strict batch helper the host loop calls.

A reward function scores ONE sample: `fn(prompt: str, completion: str, **columns) -> float`,
where `columns` are per-sample extras (e.g. the gold `answer`). Rewards are computed on the host,
outside any jitted or differentiated function.

`batch_rewards` is deliberately strict: an exception inside a reward function propagates (with a
note naming the sample index) instead of being turned into a silent 0.0, and a non-finite or
non-numeric reward is a ValueError naming the sample. The result is float32 -- never an integer
array that would truncate fractional rewards.
"""
from __future__ import annotations

import math
import numbers
from typing import Callable, Sequence

import numpy as np

from rl_jax.envs.arithmetic import ArithmeticTask
from rl_jax.rewards.math_answer import extract_answer, math_reward, normalize_number

RewardFn = Callable[..., float]
_REGISTRY: dict[str, RewardFn] = {}


def register_reward(name: str) -> Callable[[RewardFn], RewardFn]:
  """Decorator: make `fn` available as `get_reward(name)`. Re-using a name is a ValueError."""
  if not isinstance(name, str) or not name:
    raise ValueError(f"reward name: expected a non-empty str, got {name!r}")

  def decorator(fn: RewardFn) -> RewardFn:
    if name in _REGISTRY:
      raise ValueError(f"reward {name!r} is already registered (by "
                       f"{_REGISTRY[name].__module__}.{_REGISTRY[name].__qualname__})")
    _REGISTRY[name] = fn
    return fn

  return decorator


def get_reward(name: str) -> RewardFn:
  """The reward function registered as `name`; ValueError listing the known names otherwise."""
  try:
    return _REGISTRY[name]
  except (KeyError, TypeError):
    raise ValueError(f"unknown reward {name!r}; registered rewards: "
                     f"{sorted(_REGISTRY)}") from None


def registered_rewards() -> list[str]:
  return sorted(_REGISTRY)


def batch_rewards(fn: RewardFn, prompts: Sequence[str], completions: Sequence[str],
                  **columns: Sequence) -> np.ndarray:
  """`[fn(prompts[i], completions[i], **{k: v[i]}) for i]` as float32 `[B]`.

  Every keyword argument is a per-sample column of length B (bind constants with
  `functools.partial` instead). Raises ValueError on a length mismatch or a reward that is not
  a finite real number; exceptions from `fn` propagate with the sample index attached.
  """
  batch = len(prompts)
  if len(completions) != batch:
    raise ValueError(f"completions: expected {batch} (= len(prompts)), got {len(completions)}")
  for key, column in columns.items():
    if isinstance(column, (str, bytes)) or not hasattr(column, "__len__"):
      raise ValueError(f"reward column {key!r}: expected a sequence of {batch} per-sample "
                       f"values, got {type(column).__name__} (use functools.partial for "
                       f"constants)")
    if len(column) != batch:
      raise ValueError(f"reward column {key!r}: expected {batch} values, got {len(column)}")
  rewards_B = np.empty((batch,), dtype=np.float32)
  for i in range(batch):
    try:
      value = fn(prompts[i], completions[i], **{k: v[i] for k, v in columns.items()})
    except Exception as e:
      e.add_note(f"while computing the reward of sample {i} "
                 f"(reward function {getattr(fn, '__name__', fn)!r})")
      raise
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
      raise ValueError(f"reward of sample {i}: expected a finite float, got "
                       f"{type(value).__name__} {value!r}")
    # Check after the float32 cast too: 1e39 is finite in Python but inf in float32.
    with np.errstate(over="ignore"):
      value32 = np.float32(value)
    if not math.isfinite(float(value)) or not np.isfinite(value32):
      raise ValueError(f"reward of sample {i}: expected a finite float32 value, "
                       f"got {value!r}")
    rewards_B[i] = value32
  return rewards_B


@register_reward("arithmetic_exact")
def arithmetic_exact(prompt: str, completion: str) -> float:
  """Exact match of the final running sum; the task (K, N) is read off the prompt itself."""
  return ArithmeticTask.from_prompt(prompt).reward(prompt, completion)


@register_reward("gsm8k_math")
def gsm8k_math(prompt: str, completion: str, *, answer: str) -> float:
  """Numeric equivalence of the completion's final answer with the gold `answer` column."""
  del prompt  # the gold answer carries everything needed
  return math_reward(completion, answer)


@register_reward("answer_is_number")
def answer_is_number(prompt: str, completion: str) -> float:
  """Format reward: 1.0 if the completion's final answer (`math_answer.extract_answer`) is a
  number, else 0.0. A small weight beside a correctness reward rewards answering at all (TRL's
  GRPO examples pair correctness with such format terms)."""
  del prompt
  return 1.0 if normalize_number(extract_answer(completion)) is not None else 0.0
