"""Verbose chain-of-thought arithmetic whose generator knows which steps are necessary.

A problem is a chain of 2-3 additions / subtractions of one-digit numbers (running totals stay
in [0, 19]), e.g. the prompt "7+5-3". Its worked solution is the necessary steps, one running
total each, then the answer behind the trigger "A":

    necessary:   7+5=12;12-3=9;A9

The SFT demonstrations are *verbose*: 2-4 redundant steps inserted at random places, of three
kinds (SWAP's overthinking, arXiv 2603.00296; docs/swap.md):

    restatement   q7+5-3;     the question again
    verification  v7+5=12;    an earlier necessary step repeated (after it)
    digression    d12>9;      a true but irrelevant comparison of two numbers seen so far

    e.g.          q7+5-3;7+5=12;d12>7;12-3=9;v12-3=9;A9

so the SFT policy is correct but long, and RL has something to shorten. The oracle
(`step_labels`) marks a sampled step necessary iff its text is one of the problem's necessary
steps, at its first occurrence; everything else (restatements, repeats, digressions, garbage)
is redundant. Reward: 1 iff the text after the first "A" is the answer (exact match).
"""
from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np

from rl_jax.tasks import TASKS, TaskData
from rl_jax.tokenizers import train_sentencepiece

DELIMITER, TRIGGER = ";", "A"
MAX_TOTAL = 19


@dataclasses.dataclass(frozen=True)
class Problem:
  """start, ops ((sign, operand), ...), answer (str), the necessary steps and one verbose
  demonstration (`completion`, drawn with the problem: the SFT target)."""
  start: int
  ops: tuple[tuple[str, int], ...]
  answer: str
  necessary: tuple[str, ...]
  completion: str

  @property
  def prompt(self) -> str:
    return str(self.start) + "".join(f"{s}{x}" for s, x in self.ops)


def necessary_steps(start: int, ops) -> tuple[tuple[str, ...], int]:
  total, steps = start, []
  for sign, x in ops:
    new = total + x if sign == "+" else total - x
    steps.append(f"{total}{sign}{x}={new}")
    total = new
  return tuple(steps), total


def verbose_solution(start: int, ops, rng: np.random.Generator, min_redundant: int,
                     max_redundant: int) -> str:
  """The necessary steps with redundant ones inserted (module docstring), then "A<answer>"."""
  steps, total = necessary_steps(start, ops)
  prompt = str(start) + "".join(f"{s}{x}" for s, x in ops)
  out: list[str] = list(steps)
  for _ in range(int(rng.integers(min_redundant, max_redundant + 1))):
    kind = rng.choice(["q", "v", "d"])
    if kind == "q":
      pos = int(rng.integers(0, len(out) + 1))
      out.insert(pos, "q" + prompt)
      continue
    # Positions after the first necessary step: what a verification or digression can use.
    first = out.index(steps[0])
    pos = int(rng.integers(first + 1, len(out) + 1))
    seen = [s for s in out[:pos] if s in steps]
    if kind == "v":
      out.insert(pos, "v" + seen[int(rng.integers(0, len(seen)))])
    else:
      numbers = sorted({int(n) for s in seen for n in s.replace("+", " ").replace(
          "-", " ").replace("=", " ").split()})
      if len(numbers) < 2:
        numbers = sorted({start, numbers[0] + 1 if numbers else start + 1})
      a, b = rng.choice(numbers, 2, replace=False)
      out.insert(pos, f"d{max(a, b)}>{min(a, b)}")
  return "".join(s + DELIMITER for s in out) + TRIGGER + str(total)


