"""The synthetic API universe of the Hephaestus reproduction (arXiv 2502.06589;
docs/agent_pretraining.md).

An API has a unique name word, a purpose (a verb-noun pair, unique per API), 1-3 typed parameters
and a return type. Every word is one token of the project's word tokenizer. Renderings:

  doc          doc : find city -> zuvo . args : ka int , mepo word . returns list .
  task         task : find city 3 red .                       (values in parameter order)
  call         call zuvo ( ka = 3 , mepo = red )
  trajectory   task : ... . call zuvo ( ... ) . obs list sa . answer sa .
  seed traj.   task : ... . doc : find city -> zuvo . args : ... . call zuvo ( ... ) . obs ... .
  code         code : x = zuvo ( ... ) ; y = lire ( ... ) ; return y .
  text         generic grammar sentences (the "general text" corpus)

The doc states the purpose before the name, so "purpose -> name" is learnt in the forward
direction (an autoregressive model trained on "name : purpose" does not learn the reverse,
arXiv 2309.12288). APIs are split into "seen" ones (docs, trajectories, code, demonstrations) and
"docs-only" ones (documentation only): call accuracy on the docs-only APIs measures
documentation-driven generalisation (docs/agent_pretraining.md).
"""
from __future__ import annotations

import dataclasses
import itertools
from typing import Sequence

import numpy as np

from rl_jax.tokenizers import WordTokenizer

PAD, EOS, BOS = "<pad>", "<eos>", "<bos>"
PUNCT = (":", ".", ",", "(", ")", "=", "->", ";")
KEYWORDS = ("doc", "args", "returns", "task", "call", "obs", "answer", "code", "return", "int",
            "word", "x", "y")
DIGITS = tuple(str(i) for i in range(10))
_CONS, _VOW = "bdfgklmnprstvz", "aeiou"


@dataclasses.dataclass(frozen=True)
class Api:
  """name: unique word; verb, noun: its purpose; params: ((name, type), ...) with type "int"
  (a digit) or "word" (a value word); returns: return-type word."""
  name: str
  verb: str
  noun: str
  params: tuple[tuple[str, str], ...]
  returns: str


@dataclasses.dataclass(frozen=True)
class Call:
  """One intended call: the API and its argument values (in parameter order)."""
  api: Api
  values: tuple[str, ...]


def pseudo_words(n: int, rng: np.random.Generator, syllables: int, taken: set[str]) -> list[str]:
  """n distinct consonant-vowel pseudo-words of `syllables` syllables, none in `taken`."""
  out = []
  while len(out) < n:
    w = "".join(_CONS[rng.integers(len(_CONS))] + _VOW[rng.integers(len(_VOW))]
                for _ in range(syllables))
    if w not in taken:
      taken.add(w)
      out.append(w)
  return out


