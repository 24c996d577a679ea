"""The constraint-instruction world of ECD (arXiv 2410.07513), CPU-sized (docs/ecd.md).

An instruction asks for a list of words about a topic and carries k checkable constraints:

    list fruit include mango count 4 upper sorted        -> "APPLE CHERRY LEMON MANGO"

`OpTaxonomy`: the hierarchical taxonomy of evolution operations, top level content / format /
style / reasoning / breadth (the paper's five), each with fine-grained ops; every op adds exactly
one constraint that `ConstraintChecker` verifies exactly:

  content:   include w (w is an item), avoid w (w is not an item)
  format:    count n (exactly n items), numbered ("1. w 2. w ...")
  style:     upper (every item uppercase), end z (the response ends with the mark z)
  reasoning: sorted (items in alphabetical order), reversed (reverse alphabetical order)
  breadth:   also T (at least one item from a second topic T)

`Teacher`: a deterministic constraint solver (the oracle standing in for the paper's strong
LLM): it writes the response that satisfies every constraint, changing as little as possible
from the response without the newest one. `Evolver`: evolves I^(t-1) into I^(t) by one op drawn
hierarchically (a top-level category, then an op, then its argument) among those that the
previous round's response R^(t-1) violates, so (I^(t), R^(t), R^(t-1)) is a hard negative pair:
R^(t-1) satisfies every older constraint and misses exactly the new one (ECD's step 4).
"""
from __future__ import annotations

import dataclasses
import re
from typing import Mapping, Sequence

import numpy as np

# Six topics of eight words; the teacher fills lists in this (non-alphabetical) order, so a
# default response is unsorted and "sorted" / "reversed" are real constraints.
TOPICS: Mapping[str, tuple[str, ...]] = {
    "fruit": ("mango", "apple", "plum", "cherry", "lemon", "grape", "peach", "banana"),
    "animal": ("wolf", "cat", "horse", "bear", "mouse", "dog", "lion", "fox"),
    "color": ("red", "amber", "white", "green", "cyan", "pink", "blue", "gray"),
    "tool": ("saw", "axe", "wrench", "drill", "knife", "hammer", "spade", "file"),
    "city": ("oslo", "cairo", "rome", "berlin", "tokyo", "delhi", "paris", "lima"),
    "sport": ("polo", "golf", "yoga", "hockey", "sumo", "judo", "tennis", "rugby"),
}
END_MARKS = ("!", "?")
COUNTS = (2, 3, 4, 5)
DEFAULT_COUNT = 3

OpTaxonomy: Mapping[str, tuple[str, ...]] = {
    "content": ("include", "avoid"),
    "format": ("count", "numbered"),
    "style": ("upper", "end"),
    "reasoning": ("sorted", "reversed"),
    "breadth": ("also",),
}
ARG_OPS = ("include", "avoid", "count", "end", "also")  # ops rendered with an argument
_MARKER = re.compile(r"^(\d+)\.$")


@dataclasses.dataclass(frozen=True)
class Constraint:
  """One checkable requirement: `op` from `OpTaxonomy`, `arg` its argument ("" if none)."""
  op: str
  arg: str = ""

  def render(self) -> str:
    return f"{self.op} {self.arg}" if self.arg else self.op


@dataclasses.dataclass(frozen=True)
class Instruction:
  """A topic and its constraints in the order they were added; level = number of constraints."""
  topic: str
  constraints: tuple[Constraint, ...] = ()

  @property
  def level(self) -> int:
    return len(self.constraints)

  def ops(self) -> set[str]:
    return {c.op for c in self.constraints}

  def args(self, op: str) -> list[str]:
    return [c.arg for c in self.constraints if c.op == op]

  def count(self) -> int:
    counts = self.args("count")
    return int(counts[0]) if counts else DEFAULT_COUNT

  def required(self) -> int:
    """Items the instruction pins down (each include and each also-topic needs one)."""
    return len(self.args("include")) + len(self.args("also"))

  def render(self) -> str:
    return " ".join([f"list {self.topic}"] + [c.render() for c in self.constraints])

  def add(self, constraint: Constraint) -> "Instruction":
    return dataclasses.replace(self, constraints=self.constraints + (constraint,))