def sample_problem(rng: np.random.Generator, min_ops: int, max_ops: int, min_redundant: int,
                   max_redundant: int) -> Problem:
  while True:
    start = int(rng.integers(1, 10))
    n = int(rng.integers(min_ops, max_ops + 1))
    ops, total, ok = [], start, True
    for _ in range(n):
      sign = "+" if rng.random() < 0.5 else "-"
      x = int(rng.integers(1, 10))
      total = total + x if sign == "+" else total - x
      ok &= 0 <= total <= MAX_TOTAL
      ops.append((sign, x))
    if ok:
      break
  steps, total = necessary_steps(start, ops)
  return Problem(start, tuple(ops), str(total), steps,
                 verbose_solution(start, ops, rng, min_redundant, max_redundant))


def split(text: str) -> list[str]:
  """The step texts of a response (before the first trigger, split at the delimiter; the
  oracle's view, the same rule as SWAP's "delimiter" splitter)."""
  reasoning = text.split(TRIGGER, 1)[0]
  return [s for s in reasoning.split(DELIMITER) if s.strip()]


def step_labels(problem: Problem, steps: Sequence[str]) -> list[bool]:
  """True for a necessary step: one of the problem's necessary steps, first occurrence."""
  seen, labels = set(), []
  for s in steps:
    s = s.strip()
    labels.append(s in problem.necessary and s not in seen)
    seen.add(s)
  return labels


def necessary_kept(problem: Problem, text: str) -> float:
  """Fraction of the problem's necessary steps present in the response."""
  present = {s.strip() for s in split(text)}
  return sum(s in present for s in problem.necessary) / len(problem.necessary)


def reward(problem: Problem, text: str) -> float:
  if TRIGGER not in text:
    return 0.0
  return float(text.split(TRIGGER, 1)[1].strip() == problem.answer)


def alphabet_texts() -> list[str]:
  """Every character the task writes (the char tokenizer's corpus)."""
  return ["0123456789+-=;>qvdA"]


@TASKS.register("swap_verbose_arith")
def verbose_arith_task(*, seed: int, train_size: int = 2000, eval_size: int = 200,
                       min_ops: int = 2, max_ops: int = 3, min_redundant: int = 2,
                       max_redundant: int = 4) -> TaskData:
  """The task (module docstring). train_size problems with one verbose demonstration each (the
  SFT data); eval_size held-out problems (prompts never drawn for training); RL draws fresh
  problems outside the held-out set. min/max_ops: operations per problem; min/max_redundant:
  redundant steps per demonstration."""
  if not 1 <= min_ops <= max_ops or not 0 <= min_redundant <= max_redundant:
    raise ValueError(f"task swap_verbose_arith: need 1 <= min_ops <= max_ops and 0 <= "
                     f"min_redundant <= max_redundant, got ops ({min_ops}, {max_ops}), "
                     f"redundant ({min_redundant}, {max_redundant})")
  rng = np.random.default_rng([seed, 5])
  draw = lambda r: sample_problem(r, min_ops, max_ops, min_redundant, max_redundant)
  held_out, seen = [], set()
  while len(held_out) < eval_size:
    p = draw(rng)
    if p.prompt not in seen:
      seen.add(p.prompt)
      held_out.append(p)
  train = []
  while len(train) < train_size:
    p = draw(rng)
    if p.prompt not in seen:
      train.append(p)

  def fresh(n, r):
    out = []
    while len(out) < n:
      p = draw(r)
      if p.prompt not in seen:
        out.append(p)
    return out

  return TaskData("swap_verbose_arith", train, held_out, prompt_fn=lambda p: p.prompt,
                  completion_fn=lambda p: p.completion, reward_fn=reward, rl_sampler=fresh,
                  tokenizer=tokenizer())


def tokenizer():
  """One piece per character of the task, trained on a fixed corpus (independent of the seed
  and sizes), so the piece ids never change and a saved checkpoint fits every run."""
  rng = np.random.default_rng(0)
  corpus = [p.prompt + p.completion for p in (sample_problem(rng, 2, 3, 2, 4)
                                               for _ in range(200))]
  return train_sentencepiece(alphabet_texts() + corpus, vocab_size=64, model_type="char",
                             byte_fallback=False)
