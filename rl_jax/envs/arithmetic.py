"""The quickstart task: add K zero-padded N-digit numbers, digits written least-significant first.

Format (K = `num_operands`, N = `num_digits`, W = number of digits of the largest possible sum,
i.e. W = len(str(K * (10**N - 1))); W = N + 1 for the default K=3, N=2):

    operands 12, 34, 56   ->  prompt      "21+43+65="      (each operand reversed, N digits)
                              completion  "640,201"        (running sums 12+34=46, 46+56=102,
                                                            each reversed and zero-padded to W)
                              answer      "201"            (the last field = the final sum)

Why reversed digits: a left-to-right decoder then emits the least-significant digit first, so each
output digit depends only on digits it has already seen plus a carry -- the way people add. The
running sums are the worked solution: a short chain of easy steps instead of one hard one, which
is what lets SFT on a few hundred examples reach a partially-correct policy (roughly 60-85% greedy,
pass@8 well above greedy) that RL can then visibly improve within minutes on a CPU.

Reward is exact match of the FINAL field. The intermediate sums are not graded, but the shape must
be right: exactly K-1 comma-separated fields of exactly W digits (surrounding whitespace is
ignored). Anything else -- an empty string, stray characters, a wrong field count or width -- is
malformed and scores 0.0; `reward` never raises on completion text.
"""
from __future__ import annotations

import dataclasses
import itertools
import re
from typing import Sequence

import numpy as np

# Every character the task can produce: what the `arith_char` tokenizer is trained on.
ALPHABET = "0123456789+=,"

_MAX_OPERANDS = 16
_MAX_DIGITS = 12
# Above this many distinct operand tuples, sampling without replacement is done by rejection
# (collisions are then rare); at or below it, by numpy's exact choice over the index space.
_EXACT_CHOICE_LIMIT = 10**7


@dataclasses.dataclass(frozen=True)
class Problem:
  """One addition problem. `operands` are the plain integers (most-significant-first values)."""

  prompt: str
  completion: str
  answer: str
  operands: tuple[int, ...]


def _is_int(x) -> bool:
  return isinstance(x, (int, np.integer)) and not isinstance(x, bool)


def _rev(value: int, width: int) -> str:
  """`value` zero-padded to `width` digits, least-significant digit first."""
  return str(value).zfill(width)[::-1]


