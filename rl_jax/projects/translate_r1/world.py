"""Cipher-language world for Translate-R1 (docs/translate_r1.md):
seeded word-level bijective ciphers.

The base language "en" (see `cipher_domains`) is enciphered word by word into pseudo-languages:

  split      tier                      names            pretraining share (per language)
  train      base                      en               40%
  train      high   x 6                hi1..hi6         6% each
  train      low    x 8                lo1..lo8         1% each
  train      xlow   x 8                xl1..xl8         0.1% each
  unseen     unseen x 2  (synthetic)   syn1, syn2       0
  heldout    high/low/xlow x 3 each    ho1..ho9         0 (or their tier's share if
                                                          `heldout_exposure`)

Shares are relative weights; the corpus samples a language with probability share / sum(shares),
so the listed ratios (e.g. base : High = 40 : 6) hold exactly while the defaults, which sum to
84.8%, are renormalised to 100%.

Each cipher maps every base word to a distinct pseudo-word built from its own small syllable
inventory (a random subset of consonants and vowels, so languages also *look* different). No
pseudo-word is used by two languages or equals a base word, so a model cannot read one cipher
through another. Numbers and punctuation pass through unchanged: every answer is a number, so
answers are preserved by construction. Word order is kept (a word-level bijection).

`decode` is the oracle translator. `AnswerPreservationCheck` implements the two data-pipeline checks
of docs/translate_r1.md: protected number spans unchanged, and a round trip (back-translate, then
solve with a `Teacher`-like solver) that must reproduce the answer.
"""
from __future__ import annotations

import dataclasses
import re
import types
from typing import Callable, Mapping, Sequence

import numpy as np

from rl_jax.projects.translate_r1 import domains as dom

BASE_LANG = "en"
TIERS = ("base", "high", "low", "xlow", "unseen")
SPLITS = ("train", "unseen", "heldout")
ANSWER_OPEN = "<answer>"
ANSWER_CLOSE = "</answer>"

_CONSONANTS = "bcdfghjklmnprstvwz"
_VOWELS = "aeiouy"
_MAX_WORD_TRIES = 100_000


@dataclasses.dataclass(frozen=True)
class Language:
  """A cipher language. `mapping`: base word -> cipher word; `inverse`: cipher word -> base word."""
  name: str
  tier: str
  split: str
  mapping: Mapping[str, str]
  inverse: Mapping[str, str]


@dataclasses.dataclass(frozen=True)
class Item:
  """One task instance: `text` is `text_en` enciphered into `lang`; `answer` is a digit string."""
  text_en: str
  text: str
  lang: str
  tier: str
  domain: str
  answer: str
  split: str = "train"


@dataclasses.dataclass(frozen=True)
class WorldCfg:
  """Static description of the world. Shares are per-language relative pretraining weights."""
  n_high: int = 6
  n_low: int = 8
  n_xlow: int = 8
  n_synthetic: int = 2
  n_heldout: int = 9
  max_number: int = 20
  share_base: float = 0.40
  share_high: float = 0.06
  share_low: float = 0.01
  share_xlow: float = 0.001
  heldout_exposure: bool = False  # True: held-out ciphers get their tier's pretraining share.
  corpus_with_answers: bool = True  # pretraining docs end with "<answer> a </answer>".

  def __post_init__(self):
    for f in ("n_high", "n_low", "n_xlow", "n_synthetic", "n_heldout"):
      if getattr(self, f) < 0:
        raise ValueError(f"WorldCfg.{f} must be >= 0, got {getattr(self, f)}")
    for f in ("share_base", "share_high", "share_low", "share_xlow"):
      if getattr(self, f) < 0:
        raise ValueError(f"WorldCfg.{f} must be >= 0, got {getattr(self, f)}")
    if self.max_number < dom.MIN_MAX_NUMBER:
      raise ValueError(f"WorldCfg.max_number must be >= {dom.MIN_MAX_NUMBER}, "
                       f"got {self.max_number}")

  def tier_share(self, tier: str) -> float:
    return {"base": self.share_base, "high": self.share_high, "low": self.share_low,
            "xlow": self.share_xlow, "unseen": 0.0}[tier]


def format_answer(answer: str) -> str:
  """The answer format of completions and pretraining docs: "<answer> 42 </answer>"."""
  return f"{ANSWER_OPEN} {answer} {ANSWER_CLOSE}"


def extract_answer(text: str) -> str | None:
  """Content of the LAST "<answer> ... </answer>" in `text`, stripped; None if there is none."""
  end = text.rfind(ANSWER_CLOSE)
  if end < 0:
    return None
  start = text.rfind(ANSWER_OPEN, 0, end)
  if start < 0:
    return None
  return text[start + len(ANSWER_OPEN):end].strip()


def _as_rng(rng: np.random.Generator | int) -> np.random.Generator:
  return rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)