def vocabulary() -> list[str]:
  """Every word an instruction or a response can hold (for the word tokenizer)."""
  words = ["list"] + list(TOPICS) + [op for ops in OpTaxonomy.values() for op in ops]
  for topic_words in TOPICS.values():
    words += list(topic_words) + [w.upper() for w in topic_words]
  words += [str(n) for n in COUNTS] + [f"{i}." for i in range(1, max(COUNTS) + 1)]
  return list(dict.fromkeys(words + list(END_MARKS)))


@dataclasses.dataclass(frozen=True)
class Parsed:
  """A response split into its parts: list items, numbering markers, the end mark."""
  tokens: tuple[str, ...]
  items: tuple[str, ...]
  numbered: bool
  end: str


def parse(response: str) -> Parsed:
  tokens = tuple(response.split())
  body, end = (tokens[:-1], tokens[-1]) if tokens and tokens[-1] in END_MARKS else (tokens, "")
  items = tuple(t for t in body if not _MARKER.match(t) and t not in END_MARKS)
  expected = tuple(x for i, item in enumerate(items) for x in (f"{i + 1}.", item))
  return Parsed(tokens, items, bool(items) and body == expected, end)


class ConstraintChecker:
  """Exact programmatic verification of each constraint of an instruction (IFEval-style)."""

  def check(self, instruction: Instruction, response: str) -> list[bool]:
    """One bool per constraint, in the instruction's order."""
    parsed = parse(response)
    return [self.satisfied(c, parsed) for c in instruction.constraints]

  @staticmethod
  def satisfied(c: Constraint, p: Parsed) -> bool:
    lower = [w.lower() for w in p.items]
    if c.op == "include":
      return c.arg in lower
    if c.op == "avoid":
      return c.arg not in lower
    if c.op == "count":
      return len(p.items) == int(c.arg)
    if c.op == "numbered":
      return p.numbered
    if c.op == "upper":
      return bool(p.items) and all(w == w.upper() and w.isalpha() for w in p.items)
    if c.op == "end":
      return p.end == c.arg
    if c.op == "sorted":
      return len(lower) >= 2 and lower == sorted(lower)
    if c.op == "reversed":
      return len(lower) >= 2 and lower == sorted(lower, reverse=True)
    if c.op == "also":
      return any(w in TOPICS[c.arg] for w in lower)
    raise ValueError(f"unknown constraint op {c.op!r}; valid: {sorted(ARG_OPS)} and the rest "
                     f"of {dict(OpTaxonomy)}")


class Teacher:
  """Deterministic constraint solver: the response that satisfies every constraint.

  Items: the included words, then for each also-topic its first word (in `TOPICS` order) not
  avoided, then the instruction's topic words in `TOPICS` order (skipping avoided and used
  ones) up to `count` items; then ordering (sorted / reversed), case (upper), numbering and the
  end mark."""

  def respond(self, instruction: Instruction) -> str:
    avoid = set(instruction.args("avoid"))
    items = list(instruction.args("include"))
    for topic in instruction.args("also"):
      items.append(next(w for w in TOPICS[topic] if w not in avoid and w not in items))
    for w in TOPICS[instruction.topic]:
      if len(items) >= instruction.count():
        break
      if w not in avoid and w not in items:
        items.append(w)
    ops = instruction.ops()
    if "sorted" in ops:
      items.sort()
    elif "reversed" in ops:
      items.sort(reverse=True)
    if "upper" in ops:
      items = [w.upper() for w in items]
    tokens = ([x for i, w in enumerate(items) for x in (f"{i + 1}.", w)] if "numbered" in ops
              else items)
    ends = instruction.args("end")
    return " ".join(tokens + ends[:1])


