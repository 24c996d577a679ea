"""The synthetic shop world of the Shopping MMLU reproduction (arXiv 2410.20745; docs/eval.md).

A seeded world of products, users and two cipher languages, and about twenty mini-tasks over
Shopping MMLU's five task types and four skills, each item carrying the truth in the form the
benchmark's metric reads (`rl_jax.eval.suites`):

  products   category, brand, colour, material, price for a number of units; the title is
             "<brand> <colour> <material> <category>". Colours and categories have synonyms
             (crimson = red, mobile = phone). Compatibility edges join accessory categories to
             devices (phone - case, phone - charger, lamp - bulb, camera - lens, printer - ink);
             two products are compatible iff their categories are joined and their brands agree.
  users      a preferred (category, colour); a session views products of the preferred
             category, most of them in the preferred colour; the next purchase matches both.
  languages  two cipher languages: every alphabetic word maps to a pseudo-word (numbers and
             punctuation unchanged), so a task "in" a language is the English item, ciphered.

Every item is an `Item(task, skill, task_type, metric, prompt, completion, truth)`; the
completion is the SFT target (the answer the metric scores as perfect).
"""
from __future__ import annotations

import dataclasses
import itertools
import re
from typing import Any, Callable

import numpy as np

COLORS = {"red": ("crimson", "scarlet"), "blue": ("navy", "azure"), "green": ("olive", "jade"),
          "black": ("ebony", "jet"), "white": ("ivory", "snow"), "pink": ("rose", "blush")}
CATEGORIES = {"phone": "mobile", "case": "cover", "charger": "adapter", "lamp": "light",
              "bulb": "globe", "camera": "cam", "lens": "optic", "printer": "copier",
              "ink": "toner", "shoe": "sneaker", "sock": "hosiery", "shirt": "tee"}
COMPATIBLE = (("phone", "case"), ("phone", "charger"), ("lamp", "bulb"), ("camera", "lens"),
              ("printer", "ink"))
MATERIALS = ("cotton", "leather", "metal", "plastic", "glass", "wool")
BRANDS = ("zorva", "kelmi", "tarpo", "wimsy", "dunex", "quilo")
REVIEW_WORDS = {1: ("awful", "broken", "useless"), 2: ("poor", "flimsy", "weak"),
                3: ("okay", "average", "fine"), 4: ("good", "solid", "nice"),
                5: ("great", "perfect", "superb")}
UNITS = (1, 2, 4, 5)
LANGS = ("kai", "vom")
SKILLS = ("concept", "knowledge", "behavior", "multilingual")
# instruction words of the prompts (part of every language's vocabulary)
PROMPT_WORDS = ("synonym", "of", "answer", "category", "attributes", "title", "for", "brand",
                "color", "material", "type", "fits", "which", "costs", "units", "per", "unit",
                "price", "needs", "viewed", "buy", "next", "query", "rank", "review", "rating",
                "interest", "translate", "to", "a", "and", "nothing", "stars")


@dataclasses.dataclass(frozen=True)
class Product:
  pid: int
  category: str
  brand: str
  color: str
  material: str
  units: int
  price: int

  @property
  def title(self) -> str:
    return f"{self.brand} {self.color} {self.material} {self.category}"


@dataclasses.dataclass(frozen=True)
class Item:
  """One example of a mini-task; `truth` is what the task's metric reads."""
  task: str
  skill: str
  task_type: str
  metric: str
  prompt: str
  completion: str
  truth: Any


_COMPAT_OF = {c: sorted({b for a, b in COMPATIBLE if a == c} | {a for a, b in COMPATIBLE if b == c})
              for c in CATEGORIES}


def compatible_categories(category: str) -> list[str]:
  """The categories joined to `category` by a compatibility edge (sorted)."""
  return _COMPAT_OF[category]


