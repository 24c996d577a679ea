"""The synthetic web corpus of the taxonomy-curation study (seed S2; arXiv 2606.07778,
docs/curation.md): documents generated from latent attributes, a fluency-weighted quality
score that sets three tiers, and high-value documents planted in the low tier.

Every document is `doc_len` word tokens built from sentences whose kinds and counts follow its
latent attributes:

  topic (8)                 prose words come from the topic's vocabulary;
  reasoning depth (1..5)    arithmetic chains "3 + 4 = 7 , + 2 = 9 ." (mod 10, running total
                            written out): depth d gives CHAINS_PER_DEPTH[d] chains of d steps;
  code-ness (0..2)          that many bracket snippets "code ( [ ] ) end";
  timeliness (4)            the facts it states: evergreen "elem3 is val5 .", or dated
                            "city2 mayor pers7 y2025 ." of the current epoch (time-sensitive,
                            slow-decay) or of an old epoch (stale: outdated values);
  cultural specificity (3)  universal / regional / culture-specific: that share of prose words
                            is drawn from one region's vocabulary;
  fluency in [0, 1]         surface quality: prose words are replaced by boilerplate junk
                            ("cookie", "click", ...) and junk is inserted between sentences at a
                            rate that grows with 1 - fluency. Chains, code and facts stay intact:
                            the content of a low-fluency page can still be valuable.

Tiers (SPEC step 5): the composite quality score q = w_f * fluency + (1 - w_f) * u, u ~ U(0, 1)
(the other signals of a production quality model, [I]), cut at its 1/3 and 2/3 quantiles; since
q mostly weights fluency, deep-reasoning but disfluent pages fall into the low tier. A
`planted_frac` of documents are planted there on purpose: reasoning depth 5, two code snippets,
evergreen facts and fluency ~ U(0, planted_max_fluency).

The taxonomy labels of a document (what an annotator should recover, `LABEL_DIMS`) are its
latent attributes, with fluency binned into the "extraction artifacts" dimension (0 = clean).
"""
from __future__ import annotations

import dataclasses
from typing import Iterable, Sequence

import numpy as np

from rl_jax.tokenizers import WordTokenizer

TOPICS = ("astro", "bio", "cook", "fin", "hist", "music", "sport", "travel")
REGIONS = ("north", "south", "east", "west")
TIMELINESS = ("evergreen", "slow_decay", "time_sensitive", "stale")
CULTURAL = ("universal", "regional", "culture_specific")
# The taxonomy dimensions and their number of classes (class k of reasoning_depth is depth k+1).
LABEL_DIMS = {"topic": len(TOPICS), "reasoning_depth": 5, "code": 3,
              "timeliness": len(TIMELINESS), "cultural": len(CULTURAL), "artifacts": 4}
CHAINS_PER_DEPTH = {1: 0, 2: 1, 3: 1, 4: 2, 5: 2}
REGION_SHARE = {0: 0.0, 1: 0.25, 2: 0.6}  # share of prose words from the region's vocabulary
FUNCTION = ("the", "of", "is", "a", "and", "in", "to", "with", "for", "on", "that", "this")
ADJECTIVES = ("good", "large", "small", "old", "new", "fast", "slow", "common", "rare", "early",
              "late", "simple")
JUNK = ("click", "cookie", "menu", "login", "share", "subscribe", "nav", "ad", "@@", "###")
OPEN, CLOSE = ("(", "[", "{"), (")", "]", "}")
DIGITS = tuple(str(i) for i in range(10))
WORDS_PER_TOPIC, WORDS_PER_REGION = 12, 10
N_ELEMENTS, N_VALUES = 24, 16        # evergreen facts: elem k is val f(k)
N_CITIES, N_PERSONS, N_EPOCHS = 16, 24, 8   # dated facts: city k mayor pers g(k, epoch) y(epoch)
FIRST_YEAR = 2018
SPECIALS = ("<pad>", "<eos>", "<bos>")


def topic_words(t: int) -> list[str]:
  return [f"{TOPICS[t]}{i}" for i in range(WORDS_PER_TOPIC)]


def region_words(r: int) -> list[str]:
  return [f"{REGIONS[r]}{i}" for i in range(WORDS_PER_REGION)]