def _cipher_words(rng: np.random.Generator, n: int, taken: set[str]) -> list[str]:
  """`n` fresh pseudo-words from a language-specific syllable inventory (CV or CVC syllables)."""
  cons = "".join(sorted(rng.choice(list(_CONSONANTS), size=8, replace=False)))
  vows = "".join(sorted(rng.choice(list(_VOWELS), size=3, replace=False)))
  codas = "".join(sorted(rng.choice(list(cons), size=2, replace=False)))
  words: list[str] = []
  for _ in range(_MAX_WORD_TRIES):
    if len(words) == n:
      return words
    syllables = []
    for _ in range(int(rng.integers(2, 4))):
      coda = codas[int(rng.integers(len(codas)))] if rng.random() < 0.25 else ""
      syllables.append(cons[int(rng.integers(len(cons)))] + vows[int(rng.integers(len(vows)))]
                       + coda)
    word = "".join(syllables)
    if word not in taken:
      taken.add(word)
      words.append(word)
  raise ValueError(f"could not draw {n} distinct cipher words in {_MAX_WORD_TRIES} tries")


class CipherWorld:
  """Seeded, deterministic world of cipher languages and templated items (docs/translate_r1.md)."""

  def __init__(self, seed: int = 0, cfg: WorldCfg = WorldCfg()):
    self.seed = seed
    self.cfg = cfg
    rng = np.random.default_rng(seed)
    identity = types.MappingProxyType({w: w for w in dom.BASE_WORDS})
    self.languages: dict[str, Language] = {
        BASE_LANG: Language(BASE_LANG, "base", "train", identity, identity)}
    spec = ([(f"hi{i + 1}", "high", "train") for i in range(cfg.n_high)]
            + [(f"lo{i + 1}", "low", "train") for i in range(cfg.n_low)]
            + [(f"xl{i + 1}", "xlow", "train") for i in range(cfg.n_xlow)]
            + [(f"syn{i + 1}", "unseen", "unseen") for i in range(cfg.n_synthetic)]
            # Held-out languages are spread over the three trained tiers.
            + [(f"ho{i + 1}", ("high", "low", "xlow")[i % 3], "heldout")
               for i in range(cfg.n_heldout)])
    taken = set(dom.BASE_WORDS)
    for name, tier, split in spec:
      words = _cipher_words(rng, len(dom.BASE_WORDS), taken)
      mapping = dict(zip(dom.BASE_WORDS, words))
      self.languages[name] = Language(name, tier, split, types.MappingProxyType(mapping),
                                      types.MappingProxyType({c: b for b, c in mapping.items()}))

  # ------------------------------------------------------------------------------ languages

  def language(self, name: str) -> Language:
    if name not in self.languages:
      raise ValueError(f"unknown language {name!r}; known: {sorted(self.languages)}")
    return self.languages[name]

  def names(self, *, split: str | None = None, tier: str | None = None) -> list[str]:
    """Language names (in construction order) filtered by split and/or tier."""
    if split is not None and split not in SPLITS:
      raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if tier is not None and tier not in TIERS:
      raise ValueError(f"tier must be one of {TIERS}, got {tier!r}")
    return [n for n, l in self.languages.items()
            if (split is None or l.split == split) and (tier is None or l.tier == tier)]

  def _map(self, text: str, table: Mapping[str, str], lang: str, what: str) -> str:
    out = []
    for pos, tok in enumerate(text.split()):
      if tok in table:
        out.append(table[tok])
      elif dom.is_number(tok) or tok in dom.PUNCTUATION:
        out.append(tok)
      else:
        raise ValueError(f"{what}: token {tok!r} at word {pos} is not a word of language "
                         f"{lang!r} (nor a number or one of {dom.PUNCTUATION})")
    return " ".join(out)

  def encode(self, text_en: str, lang: str) -> str:
    """English -> `lang`, word by word; numbers and punctuation unchanged."""
    return self._map(text_en, self.language(lang).mapping, BASE_LANG, f"encode(to {lang!r})")

  def decode(self, text: str, lang: str) -> str:
    """`lang` -> English: the oracle translator (inverse cipher lookup)."""
    return self._map(text, self.language(lang).inverse, lang, f"decode(from {lang!r})")

  # ---------------------------------------------------------------------------------- items

  def make_item(self, text_en: str, answer: str, domain: str, lang: str) -> Item:
    language = self.language(lang)
    return Item(text_en=text_en, text=self.encode(text_en, lang), lang=lang, tier=language.tier,
                domain=domain, answer=answer, split=language.split)

  def sample_items(self, n: int, rng: np.random.Generator | int, *,
                   domains: Sequence[str] | None = None, langs: Sequence[str] | None = None,
                   stratify: bool = True) -> list[Item]:
    """`n` items over `domains` (default all five) and `langs` (default the split "train").

    stratify=True cycles through every (tier, domain) cell of the requested languages in a fresh
    random order per cycle, so any n cells-long block is evenly stratified (docs/translate_r1.md);
    the language is then uniform within the tier. stratify=False draws language and domain
    uniformly and independently.
    """
    rng = _as_rng(rng)
    domains = list(dom.DOMAINS if domains is None else domains)
    langs = list(self.names(split="train") if langs is None else langs)
    for d in domains:
      if d not in dom.DOMAINS:
        raise ValueError(f"unknown domain {d!r}; expected one of {list(dom.DOMAINS)}")
    if not domains or not langs:
      raise ValueError(f"sample_items needs at least one domain and one language, got "
                       f"domains={domains}, langs={langs}")
    by_tier: dict[str, list[str]] = {}
    for name in langs:
      by_tier.setdefault(self.language(name).tier, []).append(name)
    cells = [(t, d) for t in by_tier for d in domains]
    order: list[int] = []
    while stratify and len(order) < n:
      order.extend(int(i) for i in rng.permutation(len(cells)))
    items = []
    for i in range(n):
      if stratify:
        tier, domain = cells[order[i]]
        lang = by_tier[tier][int(rng.integers(len(by_tier[tier])))]
      else:
        lang = langs[int(rng.integers(len(langs)))]
        domain = domains[int(rng.integers(len(domains)))]
      text_en, answer = dom.generate(domain, rng, self.cfg.max_number)
      items.append(self.make_item(text_en, answer, domain, lang))
    return items

  # --------------------------------------------------------------------------------- corpus

  def corpus_shares(self) -> dict[str, float]:
    """Probability of each language in `pretrain_corpus` (normalised shares; zeros included)."""
    raw = {}
    for name, lang in self.languages.items():
      exposed = lang.split == "train" or (lang.split == "heldout" and self.cfg.heldout_exposure)
      raw[name] = self.cfg.tier_share(lang.tier) if exposed else 0.0
    total = sum(raw.values())
    if total <= 0:
      raise ValueError("WorldCfg shares are all zero: the pretraining corpus would be empty")
    return {name: w / total for name, w in raw.items()}

  def pretrain_corpus(self, n_docs: int, rng: np.random.Generator | int) -> list[str]:
    """`n_docs` documents, each one item in a language drawn by `corpus_shares`."""
    rng = _as_rng(rng)
    shares = self.corpus_shares()
    names = list(shares)
    lang_idx = rng.choice(len(names), size=n_docs, p=np.asarray([shares[n] for n in names]))
    docs = []
    for i in lang_idx:
      domain = dom.DOMAINS[int(rng.integers(len(dom.DOMAINS)))]
      text_en, answer = dom.generate(domain, rng, self.cfg.max_number)
      doc = self.encode(text_en, names[int(i)])
      docs.append(f"{doc} {format_answer(answer)}" if self.cfg.corpus_with_answers else doc)
    return docs

  def vocabulary(self) -> list[str]:
    """Every token any language can produce: punctuation, numbers 0..max_number, base words,
    then each cipher's words in language order. Tool and answer tags are not included: they are
    special tokens (see `ANSWER_OPEN`/`ANSWER_CLOSE` and `rl_jax.projects.translate_r1.tool`)."""
    vocab = list(dom.PUNCTUATION) + [str(i) for i in range(self.cfg.max_number + 1)]
    for lang in self.languages.values():
      vocab.extend(lang.mapping[w] for w in dom.BASE_WORDS)
    return vocab

  def preservation_check(self) -> "AnswerPreservationCheck":
    """The check with this world's oracle back-translation and the oracle English solver."""
    return AnswerPreservationCheck(back_translate=self.decode, solver=dom.solve_english)