class Evolver:
  """I^(t-1) -> I^(t): one op of `OpTaxonomy` that the current response violates.

  Hierarchical draw: a top-level category uniformly among those with a valid op, then an op of
  it, then its argument, all from `rng`. Valid = compatible with the constraints present (one
  count, ordering, case, numbering and end mark each; include / avoid / also consistent and
  feasible within the count) and violated by `previous_response`, so that response is a hard
  negative of the evolved instruction. Returns None when no op applies."""

  def __init__(self, checker: ConstraintChecker | None = None):
    self.checker = checker or ConstraintChecker()

  def candidates(self, ins: Instruction, previous_response: str) -> dict[str, list[Constraint]]:
    ops, parsed = ins.ops(), parse(previous_response)
    avoid, include = set(ins.args("avoid")), set(ins.args("include"))
    room = ins.required() < ins.count()
    words = TOPICS[ins.topic]
    also_words = {w for t in ins.args("also") for w in TOPICS[t]}
    options = {
        "include": [Constraint("include", w) for w in words
                    if room and w not in avoid and w not in include],
        "avoid": [Constraint("avoid", w) for w in words
                  if w not in include and w not in avoid and w not in also_words
                  and len(avoid) + ins.count() < len(words)],
        "count": [Constraint("count", str(n)) for n in COUNTS
                  if "count" not in ops and n >= max(ins.required(), 2)],
        "numbered": [Constraint("numbered")] if "numbered" not in ops else [],
        "upper": [Constraint("upper")] if "upper" not in ops else [],
        "end": [Constraint("end", z) for z in END_MARKS] if "end" not in ops else [],
        "sorted": [Constraint("sorted")] if not ops & {"sorted", "reversed"} else [],
        "reversed": [Constraint("reversed")] if not ops & {"sorted", "reversed"} else [],
        "also": [Constraint("also", t) for t in TOPICS
                 if room and t != ins.topic and t not in ins.args("also")],
    }
    out = {}
    for category, names in OpTaxonomy.items():
      valid = {op: [c for c in options[op] if not self.checker.satisfied(c, parsed)]
               for op in names}
      valid = {op: cs for op, cs in valid.items() if cs}
      if valid:
        out[category] = valid
    return out

  def evolve(self, ins: Instruction, previous_response: str, rng: np.random.Generator
             ) -> tuple[Instruction, str] | None:
    """(evolved instruction, category of the op), or None if no op applies."""
    cands = self.candidates(ins, previous_response)
    if not cands:
      return None
    category = sorted(cands)[rng.integers(len(cands))]
    ops = cands[category]
    op = sorted(ops)[rng.integers(len(ops))]
    choice = ops[op][rng.integers(len(ops[op]))]
    return ins.add(choice), category


@dataclasses.dataclass(frozen=True)
class Round:
  """One round of a chain: the instruction, the teacher's response and the op's category."""
  instruction: Instruction
  response: str
  category: str = ""


def evolve_chain(topic: str, rounds: int, rng: np.random.Generator, *,
                 teacher: Teacher | None = None, evolver: Evolver | None = None) -> list[Round]:
  """Seed I^(0) = "list <topic>" with R^(0), then `rounds` evolutions (fewer if none applies)."""
  teacher, evolver = teacher or Teacher(), evolver or Evolver()
  ins = Instruction(topic)
  chain = [Round(ins, teacher.respond(ins))]
  for _ in range(rounds):
    step = evolver.evolve(ins, chain[-1].response, rng)
    if step is None:
      break
    ins, category = step
    chain.append(Round(ins, teacher.respond(ins), category))
  return chain


def chains(n: int, rounds: int, seed: int) -> list[list[Round]]:
  """`n` chains, topics cycled, from `default_rng([seed, i])` each."""
  topics = sorted(TOPICS)
  return [evolve_chain(topics[i % len(topics)], rounds, np.random.default_rng([seed, i]))
          for i in range(n)]


def hard_negative_pairs(chain: Sequence[Round]) -> list[tuple[Instruction, str, str]]:
  """ECD pairs of a chain: (I^(t), R^(t), R^(t-1)) for t >= 1."""
  return [(b.instruction, b.response, a.response) for a, b in zip(chain, chain[1:])]