@dataclasses.dataclass(frozen=True)
class ArithmeticTask:
  """"Add `num_operands` numbers of `num_digits` digits each" (the two difficulty knobs)."""

  num_operands: int = 3
  num_digits: int = 2

  def __post_init__(self):
    if not _is_int(self.num_operands) or not 2 <= self.num_operands <= _MAX_OPERANDS:
      raise ValueError(
          f"ArithmeticTask.num_operands: expected an int in [2, {_MAX_OPERANDS}], "
          f"got {self.num_operands!r}")
    if not _is_int(self.num_digits) or not 1 <= self.num_digits <= _MAX_DIGITS:
      raise ValueError(
          f"ArithmeticTask.num_digits: expected an int in [1, {_MAX_DIGITS}], "
          f"got {self.num_digits!r}")

  # ---- format -------------------------------------------------------------------------------
  @property
  def sum_width(self) -> int:
    """W: digits of every running-sum field (the largest possible sum's length)."""
    return len(str(self.num_operands * (10**self.num_digits - 1)))

  @property
  def num_tuples(self) -> int:
    """How many distinct operand tuples exist (10**(K*N))."""
    return 10 ** (self.num_operands * self.num_digits)

  @classmethod
  def from_prompt(cls, prompt: str) -> "ArithmeticTask":
    """The task (K, N) a prompt such as "21+43+65=" was written for."""
    if not isinstance(prompt, str) or not re.fullmatch(r"[0-9]+(\+[0-9]+)+=", prompt):
      raise ValueError(
          f"arithmetic prompt: expected 'd..d+d..d+...=' (digits, '+', final '='), "
          f"got {prompt!r}")
    fields = prompt[:-1].split("+")
    if len({len(f) for f in fields}) != 1:
      raise ValueError(f"arithmetic prompt {prompt!r}: operands have different widths")
    return cls(num_operands=len(fields), num_digits=len(fields[0]))

  def make_problem(self, operands: Sequence[int]) -> Problem:
    """The prompt, worked completion and answer for one operand tuple."""
    ops = tuple(int(o) for o in operands)
    if len(ops) != self.num_operands:
      raise ValueError(f"operands: expected {self.num_operands} values, got {len(ops)}")
    limit = 10**self.num_digits
    for i, o in enumerate(ops):
      if not 0 <= o < limit:
        raise ValueError(f"operands[{i}]: expected 0 <= x < {limit}, got {o}")
    prompt = "+".join(_rev(o, self.num_digits) for o in ops) + "="
    running = list(itertools.accumulate(ops))[1:]
    fields = [_rev(s, self.sum_width) for s in running]
    return Problem(prompt=prompt, completion=",".join(fields), answer=fields[-1],
                   operands=ops)

  def parse_prompt(self, prompt: str) -> tuple[int, ...]:
    """Operand values encoded in `prompt`; ValueError if it is not this task's format."""
    n = self.num_digits
    pattern = r"\+".join([rf"([0-9]{{{n}}})"] * self.num_operands) + "="
    m = re.fullmatch(pattern, prompt) if isinstance(prompt, str) else None
    if m is None:
      raise ValueError(
          f"arithmetic prompt: expected {self.num_operands} operands of {n} digits "
          f"joined by '+' and ending in '=', got {prompt!r}")
    return tuple(int(g[::-1]) for g in m.groups())

  # ---- sampling -----------------------------------------------------------------------------
  def _sample_operands(self, n: int, rng: np.random.Generator, unique: bool) -> np.ndarray:
    k, limit = self.num_operands, 10**self.num_digits
    if not unique:
      return rng.integers(0, limit, size=(n, k), dtype=np.int64)
    if n > self.num_tuples:
      raise ValueError(
          f"asked for {n} distinct problems but K={k}, N={self.num_digits} has only "
          f"{self.num_tuples} operand tuples")
    if self.num_tuples <= _EXACT_CHOICE_LIMIT:
      idx = rng.choice(self.num_tuples, size=n, replace=False)
      # Index -> tuple by base-(10**N) digits.
      return np.stack([(idx // limit**j) % limit for j in range(k)], axis=1)
    seen, rows = set(), []
    while len(rows) < n:
      row = tuple(int(x) for x in rng.integers(0, limit, size=k, dtype=np.int64))
      if row not in seen:
        seen.add(row)
        rows.append(row)
    return np.asarray(rows, dtype=np.int64)

  def sample(self, n: int, seed_or_rng: int | np.random.Generator) -> list[Problem]:
    """`n` problems with independent uniform operands (duplicates possible).

    Deterministic: the same int seed gives the same list. A `np.random.Generator` is advanced.
    """
    if not _is_int(n) or n < 0:
      raise ValueError(f"n: expected a non-negative int, got {n!r}")
    rng = _as_rng(seed_or_rng)
    return [self.make_problem(row) for row in self._sample_operands(n, rng, unique=False)]

  def split(self, train_n: int, eval_n: int, seed: int) -> tuple[list[Problem], list[Problem]]:
    """Train and held-out problems with no operand tuple in common (and none repeated)."""
    for name, v in (("train_n", train_n), ("eval_n", eval_n)):
      if not _is_int(v) or v < 0:
        raise ValueError(f"{name}: expected a non-negative int, got {v!r}")
    rows = self._sample_operands(train_n + eval_n, _as_rng(seed), unique=True)
    problems = [self.make_problem(r) for r in rows]
    return problems[:train_n], problems[train_n:]

  # ---- reward -------------------------------------------------------------------------------
  def reward(self, problem_or_prompt: Problem | str, completion_text: str) -> float:
    """1.0 if the completion is well-formed and its final field is the right sum, else 0.0.

    A malformed prompt is a caller bug and raises ValueError; malformed completion text never
    raises.
    """
    if isinstance(problem_or_prompt, Problem):
      answer = problem_or_prompt.answer
    else:
      answer = self.make_problem(self.parse_prompt(problem_or_prompt)).answer
    if not isinstance(completion_text, str):
      return 0.0
    w = self.sum_width
    pattern = rf"[0-9]{{{w}}}(?:,[0-9]{{{w}}}){{{self.num_operands - 2}}}"
    text = completion_text.strip()
    if re.fullmatch(pattern, text) is None:
      return 0.0
    return 1.0 if text.rsplit(",", 1)[-1] == answer else 0.0


def _as_rng(seed_or_rng) -> np.random.Generator:
  if isinstance(seed_or_rng, np.random.Generator):
    return seed_or_rng
  if _is_int(seed_or_rng):
    return np.random.default_rng(int(seed_or_rng))
  raise ValueError(f"seed_or_rng: expected an int seed or np.random.Generator, "
                   f"got {type(seed_or_rng).__name__}")


def corpus_texts(n: int = 2000, seed: int = 0) -> list[str]:
  """Prompt+completion strings over several (K, N) settings: the char tokenizer's corpus.

  The corpus always ends with `ALPHABET` itself, so every task character is in the vocabulary
  whatever the sample.
  """
  rng = np.random.default_rng(seed)
  texts = []
  for k, d in ((2, 1), (3, 2), (4, 3)):
    texts += [p.prompt + p.completion for p in ArithmeticTask(k, d).sample(n // 3, rng)]
  return texts + [ALPHABET]
