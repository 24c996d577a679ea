"""The base language and the five task domains of the Translate-R1 cipher world (SPEC §1(c)).

The base language ("en") is a tiny English-like language: `BASE_WORDS` (58 words) plus number
tokens ("0".."max_number") and four punctuation tokens. Text is whitespace-tokenised: every word,
number and punctuation mark is separated by one space, so a word-level tokenizer sees exactly the
units the ciphers permute.

Five templated domains, every answer a non-negative integer written in digits. Digits pass
through every cipher unchanged, so the answer of an item is preserved by construction in all
languages (SPEC §1(c)):

  arithmetic   "tom has 4 apples . he gets 3 more . then he loses 2 . how many apples does tom
                have now ?"                                                         -> "5"
  lookup       "red is 7 , sun is 42 , gold is 3 . what is sun ?"                   -> "42"
  comparison   "ann has 12 coins and bob has 30 coins . what is the bigger number ?" -> "30"
  counting     "count the cat : cat dog cat frog . how many ?"                      -> "2"
  sequence     "3 7 11 15 . what comes next ?"                                       -> "19"

`solve_english` is the oracle solver: it reads an English item's text (never its stored answer)
and computes the answer from the template, so it can serve as the `Teacher`-like round-trip solver
of the answer-preservation check and be tested independently of the generators.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

NAMES_HE = ("tom", "bob", "max", "leo")
NAMES_SHE = ("ann", "sue", "eve", "kim")
OBJECTS = ("apples", "coins", "books", "pens", "cups", "eggs", "cards", "toys")
ANIMALS = ("cat", "dog", "bird", "fish", "frog", "ant")
KEYS = ("red", "blue", "green", "gold", "pink", "gray", "sun", "moon", "star", "tree")
ADD_VERBS = ("gets", "buys", "finds")
SUB_VERBS = ("loses", "gives", "sells")
FUNCTION_WORDS = ("he", "she", "has", "have", "more", "then", "how", "many", "does", "now", "and",
                  "what", "is", "the", "bigger", "smaller", "number", "count", "comes", "next")

BASE_WORDS: tuple[str, ...] = (NAMES_HE + NAMES_SHE + OBJECTS + ANIMALS + KEYS + ADD_VERBS
                               + SUB_VERBS + FUNCTION_WORDS)
PUNCTUATION = (".", ",", "?", ":")
DOMAINS = ("arithmetic", "lookup", "comparison", "counting", "sequence")

# Generators keep every number they write within [0, max_number]; the largest number a template
# can need at the default operand ranges is 27 (arithmetic: 9 + 9 + 9) and 40 (sequence).
MIN_MAX_NUMBER = 40
_OPERAND_MAX = 9


def is_number(token: str) -> bool:
  return token.isascii() and token.isdigit()


def _pick(rng: np.random.Generator, options):
  return options[int(rng.integers(len(options)))]


def _pronoun(name: str) -> str:
  return "he" if name in NAMES_HE else "she"


def _gen_arithmetic(rng: np.random.Generator, max_number: int) -> tuple[str, str]:
  name = _pick(rng, NAMES_HE + NAMES_SHE)
  obj = _pick(rng, OBJECTS)
  pron = _pronoun(name)
  total = int(rng.integers(1, _OPERAND_MAX + 1))
  parts = [f"{name} has {total} {obj} ."]
  for step in range(int(rng.integers(1, 3))):  # one or two operations
    # Subtract only what is there, so every intermediate count stays non-negative.
    if total > 0 and rng.random() < 0.5:
      b = int(rng.integers(1, min(total, _OPERAND_MAX) + 1))
      total -= b
      clause = f"{pron} {_pick(rng, SUB_VERBS)} {b} ."
    else:
      b = int(rng.integers(1, _OPERAND_MAX + 1))
      total += b
      clause = f"{pron} {_pick(rng, ADD_VERBS)} {b} more ."
    parts.append(("then " if step else "") + clause)
  parts.append(f"how many {obj} does {name} have now ?")
  return " ".join(parts), str(total)


def _gen_lookup(rng: np.random.Generator, max_number: int) -> tuple[str, str]:
  n_pairs = int(rng.integers(2, 5))
  keys = [KEYS[i] for i in rng.choice(len(KEYS), size=n_pairs, replace=False)]
  values = [int(v) for v in rng.integers(0, max_number + 1, size=n_pairs)]
  query = int(rng.integers(n_pairs))
  pairs = " , ".join(f"{k} is {v}" for k, v in zip(keys, values))
  return f"{pairs} . what is {keys[query]} ?", str(values[query])


def _gen_comparison(rng: np.random.Generator, max_number: int) -> tuple[str, str]:
  i, j = rng.choice(len(NAMES_HE + NAMES_SHE), size=2, replace=False)
  n1, n2 = (NAMES_HE + NAMES_SHE)[i], (NAMES_HE + NAMES_SHE)[j]
  obj = _pick(rng, OBJECTS)
  a, b = (int(v) for v in rng.choice(max_number + 1, size=2, replace=False))
  which = _pick(rng, ("bigger", "smaller"))
  answer = max(a, b) if which == "bigger" else min(a, b)
  text = f"{n1} has {a} {obj} and {n2} has {b} {obj} . what is the {which} number ?"
  return text, str(answer)


def _gen_counting(rng: np.random.Generator, max_number: int) -> tuple[str, str]:
  target = _pick(rng, ANIMALS)
  # Uniform animals would make the target rare (answer mostly 0 or 1); draw it a third of the time.
  seq = [target if rng.random() < 1 / 3 else _pick(rng, ANIMALS)
         for _ in range(int(rng.integers(3, 8)))]
  return f"count the {target} : {' '.join(seq)} . how many ?", str(seq.count(target))


def _gen_sequence(rng: np.random.Generator, max_number: int) -> tuple[str, str]:
  step = int(rng.integers(1, 6))
  start = int(rng.integers(0, min(20, max_number - 4 * step) + 1))
  seq = [start + k * step for k in range(4)]
  return f"{' '.join(map(str, seq))} . what comes next ?", str(start + 4 * step)


_GENERATORS: dict[str, Callable[[np.random.Generator, int], tuple[str, str]]] = {
    "arithmetic": _gen_arithmetic,
    "lookup": _gen_lookup,
    "comparison": _gen_comparison,
    "counting": _gen_counting,
    "sequence": _gen_sequence,
}


def generate(domain: str, rng: np.random.Generator, max_number: int) -> tuple[str, str]:
  """One English item of `domain`: returns (text_en, answer) with answer a digit string."""
  if domain not in _GENERATORS:
    raise ValueError(f"unknown domain {domain!r}; expected one of {list(DOMAINS)}")
  if max_number < MIN_MAX_NUMBER:
    raise ValueError(f"max_number must be >= {MIN_MAX_NUMBER}, got {max_number}")
  return _GENERATORS[domain](rng, max_number)


# ----------------------------------------------------------------------------- oracle solver


def _solve_arithmetic(toks: list[str]) -> str | None:
  sentences = " ".join(toks).split(" . ")
  head = sentences[0].split()
  if len(head) != 4 or head[1] != "has" or not is_number(head[2]):
    return None
  total = int(head[2])
  for sentence in sentences[1:-1]:
    words = sentence.split()
    if words and words[0] == "then":
      words = words[1:]
    if len(words) < 3 or not is_number(words[2]):
      return None
    if words[1] in ADD_VERBS:
      total += int(words[2])
    elif words[1] in SUB_VERBS:
      total -= int(words[2])
    else:
      return None
  return str(total)


def _solve_lookup(toks: list[str]) -> str | None:
  query = toks[-2]
  body = toks[:toks.index(".")]
  # body is "k is v , k is v , ..." : read every (key, "is", value) triple.
  for k in range(0, len(body) - 2, 4):
    key, is_, value = body[k:k + 3]
    if is_ == "is" and key == query and is_number(value):
      return value
  return None


def solve_english(text_en: str) -> str | None:
  """Oracle solver of the five templates, from the English text alone.

  Returns the answer as a digit string, or None when the text matches no template (e.g. a
  corrupted back-translation), so a round-trip check fails instead of raising.
  """
  toks = text_en.split()
  if len(toks) < 4 or toks[-1] != "?":
    return None
  numbers = [int(t) for t in toks if is_number(t)]
  if toks[-4:-1] == ["what", "comes", "next"]:
    if len(numbers) < 2:
      return None
    return str(numbers[-1] + (numbers[1] - numbers[0]))
  if toks[0] == "count" and ":" in toks and "." in toks:
    target = toks[2]
    seq = toks[toks.index(":") + 1:toks.index(".")]
    return str(seq.count(target))
  if toks[-3:-1] == ["bigger", "number"] and numbers:
    return str(max(numbers))
  if toks[-3:-1] == ["smaller", "number"] and numbers:
    return str(min(numbers))
  if toks[-4:-2] == ["what", "is"] and "." in toks:
    return _solve_lookup(toks)
  if toks[-3:] == ["have", "now", "?"]:
    return _solve_arithmetic(toks)
  return None