def vocabulary() -> list[str]:
  """Every word a document or probe can hold, specials first (ids 0, 1, 2 = pad, eos, bos)."""
  words = list(SPECIALS) + list(DIGITS) + ["+", "=", ",", ".", "code", "end", "is", "mayor"]
  words += list(OPEN + CLOSE) + list(FUNCTION) + list(ADJECTIVES) + list(JUNK)
  for t in range(len(TOPICS)):
    words += topic_words(t)
  for r in range(len(REGIONS)):
    words += region_words(r)
  words += [f"elem{k}" for k in range(N_ELEMENTS)] + [f"val{v}" for v in range(N_VALUES)]
  words += [f"city{k}" for k in range(N_CITIES)] + [f"pers{p}" for p in range(N_PERSONS)]
  words += [f"y{FIRST_YEAR + e}" for e in range(N_EPOCHS)]
  return list(dict.fromkeys(words))


@dataclasses.dataclass(frozen=True)
class WorldFacts:
  """The world's facts: evergreen value of each element, and the mayor of each city per epoch
  (the last epoch is the current one)."""
  element_value: np.ndarray   # [N_ELEMENTS]
  mayor: np.ndarray           # [N_EPOCHS, N_CITIES]

  @classmethod
  def create(cls, seed: int) -> "WorldFacts":
    rng = np.random.default_rng([seed, 17])
    mayor = np.stack([rng.permutation(N_PERSONS)[:N_CITIES] for _ in range(N_EPOCHS)])
    return cls(rng.integers(0, N_VALUES, N_ELEMENTS), mayor)

  @property
  def current_epoch(self) -> int:
    return N_EPOCHS - 1


ALL_DIGITS = tuple(range(10))


def chain_sentence(depth: int, rng: np.random.Generator,
                   addends: Sequence[int] = ALL_DIGITS) -> list[str]:
  """`depth` additions mod 10 with the running total written out: a + b = s , + c = s' .
  The first operand a is any digit; every added digit (b, c, ...) is one of `addends`."""
  a = int(rng.integers(0, 10))
  b = int(addends[int(rng.integers(0, len(addends)))])
  total = (a + b) % 10
  words = [str(a), "+", str(b), "=", str(total)]
  for _ in range(depth - 1):
    c = int(addends[int(rng.integers(0, len(addends)))])
    total = (total + c) % 10
    words += [",", "+", str(c), "=", str(total)]
  return words + ["."]


def brackets(rng: np.random.Generator, pairs: int, max_depth: int = 4) -> list[str]:
  """A random balanced bracket string of `pairs` pairs, nesting at most `max_depth`."""
  out, stack, opened = [], [], 0
  while opened < pairs or stack:
    can_open = opened < pairs and len(stack) < max_depth
    if can_open and (not stack or rng.random() < 0.55):
      k = int(rng.integers(0, 3))
      out.append(OPEN[k])
      stack.append(k)
      opened += 1
    else:
      out.append(CLOSE[stack.pop()])
  return out


def code_sentence(rng: np.random.Generator) -> list[str]:
  return ["code"] + brackets(rng, int(rng.integers(3, 6))) + ["end"]


def evergreen_fact(facts: WorldFacts, rng: np.random.Generator) -> list[str]:
  k = int(rng.integers(0, N_ELEMENTS))
  return [f"elem{k}", "is", f"val{facts.element_value[k]}", "."]


def dated_fact(facts: WorldFacts, epoch: int, rng: np.random.Generator) -> list[str]:
  k = int(rng.integers(0, N_CITIES))
  return [f"city{k}", "mayor", f"pers{facts.mayor[epoch, k]}", f"y{FIRST_YEAR + epoch}", "."]


def fact_sentences(facts: WorldFacts, timeliness: int, rng: np.random.Generator
                   ) -> list[list[str]]:
  """Two facts per document; stale documents state the mayors of an outdated epoch."""
  current = facts.current_epoch
  if timeliness == 0:
    return [evergreen_fact(facts, rng), evergreen_fact(facts, rng)]
  if timeliness == 1:
    return [evergreen_fact(facts, rng), dated_fact(facts, current, rng)]
  if timeliness == 2:
    return [dated_fact(facts, current, rng), dated_fact(facts, current, rng)]
  stale_epoch = int(rng.integers(0, current - 2))
  return [dated_fact(facts, stale_epoch, rng), dated_fact(facts, stale_epoch, rng)]