class ShopWorld:
  """Products, users' sessions and cipher languages from one seed (module docstring)."""

  def __init__(self, seed: int = 0, num_products: int = 240):
    rng = np.random.default_rng([seed, 9])
    self.products: list[Product] = []
    combos = list(itertools.product(CATEGORIES, BRANDS))  # every (category, brand) appears
    for pid in range(num_products):
      cat, brand = combos[pid % len(combos)] if pid < len(combos) else (
          rng.choice(list(CATEGORIES)), rng.choice(BRANDS))
      units = int(rng.choice(UNITS))
      self.products.append(Product(pid, str(cat), str(brand), str(rng.choice(list(COLORS))),
                                   str(rng.choice(MATERIALS)), units,
                                   units * int(rng.integers(1, 10))))
    self.devices = [p for p in self.products if compatible_categories(p.category)]
    self.cipher = {lang: self._cipher_table(np.random.default_rng([seed, 11, i]))
                   for i, lang in enumerate(LANGS)}

  def english_words(self) -> list[str]:
    words = set(PROMPT_WORDS) | set(COLORS) | set(CATEGORIES) | set(MATERIALS) | set(BRANDS)
    words |= {w for s in COLORS.values() for w in s} | set(CATEGORIES.values())
    words |= {w for s in REVIEW_WORDS.values() for w in s} | set(LANGS)
    return sorted(words)

  def _cipher_table(self, rng: np.random.Generator) -> dict[str, str]:
    """English word -> a distinct pseudo-word of two or three consonant-vowel syllables."""
    cons, vowels = "bdfgklmnprstvz", "aeiou"
    table, taken = {}, set(self.english_words())  # no pseudo-word is an English word
    for w in self.english_words():
      while True:
        n = int(rng.integers(2, 4))
        cand = "".join(str(rng.choice(list(cons))) + str(rng.choice(list(vowels)))
                       for _ in range(n))
        if cand not in taken:
          break
      taken.add(cand)
      table[w] = cand
    return table

  def encode(self, text: str, lang: str) -> str:
    """The text in cipher language `lang` (lang "" = English)."""
    if not lang:
      return text
    table = self.cipher[lang]
    return re.sub(r"[a-z]+", lambda mt: table[mt.group(0)], text)

  def vocabulary(self) -> list[str]:
    words = self.english_words()
    for lang in LANGS:
      words += [self.cipher[lang][w] for w in self.english_words()]
    return sorted(set(words)) + [str(i) for i in range(100)]

  def of(self, pred: Callable[[Product], bool]) -> list[Product]:
    return [p for p in self.products if pred(p)]


# ---- the mini-tasks: (rng, world) -> (prompt, completion, truth) in English -----------------

def _choices(rng, right: str, pool: list[str], k: int = 4) -> tuple[str, int, list[str]]:
  """A numbered choice list with `right` at a random position among k - 1 distinct distractors."""
  wrong = [w for w in dict.fromkeys(pool) if w != right]
  picks = [str(w) for w in rng.choice(wrong, size=k - 1, replace=False)]
  pos = int(rng.integers(k))
  picks.insert(pos, right)
  return " ".join(f"{j}. {c}" for j, c in enumerate(picks)), pos, picks


def mc_color_synonym(rng, w: ShopWorld):
  color = str(rng.choice(list(COLORS)))
  syn = str(rng.choice(COLORS[color]))
  text, pos, _ = _choices(rng, color, list(COLORS))
  return f"synonym of {syn} ? {text} answer :", str(pos), str(pos)


def mc_category_synonym(rng, w: ShopWorld):
  cat = str(rng.choice(list(CATEGORIES)))
  text, pos, _ = _choices(rng, cat, list(CATEGORIES))
  return f"category of {CATEGORIES[cat]} ? {text} answer :", str(pos), str(pos)


def ner_title_attributes(rng, w: ShopWorld):
  p = w.products[int(rng.integers(len(w.products)))]
  return f"attributes of {p.title} ? answer :", f"{p.color}, {p.material}", [p.color, p.material]


def gen_title(rng, w: ShopWorld):
  p = w.products[int(rng.integers(len(w.products)))]
  return (f"title for brand {p.brand} color {p.color} material {p.material} type {p.category}"
          " ? answer :", p.title, p.title)


def _device(rng, w: ShopWorld) -> Product:
  devices = w.devices
  return devices[int(rng.integers(len(devices)))]


def mc_compatible(rng, w: ShopWorld):
  p = _device(rng, w)
  fits = w.of(lambda q: q.category in compatible_categories(p.category) and q.brand == p.brand)
  right = fits[int(rng.integers(len(fits)))]
  wrong = w.of(lambda q: q.category != p.category and not (
      q.category in compatible_categories(p.category) and q.brand == p.brand))
  text, pos, _ = _choices(rng, right.title, [q.title for q in wrong])
  return f"which fits {p.title} ? {text} answer :", str(pos), str(pos)


