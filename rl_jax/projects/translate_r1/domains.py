"""The base language and the five task domains of the Translate-R1 cipher world
(docs/translate_r1.md).

The base language ("en") is a tiny English-like language: `BASE_WORDS` (66 words, the number
words "zero".."nine" among them) plus digit tokens "0".."max_number" and four punctuation tokens.
Text is whitespace-tokenised: every word and punctuation mark is separated by one space, so a
word-level tokenizer sees exactly the units the ciphers permute.

Five templated domains. Quantities in the question are number *words* (enciphered like any other
word); every answer is a non-negative integer written in *digits* (never enciphered), so an
item's answer is preserved by construction in every language (docs/translate_r1.md):

  arithmetic   "tom has four apples . he gets three more . how many apples now ?"        -> "7"
  lookup       "red is seven , sun is two , gold is three . what is sun ?"               -> "2"
  comparison   "ann has five coins and bob has eight coins . what is the bigger number ?" -> "8"
  counting     "count the animals : cat red dog sun frog . how many ?"                   -> "3"
  sequence     "two four six . what comes next ?"                                          -> "8"

Why number words and a semantic count: each domain then needs the *meaning* of the words, so an
item in a language the model cannot read is not solvable from surface patterns. (With digits in
the text, lookup / counting / sequence items were solvable in any cipher by copying numbers and
matching repeated tokens; measured: the SFT policy scored the same on XLow as on High, and
translating could not help.) Reading the number words, the verbs (add or take away), "bigger" vs
"smaller" and which words are animals is what pretraining exposure to a cipher teaches.

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
NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
ADD_VERBS = ("gets", "buys", "finds")
SUB_VERBS = ("loses", "gives", "sells")
FUNCTION_WORDS = ("he", "she", "has", "more", "how", "many", "now", "and", "what", "is", "the",
                  "bigger", "smaller", "number", "count", "animals", "comes", "next")

BASE_WORDS: tuple[str, ...] = (NAMES_HE + NAMES_SHE + OBJECTS + ANIMALS + KEYS + NUMBER_WORDS
                               + ADD_VERBS + SUB_VERBS + FUNCTION_WORDS)
PUNCTUATION = (".", ",", "?", ":")
DOMAINS = ("arithmetic", "lookup", "comparison", "counting", "sequence")
_VALUE = {w: i for i, w in enumerate(NUMBER_WORDS)}

# Answers stay within [0, MIN_MAX_NUMBER]: arithmetic 9 + 9 = 18, sequence 7 + 2 * 3 + 3 = 16.
MIN_MAX_NUMBER = 18
_SEQ_TERMS = 3


def is_number(token: str) -> bool:
  return token.isascii() and token.isdigit()


def _pick(rng: np.random.Generator, options):
  return options[int(rng.integers(len(options)))]


def _pronoun(name: str) -> str:
  return "he" if name in NAMES_HE else "she"


def _gen_arithmetic(rng: np.random.Generator) -> tuple[str, str]:
  name = _pick(rng, NAMES_HE + NAMES_SHE)
  obj = _pick(rng, OBJECTS)
  a = int(rng.integers(1, 10))
  if rng.random() < 0.5:  # take away at most what is there: the count stays non-negative
    b = int(rng.integers(1, a + 1))
    clause, total = f"{_pronoun(name)} {_pick(rng, SUB_VERBS)} {NUMBER_WORDS[b]} .", a - b
  else:
    b = int(rng.integers(1, 10))
    clause, total = f"{_pronoun(name)} {_pick(rng, ADD_VERBS)} {NUMBER_WORDS[b]} more .", a + b
  text = f"{name} has {NUMBER_WORDS[a]} {obj} . {clause} how many {obj} now ?"
  return text, str(total)


def _gen_lookup(rng: np.random.Generator) -> tuple[str, str]:
  n_pairs = int(rng.integers(2, 4))
  keys = [KEYS[i] for i in rng.choice(len(KEYS), size=n_pairs, replace=False)]
  values = [int(v) for v in rng.integers(0, 10, size=n_pairs)]
  query = int(rng.integers(n_pairs))
  pairs = " , ".join(f"{k} is {NUMBER_WORDS[v]}" for k, v in zip(keys, values))
  return f"{pairs} . what is {keys[query]} ?", str(values[query])


def _gen_comparison(rng: np.random.Generator) -> tuple[str, str]:
  i, j = rng.choice(len(NAMES_HE + NAMES_SHE), size=2, replace=False)
  n1, n2 = (NAMES_HE + NAMES_SHE)[i], (NAMES_HE + NAMES_SHE)[j]
  obj = _pick(rng, OBJECTS)
  a, b = (int(v) for v in rng.choice(10, size=2, replace=False))
  which = _pick(rng, ("bigger", "smaller"))
  answer = max(a, b) if which == "bigger" else min(a, b)
  text = (f"{n1} has {NUMBER_WORDS[a]} {obj} and {n2} has {NUMBER_WORDS[b]} {obj} . "
          f"what is the {which} number ?")
  return text, str(answer)


def _gen_counting(rng: np.random.Generator) -> tuple[str, str]:
  # Animals among other nouns; the count is uniform-ish over 0..4 rather than mostly 2-3.
  n_words = int(rng.integers(3, 6))
  n_animals = int(rng.integers(0, n_words + 1))
  words = ([_pick(rng, ANIMALS) for _ in range(n_animals)]
           + [_pick(rng, KEYS) for _ in range(n_words - n_animals)])
  words = [words[k] for k in rng.permutation(n_words)]
  return f"count the animals : {' '.join(words)} . how many ?", str(n_animals)


def _gen_sequence(rng: np.random.Generator) -> tuple[str, str]:
  step = int(rng.integers(1, 4))
  start = int(rng.integers(0, 10 - (_SEQ_TERMS - 1) * step))
  terms = [start + k * step for k in range(_SEQ_TERMS)]
  text = f"{' '.join(NUMBER_WORDS[t] for t in terms)} . what comes next ?"
  return text, str(start + _SEQ_TERMS * step)


_GENERATORS: dict[str, Callable[[np.random.Generator], tuple[str, str]]] = {
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
  return _GENERATORS[domain](rng)


# ----------------------------------------------------------------------------- oracle solver


def _solve_arithmetic(toks: list[str]) -> str | None:
  # "<name> has <a> <obj> . <pron> <verb> <b> [more] . how many <obj> now ?"
  if len(toks) < 12 or toks[1] != "has" or toks[2] not in _VALUE or toks[4] != ".":
    return None
  verb, b = toks[6], toks[7]
  if b not in _VALUE:
    return None
  if verb in ADD_VERBS:
    return str(_VALUE[toks[2]] + _VALUE[b])
  if verb in SUB_VERBS:
    return str(_VALUE[toks[2]] - _VALUE[b])
  return None


def _solve_lookup(toks: list[str]) -> str | None:
  query = toks[-2]
  body = toks[:toks.index(".")]
  # body is "k is v , k is v , ..." : read every (key, "is", value) triple.
  for k in range(0, len(body) - 2, 4):
    key, is_, value = body[k:k + 3]
    if is_ == "is" and key == query and value in _VALUE:
      return str(_VALUE[value])
  return None


def solve_english(text_en: str) -> str | None:
  """Oracle solver of the five templates, from the English text alone.

  Returns the answer as a digit string, or None when the text matches no template (e.g. a
  corrupted back-translation), so a round-trip check fails instead of raising.
  """
  toks = text_en.split()
  if len(toks) < 4 or toks[-1] != "?":
    return None
  values = [_VALUE[t] for t in toks if t in _VALUE]
  if toks[-4:-1] == ["what", "comes", "next"]:
    if len(values) < 2:
      return None
    return str(values[-1] + (values[1] - values[0]))
  if toks[:3] == ["count", "the", "animals"] and ":" in toks and "." in toks:
    seq = toks[toks.index(":") + 1:toks.index(".")]
    return str(sum(t in ANIMALS for t in seq))
  if toks[-3:-1] == ["bigger", "number"] and values:
    return str(max(values))
  if toks[-3:-1] == ["smaller", "number"] and values:
    return str(min(values))
  if toks[-4:-2] == ["what", "is"] and "." in toks:
    return _solve_lookup(toks)
  if toks[-2:] == ["now", "?"]:
    return _solve_arithmetic(toks)
  return None