class ApiUniverse:
  """`n_apis` APIs (the last `docs_only` of them appear only in documentation), the value and
  general-text vocabularies, and every rendering (module docstring). Deterministic in `seed`."""

  def __init__(self, n_apis: int = 300, docs_only: int = 60, seed: int = 0, n_verbs: int = 20,
               n_nouns: int = 30, n_param_names: int = 40, n_values: int = 20,
               n_text_words: int = 120):
    if not 0 < docs_only < n_apis:
      raise ValueError(f"config task.docs_only={docs_only} must be in (0, n_apis={n_apis})")
    if n_apis > n_verbs * n_nouns:
      raise ValueError(f"config task.n_apis={n_apis} exceeds the {n_verbs} x {n_nouns} distinct "
                       "purposes")
    rng = np.random.default_rng([seed, 8])
    taken = set(PUNCT + KEYWORDS + DIGITS)
    self.verbs = pseudo_words(n_verbs, rng, 2, taken)
    self.nouns = pseudo_words(n_nouns, rng, 2, taken)
    self.param_names = pseudo_words(n_param_names, rng, 1, taken)
    self.values = pseudo_words(n_values, rng, 2, taken)
    self.returns = pseudo_words(6, rng, 2, taken)
    names = pseudo_words(n_apis, rng, 2, taken)
    purposes = rng.permutation(n_verbs * n_nouns)[:n_apis]
    apis = []
    for name, purpose in zip(names, purposes):
      k = int(rng.integers(1, 4))
      pnames = rng.choice(n_param_names, k, replace=False)
      params = tuple((self.param_names[int(j)], "int" if rng.random() < 0.5 else "word")
                     for j in pnames)
      apis.append(Api(name, self.verbs[purpose // n_nouns], self.nouns[purpose % n_nouns],
                      params, self.returns[int(rng.integers(len(self.returns)))]))
    self.apis = tuple(apis)
    self.seen = self.apis[:n_apis - docs_only]
    self.docs_only = self.apis[n_apis - docs_only:]
    # General text: a small grammar over determiners, adjectives, nouns, verbs, prepositions.
    words = pseudo_words(n_text_words, rng, 3, taken)
    q = n_text_words // 4
    self.text_nouns, self.text_verbs = words[:q], words[q:2 * q]
    self.text_adjs, self.text_preps = words[2 * q:3 * q - 4], words[3 * q - 4:3 * q]
    self.text_dets = words[3 * q:3 * q + 4]
    self.text_words = words

  def vocabulary(self) -> list[str]:
    """Every word any rendering can produce (the tokenizer's pieces, specials excluded)."""
    return list(dict.fromkeys(
        PUNCT + KEYWORDS + DIGITS + tuple(self.verbs) + tuple(self.nouns)
        + tuple(self.param_names) + tuple(self.values) + tuple(self.returns)
        + tuple(a.name for a in self.apis) + tuple(self.text_words)))

  # --- draws -------------------------------------------------------------------------------
  def draw_call(self, apis: Sequence[Api], rng: np.random.Generator) -> Call:
    api = apis[int(rng.integers(len(apis)))]
    values = tuple(DIGITS[int(rng.integers(10))] if t == "int"
                   else self.values[int(rng.integers(len(self.values)))] for _, t in api.params)
    return Call(api, values)

  def observation(self, call: Call) -> str:
    """The simulator's result word: a deterministic function of the call."""
    h = sum((i + 1) * (ord(c) + 7 * j) for i, v in enumerate((call.api.name,) + call.values)
            for j, c in enumerate(v))
    return self.values[h % len(self.values)]

  # --- renderings --------------------------------------------------------------------------
  @staticmethod
  def doc(api: Api) -> str:
    args = " , ".join(f"{n} {t}" for n, t in api.params)
    return f"doc : {api.verb} {api.noun} -> {api.name} . args : {args} . returns {api.returns} ."

  @staticmethod
  def task_text(call: Call) -> str:
    return f"task : {call.api.verb} {call.api.noun} {' '.join(call.values)} ."

  @staticmethod
  def call_text(call: Call) -> str:
    args = " , ".join(f"{n} = {v}" for (n, _), v in zip(call.api.params, call.values))
    return f"{call.api.name} ( {args} )"

  def trajectory(self, call: Call, with_doc: bool = False) -> str:
    """task -> (the API's doc, recalled: seed trajectories) -> call -> observation -> answer."""
    obs = self.observation(call)
    doc = f" {self.doc(call.api)}" if with_doc else ""
    return (f"{self.task_text(call)}{doc} call {self.call_text(call)} . obs {call.api.returns} "
            f"{obs} . answer {obs} .")

  def demonstration(self, call: Call, with_doc: bool = True) -> tuple[str, str]:
    """(prompt, completion) of a call demonstration: the task, then (with_doc) the recalled doc
    and the call (the seed trajectories' format without observation)."""
    doc = f"{self.doc(call.api)} " if with_doc else ""
    return self.task_text(call), f"{doc}call {self.call_text(call)} ."

  def code(self, rng: np.random.Generator, apis: Sequence[Api]) -> str:
    a, b = self.draw_call(apis, rng), self.draw_call(apis, rng)
    return f"code : x = {self.call_text(a)} ; y = {self.call_text(b)} ; return y ."

  def sentence(self, rng: np.random.Generator) -> str:
    pick = lambda ws: ws[int(rng.integers(len(ws)))]
    np_ = lambda: " ".join([pick(self.text_dets)] + ([pick(self.text_adjs)] if rng.random() < 0.5
                                                     else []) + [pick(self.text_nouns)])
    pp = f" {pick(self.text_preps)} {np_()}" if rng.random() < 0.4 else ""
    return f"{np_()} {pick(self.text_verbs)} {np_()}{pp} ."

  def text(self, rng: np.random.Generator) -> str:
    return " ".join(self.sentence(rng) for _ in range(int(rng.integers(2, 4))))


def parse_call(text: str) -> tuple[str, tuple[tuple[str, str], ...]] | None:
  """The last call of a completion, "... call NAME ( a = 1 , b = x ) ...", as (name, ((param,
  value), ...)); None when there is no well-formed call."""
  words = text.split()
  starts = [i for i, w in enumerate(words) if w == "call"]
  if not starts:
    return None
  rest = words[starts[-1] + 1:]
  if len(rest) < 3 or rest[1] != "(" or ")" not in rest:
    return None
  name, inner = rest[0], rest[2:rest.index(")")]
  args = []
  for chunk in (list(g) for k, g in itertools.groupby(inner, lambda w: w == ",") if not k):
    if len(chunk) != 3 or chunk[1] != "=":
      return None
    args.append((chunk[0], chunk[2]))
  return name, tuple(args)


def call_correct(call: Call, completion: str) -> tuple[bool, bool, bool]:
  """(exact, schema, name) match of a completion's last call against the intended call: exact
  means the same name and the same (parameter, value) pairs in the documented order; schema the
  same name and parameter names in order (what the documentation alone teaches, whatever the
  values); name the same API name."""
  parsed = parse_call(completion)
  if parsed is None:
    return False, False, False
  name, args = parsed
  want = tuple((n, v) for (n, _), v in zip(call.api.params, call.values))
  same_name = name == call.api.name
  schema = same_name and tuple(a for a, _ in args) == tuple(n for n, _ in call.api.params)
  return same_name and args == want, schema, same_name


def word_tokenizer(words: Sequence[str]) -> WordTokenizer:
  """The corpus's exact word tokenizer: ids 0..2 are <pad>, <eos>, <bos>, then `words`."""
  return WordTokenizer(words, specials=(PAD, EOS, BOS), name="agent corpus")