def mc_price_per_unit(rng, w: ShopWorld):
  p = w.of(lambda q: q.units > 1)[int(rng.integers(len(w.of(lambda q: q.units > 1))))]
  right = p.price // p.units
  text, pos, _ = _choices(rng, str(right), [str(v) for v in range(1, 10)])
  return (f"{p.title} costs {p.price} for {p.units} units . price per unit ? {text} answer :",
          str(pos), str(pos))


def _numbered(items: list[Product]) -> str:
  return " ".join(f"{j + 1}. {q.title}" for j, q in enumerate(items))


def retrieval_compatible(rng, w: ShopWorld):
  p = _device(rng, w)
  fit = lambda q: q.category in compatible_categories(p.category) and q.brand == p.brand
  fits, rest = w.of(fit), w.of(lambda q: not fit(q) and q.pid != p.pid)
  n_fit = int(rng.integers(1, 3))
  cands = [fits[i] for i in rng.choice(len(fits), size=min(n_fit, len(fits)), replace=False)]
  cands += [rest[i] for i in rng.choice(len(rest), size=4 - len(cands), replace=False)]
  order = rng.permutation(4)
  cands = [cands[i] for i in order]
  truth = [j + 1 for j, q in enumerate(cands) if fit(q)]
  return (f"which fits {p.title} ? {_numbered(cands)} answer :",
          ", ".join(map(str, truth)), truth)


def gen_needs(rng, w: ShopWorld):
  p = _device(rng, w)
  needs = " and ".join(f"a {p.brand} {c}" for c in compatible_categories(p.category))
  return f"a {p.brand} {p.color} {p.category} needs ? answer :", needs, needs


def _session(rng, w: ShopWorld):
  cat = str(rng.choice(list(CATEGORIES)))
  color = str(rng.choice(list(COLORS)))
  liked = w.of(lambda q: q.category == cat and q.color == color)
  if len(liked) < 2:
    return None
  other = w.of(lambda q: q.category == cat and q.color != color)
  viewed = [liked[i] for i in rng.choice(len(liked), size=2, replace=False)]
  if other and rng.random() < 0.5:
    viewed.append(other[int(rng.integers(len(other)))])
    viewed = [viewed[i] for i in rng.permutation(3)]
  return cat, color, viewed


def retrieval_next_purchase(rng, w: ShopWorld):
  while (s := _session(rng, w)) is None:
    pass
  cat, color, viewed = s
  liked = w.of(lambda q: q.category == cat and q.color == color and q not in viewed)
  rest = w.of(lambda q: not (q.category == cat and q.color == color))
  if not liked:
    return retrieval_next_purchase(rng, w)
  cands = [liked[int(rng.integers(len(liked)))]]
  cands += [rest[i] for i in rng.choice(len(rest), size=3, replace=False)]
  cands = [cands[i] for i in rng.permutation(4)]
  truth = [j + 1 for j, q in enumerate(cands) if q.category == cat and q.color == color]
  views = " , ".join(q.title for q in viewed)
  return (f"viewed {views} . buy next ? {_numbered(cands)} answer :",
          ", ".join(map(str, truth)), truth)


def gen_session_interest(rng, w: ShopWorld):
  while (s := _session(rng, w)) is None:
    pass
  cat, color, viewed = s
  views = " , ".join(q.title for q in viewed)
  return f"viewed {views} . interest ? answer :", f"{color} {cat}", f"{color} {cat}"


def ranking_query(rng, w: ShopWorld):
  cat = str(rng.choice(list(CATEGORIES)))
  color = str(rng.choice(list(COLORS)))
  rel = lambda q: (q.category == cat) * (1 + (q.color == color))
  pools = [w.of(lambda q, r=r: rel(q) == r) for r in (2, 1, 0)]
  if not pools[0] or not pools[1]:
    return ranking_query(rng, w)
  cands = [pools[0][int(rng.integers(len(pools[0])))], pools[1][int(rng.integers(len(pools[1])))]]
  cands += [pools[2][i] for i in rng.choice(len(pools[2]), size=2, replace=False)]
  cands = [cands[i] for i in rng.permutation(4)]
  truth = [int(rel(q)) for q in cands]
  # the ideal ranking: relevance descending, ties by position
  ranking = sorted(range(4), key=lambda j: (-truth[j], j))
  query = f"{rng.choice(COLORS[color]) if rng.random() < 0.5 else color} {cat}"
  return (f"query {query} . rank {_numbered(cands)} answer :",
          ", ".join(str(j + 1) for j in ranking), truth)