# ---------------------------------------------------------------------- answer preservation

NUMBER_SPAN = r"(?<![\w])\d+(?![\w])"


@dataclasses.dataclass(frozen=True)
class AnswerPreservationCheck:
  """Does a translation keep an item's answer? (docs/translate_r1.md.)

  Two checks, both must pass:
    1. span-mask equality: the ordered list of protected spans (`span_pattern`, default whole
       numbers) of the translation equals that of the original;
    2. round trip (only if both callables are given): solver(back_translate(translated, lang))
       == answer. Any exception of the back-translator counts as a failure (a translation the
       oracle cannot read has lost the item).
  """
  back_translate: Callable[[str, str], str] | None = None
  solver: Callable[[str], str | None] | None = None
  span_pattern: str = NUMBER_SPAN

  def spans_equal(self, orig: str, translated: str) -> bool:
    return re.findall(self.span_pattern, orig) == re.findall(self.span_pattern, translated)

  def round_trip(self, translated: str, lang: str, answer: str) -> bool:
    if self.back_translate is None or self.solver is None:
      return True
    try:
      back = self.back_translate(translated, lang)
    except ValueError:
      return False
    return self.solver(back) == answer

  def __call__(self, orig: str, translated: str, answer: str, lang: str) -> bool:
    return self.spans_equal(orig, translated) and self.round_trip(translated, lang, answer)


def filter_preserved(items: Sequence[Item], check: AnswerPreservationCheck
                     ) -> tuple[list[Item], float]:
  """Keeps items whose translation passes `check`; returns (kept, fidelity = kept / total)."""
  kept = [it for it in items if check(it.text_en, it.text, it.answer, it.lang)]
  return kept, (len(kept) / len(items) if items else 1.0)