def prose_sentence(topic: int, region: int, region_share: float, rng: np.random.Generator
                   ) -> list[str]:
  """'the <noun> of the <noun> is <adj> .' style, nouns from the topic (or the region)."""
  def noun():
    pool = (region_words(region) if rng.random() < region_share else topic_words(topic))
    return pool[int(rng.integers(0, len(pool)))]
  shape = int(rng.integers(0, 3))
  adj = ADJECTIVES[int(rng.integers(0, len(ADJECTIVES)))]
  if shape == 0:
    return ["the", noun(), "of", "the", noun(), "is", adj, "."]
  if shape == 1:
    return ["a", adj, noun(), "is", "in", "the", noun(), "."]
  return ["this", noun(), "and", "that", noun(), "is", "for", "a", noun(), "."]


def degrade(words: list[str], fluency: float, rng: np.random.Generator) -> list[str]:
  """Prose at surface fluency f: each word is replaced by junk with probability 0.6 (1 - f)."""
  p = 0.6 * (1.0 - fluency)
  return [JUNK[int(rng.integers(0, len(JUNK)))] if rng.random() < p else w for w in words]


@dataclasses.dataclass(frozen=True)
class CorpusCfg:
  """The generator's knobs (config `task.corpus`, all [I], SPEC §2(c)).

  num_docs: documents in the corpus. doc_len: word tokens per document (every document is cut
    to exactly this length, so equal steps are equal tokens).
  depth_probs / code_probs / timeliness_probs / cultural_probs: the attribute marginals of the
    ordinary (not planted) documents; topics and regions are uniform; fluency ~ Beta(2, 2).
  fluency_weight: w_f of the quality score q = w_f fluency + (1 - w_f) u.
  planted_frac: share of documents planted as high-value pages in the low tier (depth 5, two
    code snippets, evergreen facts, fluency ~ U(0, planted_max_fluency)).
  chain_addends: the digits added at each step of an arithmetic chain (the first operand is
    any digit). All ten: a mod-10 addition table that the 2-layer d = 64 proxy does not learn
    even on arithmetic alone at 5x the study's budget; (1, 2): one it learns in about 250
    steps of arithmetic alone (docs/curation.md).
  """
  num_docs: int = 12000
  doc_len: int = 96
  depth_probs: tuple[float, ...] = (0.3, 0.25, 0.2, 0.15, 0.1)
  code_probs: tuple[float, ...] = (0.6, 0.25, 0.15)
  timeliness_probs: tuple[float, ...] = (0.35, 0.2, 0.25, 0.2)
  cultural_probs: tuple[float, ...] = (0.5, 0.3, 0.2)
  fluency_weight: float = 0.85
  planted_frac: float = 0.05
  planted_max_fluency: float = 0.25
  chain_addends: tuple[int, ...] = ALL_DIGITS

  def __post_init__(self):
    if not self.chain_addends or any(not 0 <= int(d) <= 9 for d in self.chain_addends):
      raise ValueError(f"config task.corpus.chain_addends: expected one or more digits 0-9, got "
                       f"{self.chain_addends}")
    for name, n in (("depth_probs", 5), ("code_probs", 3), ("timeliness_probs", 4),
                    ("cultural_probs", 3)):
      p = np.asarray(getattr(self, name), np.float64)
      if p.shape != (n,) or np.any(p < 0) or abs(p.sum() - 1) > 1e-6:
        raise ValueError(f"config task.corpus.{name}: expected {n} non-negative probabilities "
                         f"summing to 1, got {getattr(self, name)}")
    if not 0 <= self.planted_frac < 1 / 3:
      raise ValueError(f"config task.corpus.planted_frac must be in [0, 1/3) (planted pages "
                       f"must fit in the low tier), got {self.planted_frac}")
    if self.doc_len < 96:
      raise ValueError(f"config task.corpus.doc_len must be >= 96 (the longest content of a "
                       f"document: two 5-step chains, two code snippets, two facts), got "
                       f"{self.doc_len}")
    if self.num_docs < 30:
      raise ValueError(f"config task.corpus.num_docs must be >= 30, got {self.num_docs}")


@dataclasses.dataclass(frozen=True)
class Corpus:
  """The generated corpus: texts, latent labels per dimension (int [N] each, `LABEL_DIMS`),
  fluency [N], quality score [N], tier [N] (0 = top, 1 = mid, 2 = low), planted [N] bool."""
  texts: list[str]
  labels: dict[str, np.ndarray]
  fluency: np.ndarray
  quality: np.ndarray
  tier: np.ndarray
  planted: np.ndarray
  facts: WorldFacts

  def __len__(self) -> int:
    return len(self.texts)