def mc_review_rating(rng, w: ShopWorld):
  p = w.products[int(rng.integers(len(w.products)))]
  stars = int(rng.integers(1, 6))
  words = " ".join(str(x) for x in rng.choice(REVIEW_WORDS[stars], size=2, replace=False))
  return f"review of {p.title} : {words} . rating 1 to 5 stars ? answer :", str(stars), str(stars)


def translation_title(lang: str):
  def make(rng, w: ShopWorld):
    p = w.products[int(rng.integers(len(w.products)))]
    return f"translate to {lang} : {p.title} answer :", w.encode(p.title, lang), \
        w.encode(p.title, lang)
  return make


# name -> (skill, task type, metric, generator)
ENGLISH_TASKS = {
    "mc_color_synonym": ("concept", "multiple_choice", "accuracy", mc_color_synonym),
    "mc_category_synonym": ("concept", "multiple_choice", "accuracy", mc_category_synonym),
    "ner_title_attributes": ("concept", "ner", "micro f1", ner_title_attributes),
    "gen_title_extraction": ("concept", "generation", "rougel", gen_title),
    "mc_compatible": ("knowledge", "multiple_choice", "accuracy", mc_compatible),
    "mc_price_per_unit": ("knowledge", "multiple_choice", "accuracy", mc_price_per_unit),
    "retrieval_compatible": ("knowledge", "retrieval", "hit rate@3", retrieval_compatible),
    "gen_needs": ("knowledge", "generation", "sent-transformer", gen_needs),
    "retrieval_next_purchase": ("behavior", "retrieval", "hit rate@3", retrieval_next_purchase),
    "ranking_query": ("behavior", "ranking", "ndcg", ranking_query),
    "mc_review_rating": ("behavior", "multiple_choice", "accuracy", mc_review_rating),
    "gen_session_interest": ("behavior", "generation", "sent-transformer", gen_session_interest),
}
# English tasks repeated in each cipher language (skill "multilingual")
CIPHER_TASKS = ("ner_title_attributes", "ranking_query", "mc_compatible")


def task_specs() -> dict[str, tuple[str, str, str, Callable, str]]:
  """task name -> (skill, type, metric, generator, language): 12 English + 8 multilingual."""
  specs = {n: (s, t, m, g, "") for n, (s, t, m, g) in ENGLISH_TASKS.items()}
  for lang in LANGS:
    for n in CIPHER_TASKS:
      s, t, m, g = ENGLISH_TASKS[n]
      specs[f"{n}_{lang}"] = ("multilingual", t, m, g, lang)
    specs[f"translation_title_{lang}"] = ("multilingual", "generation", "bleu",
                                          translation_title(lang), "")
  return specs


def _cipher_truth(w: ShopWorld, truth: Any, lang: str) -> Any:
  if isinstance(truth, str):
    return w.encode(truth, lang)
  if isinstance(truth, list) and truth and isinstance(truth[0], str):
    return [w.encode(t, lang) for t in truth]
  return truth


def make_items(w: ShopWorld, task: str, n: int, seed: int, exclude: set[str] = frozenset(),
               max_tries: int = 50) -> list[Item]:
  """n distinct items of `task` (prompts in `exclude` skipped), from `default_rng(seed)`."""
  skill, task_type, metric, gen, lang = task_specs()[task]
  rng = np.random.default_rng(seed)
  out, seen = [], set(exclude)
  for _ in range(n * max_tries):
    if len(out) == n:
      break
    prompt, completion, truth = gen(rng, w)
    if lang:
      prompt, completion = w.encode(prompt, lang), w.encode(completion, lang)
      truth = _cipher_truth(w, truth, lang)
    if prompt in seen:
      continue
    seen.add(prompt)
    out.append(Item(task, skill, task_type, metric, prompt, completion, truth))
  return out
