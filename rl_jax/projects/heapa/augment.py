"""Augmenters and the exact validator of HeaPA on the arithmetic task (docs/heapa.md).

A variant's payload is JSON: {"operands": [ints]} (the perturber) or {"text": prompt text} (the
policy), always with the parent's (K, N) shape in "shape". The validator is the exact checker
that stands in for the authors' teacher model (arXiv 2601.22448): it parses the variant, checks
that it is a problem of the task's format, and computes its answer exactly.

Verdicts: "invalid" (not a prompt of the task's format: unparseable text, wrong operand count),
"unsolvable" (numbers the format cannot write: negative or wider than N digits), "duplicate"
(the parent itself), "heldout" (an operand tuple of the held-out set: inserting it would train
on the test set), "ok" (inserted into the pool).
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from rl_jax.algorithms.heapa import AUGMENTERS, VALIDATORS, Variant, Verdict
from rl_jax.envs.arithmetic import ArithmeticTask, Problem


def carries(operands: Sequence[int]) -> int:
  """Column carries of the column-wise sum of `operands` (a difficulty proxy for addition:
  each carry is one more thing a left-to-right decoder must remember)."""
  ops, carry, count = [int(o) for o in operands], 0, 0
  while any(ops) or carry:
    column = sum(o % 10 for o in ops) + carry
    carry = column // 10
    count += carry > 0
    ops = [o // 10 for o in ops]
  return count


def relative_difficulty(parent: Sequence[int], child: Sequence[int]) -> float:
  """d = (carries(child) + 1) / (carries(parent) + 1): > 1 for a harder variant."""
  return (carries(child) + 1) / (carries(parent) + 1)


def _shape(problem: Problem) -> list[int]:
  return [len(problem.operands), len(problem.prompt.split("+")[0])]


@AUGMENTERS.register("arith_perturb")
class PerturbAugmenter:
  """Programmatic stand-in for the policy: changes only the numbers. Each operand is replaced,
  with probability `change_prob` (at least one is), by itself plus a uniform nonzero shift in
  [-max_shift, max_shift]; shifts can leave [0, 10**N), which the validator must reject
  ("unsolvable"). Difficulty: `relative_difficulty` from column carries."""
  needs_policy = False

  def __init__(self, *, ctx=None, change_prob: float = 0.5, max_shift: int = 30):
    del ctx
    if not 0 < change_prob <= 1:
      raise ValueError(f"arith_perturb.change_prob must be in (0, 1], got {change_prob}")
    if max_shift < 1:
      raise ValueError(f"arith_perturb.max_shift must be >= 1, got {max_shift}")
    self.change_prob, self.max_shift = change_prob, max_shift

  def propose(self, parents, rng, *, params=None, key=None):
    out = []
    for p in parents:
      ops = np.asarray(p.operands, np.int64)
      change = rng.random(len(ops)) < self.change_prob
      change[rng.integers(len(ops))] = True
      shift = rng.integers(1, self.max_shift + 1, size=len(ops)) * rng.choice([-1, 1], len(ops))
      new = np.where(change, ops + shift, ops)
      in_range = [max(int(o), 0) for o in new]
      out.append(Variant({"operands": [int(o) for o in new], "shape": _shape(p),
                          "parent": list(p.operands)},
                         relative_difficulty(p.operands, in_range)))
    return out, {}

  def decode(self, problem: Any) -> Problem:
    return decode(problem)


def decode(problem: Any) -> Problem:
  """The Problem of an accepted variant ({"operands", "shape"} as the validator wrote it)."""
  k, n = problem["shape"]
  return ArithmeticTask(num_operands=k, num_digits=n).make_problem(problem["operands"])


@AUGMENTERS.register("arith_policy")
class PolicyAugmenter:
  """On-policy augmentation: the current policy writes the numbers of the variant.

  The tiny char-level policy has no instruction-following (it only ever saw "a+b+c=" prompts),
  so the rewrite template is the parent's own prompt: the policy samples a completion at
  `temperature` and its digits, read in the task's reversed-digit format, become the variant's
  operands (the first K * N digits of the completion, in N-digit chunks). The numbers are the
  policy's own sampled output for the parent, so the variant stays near what the policy
  currently does on it; a completion with too few digits is "invalid" and counted, as is any
  other malformed text. The policy reports no difficulty: d = 1 (the estimate is the parent's
  realised mean). Generated tokens are counted in aug/aug_tokens (compute of the arm).
  """
  needs_policy = True

  def __init__(self, *, ctx, temperature: float = 1.0):
    self.ctx, self.temperature = ctx, temperature

  def propose(self, parents, rng, *, params=None, key=None):
    from rl_jax.eval import generation  # pylint: disable=g-import-not-at-top
    if params is None or key is None:
      raise ValueError("augmenter arith_policy needs the policy's params and a key (the RL stage "
                       "passes them to sources with needs_policy)")
    exp = self.ctx.exp
    samples = generation.generate_samples(
        params, [p.prompt for p in parents], tokenizer=self.ctx.tokenizer,
        model_cfg=self.ctx.model_cfg, prompt_len=exp.prompt_len,
        max_new_tokens=exp.max_new_tokens, key=key, batch_size=exp.rl.prompts_per_step,
        num_samples=1, temperature=self.temperature, mesh=self.ctx.mesh)
    out = []
    for p, (text,) in zip(parents, samples.texts):
      k, n = _shape(p)
      digits = "".join(ch for ch in text if ch.isdigit())[:k * n]
      prompt = "+".join(digits[i:i + n] for i in range(0, len(digits), n)) + "="
      out.append(Variant({"text": prompt, "shape": [k, n], "parent": list(p.operands)}, 1.0))
    return out, {"tokens": int(samples.lengths_PxN.sum())}

  def decode(self, problem: Any) -> Problem:
    return decode(problem)


@VALIDATORS.register("arith_exact")
class ExactValidator:
  """The exact checker (deterministic, thread-safe). Held-out operand tuples are refused."""

  def __init__(self, *, ctx=None):
    self.held_out = (set() if ctx is None else
                     {tuple(p.operands) for p in ctx.task.eval if hasattr(p, "operands")})

  def __call__(self, payload: Any) -> Verdict:
    try:
      k, n = (int(x) for x in payload["shape"])
      task = ArithmeticTask(num_operands=k, num_digits=n)
    except (KeyError, TypeError, ValueError):
      return Verdict("invalid")
    if "text" in payload:
      try:
        operands = task.parse_prompt(payload["text"])
      except ValueError:
        return Verdict("invalid")
    else:
      operands = payload.get("operands")
      if (not isinstance(operands, list) or len(operands) != k
          or not all(isinstance(o, int) for o in operands)):
        return Verdict("invalid")
    if any(not 0 <= o < 10**n for o in operands):
      return Verdict("unsolvable")
    operands = tuple(int(o) for o in operands)
    if operands == tuple(payload.get("parent", ())):
      return Verdict("duplicate")
    if operands in self.held_out:
      return Verdict("heldout")
    task.make_problem(operands)  # the exact answer (raises only on a checker bug)
    return Verdict("ok", {"operands": list(operands), "shape": [k, n]})