def artifacts_of(fluency: np.ndarray) -> np.ndarray:
  """The "extraction artifacts" label: 0 for fluency >= 0.75, ..., 3 for fluency < 0.25."""
  return (3 - np.clip(np.floor(np.asarray(fluency) * 4), 0, 3)).astype(np.int64)


def document(attrs: dict[str, int], fluency: float, facts: WorldFacts, doc_len: int,
             rng: np.random.Generator, addends: Sequence[int] = ALL_DIGITS) -> str:
  """One document's text from its attributes (module docstring)."""
  depth = attrs["reasoning_depth"] + 1
  content = [chain_sentence(depth, rng, addends) for _ in range(CHAINS_PER_DEPTH[depth])]
  content += [code_sentence(rng) for _ in range(attrs["code"])]
  content += fact_sentences(facts, attrs["timeliness"], rng)
  region, share = attrs["region"], REGION_SHARE[attrs["cultural"]]
  length = sum(len(s) for s in content)
  prose = []
  while length < doc_len:
    s = degrade(prose_sentence(attrs["topic"], region, share, rng), fluency, rng)
    if rng.random() < 1.0 - fluency:  # boilerplate between sentences
      s = [JUNK[int(rng.integers(0, len(JUNK)))]] + s
    prose.append(s)
    length += len(s)
  # Content and all but one prose sentence in random order; a prose sentence last, so cutting
  # to doc_len never cuts a chain, a snippet or a fact.
  body = content + prose[:-1]
  order = rng.permutation(len(body))
  words = [w for i in order for w in body[i]] + prose[-1]
  return " ".join(words[:doc_len])


def generate(cfg: CorpusCfg, seed: int) -> Corpus:
  """The corpus of `cfg` from numpy seed [seed, 0] (same seed, same corpus)."""
  rng = np.random.default_rng([seed, 0])
  facts = WorldFacts.create(seed)
  n = cfg.num_docs
  n_planted = int(round(cfg.planted_frac * n))
  planted = np.zeros(n, bool)
  planted[rng.permutation(n)[:n_planted]] = True
  labels = {
      "topic": rng.integers(0, len(TOPICS), n),
      "reasoning_depth": rng.choice(5, n, p=cfg.depth_probs),
      "code": rng.choice(3, n, p=cfg.code_probs),
      "timeliness": rng.choice(4, n, p=cfg.timeliness_probs),
      "cultural": rng.choice(3, n, p=cfg.cultural_probs),
  }
  region = rng.integers(0, len(REGIONS), n)
  fluency = rng.beta(2.0, 2.0, n)
  labels["reasoning_depth"][planted] = 4
  labels["code"][planted] = 2
  labels["timeliness"][planted] = 0
  fluency[planted] = rng.uniform(0.0, cfg.planted_max_fluency, planted.sum())
  labels["artifacts"] = artifacts_of(fluency)
  quality = cfg.fluency_weight * fluency + (1 - cfg.fluency_weight) * rng.random(n)
  lo, hi = np.quantile(quality, [1 / 3, 2 / 3])
  tier = np.where(quality >= hi, 0, np.where(quality >= lo, 1, 2))
  texts = [document({**{k: int(v[i]) for k, v in labels.items()}, "region": int(region[i])},
                    float(fluency[i]), facts, cfg.doc_len, rng, tuple(cfg.chain_addends))
           for i in range(n)]
  return Corpus(texts, {k: np.asarray(v, np.int64) for k, v in labels.items()}, fluency,
                quality, tier, planted, facts)


def tier_index(name: str) -> int:
  names = ("top", "mid", "low")
  if name not in names:
    raise ValueError(f"config task.tier: expected one of {names}, got {name!r}")
  return names.index(name)


def word_tokenizer() -> WordTokenizer:
  """The curation vocabulary's word tokenizer (ids 0, 1, 2 = pad, eos, bos, as `vocabulary()`)."""
  return WordTokenizer(vocabulary()[len(SPECIALS):], specials=SPECIALS,
                       name="curation vocabulary")


def encode_docs(tok: WordTokenizer, texts: Sequence[str], doc_len: int) -> np.ndarray:
  """int32 [N, doc_len] token ids (every document has exactly doc_len words)."""
  out = np.asarray([tok.encode(t) for t in texts], np.int32)
  if out.ndim != 2 or out.shape[1] != doc_len:
    raise ValueError(f"encode_docs: documents must have exactly {doc_len} words")
  return out
