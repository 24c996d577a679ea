"""The PUGC world (arXiv 2506.04463, docs/pugc.md): places with hidden attribute facts, user
posts that recount a visit (facts and opinions), questions about one attribute of one place,
and the answers a policy writes. Every text is whitespace-separated words of `vocabulary()`.

  world      : entity -> {attribute: value}, each value drawn uniformly (`make_world`)
  post       : "i went to cafe_luna on monday . the wifi was fast . i loved it . ..."
               2-3 fact sentences "the <attr> was <value> ." and 1-2 opinions, one of which may
               name an attribute without a value ("i cared about the parking ."); with
               probability `noise` one fact sentence states a wrong value (a user who
               misremembers: the paper's UGC-quality axis)
  question   : "what is the <attr> like at <entity> ?" | "how was the <attr> at <entity> ?"
  answer     : "<value> ." (short) | "the <attr> at <entity> is <value> ." (plain)
               | plain + " the <attr2> is also <value2> ." (extra claim)
               | plain + " i hope this helps ." (filler)

Every value word belongs to exactly one attribute (`VALUE_ATTRIBUTE`), so the claims of a text
are its value words: `claims(text)` = [(attribute, value), ...].

The oracle that knows the world (the evaluation judge, standing in for AlpacaEval's GPT-4):

  oracle_score = a(asked) + sum over other claimed attributes b of e(b)
    a = +1 if every claimed value of the asked attribute is the true one (and there is one),
        -1 if any claimed value of it is wrong, 0 if it is not answered;
    e = +extra_bonus (0.25) per other attribute claimed correctly, -extra_penalty (0.5) per
        other attribute claimed wrongly (a hallucinated extra).
"""
from __future__ import annotations

import dataclasses
import re
from typing import Sequence

import numpy as np

ATTRIBUTES = {
    "wifi": ("fast", "slow", "spotty"),
    "price": ("cheap", "fair", "steep"),
    "staff": ("friendly", "rude", "busy"),
    "noise": ("quiet", "loud", "lively"),
    "parking": ("easy", "hard", "paid"),
}
VALUE_ATTRIBUTE = {v: a for a, values in ATTRIBUTES.items() for v in values}
KINDS = ("cafe", "hotel", "bistro", "inn")
NAMES = ("luna", "aria", "nova", "opal", "sable", "fern")
DAYS = ("monday", "tuesday", "friday", "saturday", "sunday")
OPINIONS = ("i loved it .", "i would go back .", "not my favourite place .",
            "it was a fun evening .", "my friend liked it .")
CARED = "i cared about the {attr} ."
QUESTION_TEMPLATES = ("what is the {attr} like at {entity} ?", "how was the {attr} at {entity} ?")
FILLER = "i hope this helps ."
STYLES = ("short", "plain", "extra", "filler")
_QUESTION_RES = tuple(re.compile("^" + re.escape(t).replace(r"\{attr\}", r"(\S+)")
                                 .replace(r"\{entity\}", r"(\S+)") + "$")
                      for t in QUESTION_TEMPLATES)


def entity_names(n: int) -> list[str]:
  """The first n of the KINDS x NAMES grid, e.g. cafe_luna (at most 24)."""
  grid = [f"{k}_{m}" for m in NAMES for k in KINDS]
  if not 1 <= n <= len(grid):
    raise ValueError(f"pugc world: num_entities must be in [1, {len(grid)}], got {n}")
  return grid[:n]


def make_world(num_entities: int, seed: int) -> dict[str, dict[str, str]]:
  """entity -> {attribute: true value}, values uniform from `default_rng([seed, 0])`."""
  rng = np.random.default_rng([seed, 0])
  return {e: {a: values[rng.integers(len(values))] for a, values in ATTRIBUTES.items()}
          for e in entity_names(num_entities)}


def vocabulary() -> list[str]:
  """Every word a world text can contain."""
  words = set()
  texts = [*OPINIONS, CARED, *QUESTION_TEMPLATES, FILLER, "i went to on", "the was is also",
           *DAYS, *ATTRIBUTES, *VALUE_ATTRIBUTE, *entity_names(len(KINDS) * len(NAMES))]
  for t in texts:
    words.update(w for w in t.split() if not w.startswith("{"))
  return sorted(words)


@dataclasses.dataclass(frozen=True)
class Question:
  entity: str
  attribute: str
  template: int = 0

  @property
  def text(self) -> str:
    return QUESTION_TEMPLATES[self.template].format(attr=self.attribute, entity=self.entity)


def parse_question(text: str) -> Question | None:
  """The (entity, attribute) a question asks about, or None if it is not one of the templates."""
  for i, pattern in enumerate(_QUESTION_RES):
    m = pattern.match(text.strip())
    if m and m.group(1) in ATTRIBUTES:
      return Question(m.group(2), m.group(1), i)
  return None


@dataclasses.dataclass(frozen=True)
class Post:
  """A rendered post and what it states (`facts`: the values as written, wrong ones included)."""
  entity: str
  facts: tuple[tuple[str, str], ...]
  text: str


def render_post(world, entity: str, rng: np.random.Generator, noise: float) -> Post:
  """One post about `entity` (module docstring)."""
  attrs = list(ATTRIBUTES)
  order = rng.permutation(len(attrs))
  n_facts = int(rng.integers(2, 4))
  stated = [attrs[i] for i in order[:n_facts]]
  facts = [(a, world[entity][a]) for a in stated]
  if rng.random() < noise:  # one misremembered fact
    j = int(rng.integers(n_facts))
    a, v = facts[j]
    facts[j] = (a, [w for w in ATTRIBUTES[a] if w != v][rng.integers(len(ATTRIBUTES[a]) - 1)])
  sentences = [f"the {a} was {v} ." for a, v in facts]
  sentences.append(OPINIONS[rng.integers(len(OPINIONS))])
  if rng.random() < 0.5:  # names an attribute without stating it: not answerable from the post
    sentences.append(CARED.format(attr=attrs[order[n_facts]]))
  body = [sentences[i] for i in rng.permutation(len(sentences))]
  text = " ".join([f"i went to {entity} on {DAYS[rng.integers(len(DAYS))]} ."] + body)
  return Post(entity, tuple(facts), text)


def posts(world, entities: Sequence[str], n: int, seed: int, noise: float) -> list[Post]:
  """n posts, post i about a uniform entity of `entities`, from `default_rng([seed, 1, i])`."""
  out = []
  for i in range(n):
    rng = np.random.default_rng([seed, 1, i])
    out.append(render_post(world, entities[rng.integers(len(entities))], rng, noise))
  return out


_POST_ENTITY = re.compile(r"^i went to (\S+) on \S+ \.")
_POST_FACT = re.compile(r"(?:^|(?<=\. ))the (\S+) was (\S+) \.")  # sentences may abut


def parse_post(text: str) -> tuple[str | None, dict[str, str]]:
  """(entity, {attribute: stated value}) of a post's text; the facts are its "the A was V ."
  sentences (opinions name no value)."""
  m = _POST_ENTITY.match(text.strip())
  facts = {}
  for a, v in _POST_FACT.findall(text):
    if a in ATTRIBUTES and VALUE_ATTRIBUTE.get(v) == a:
      facts[a] = v
  return (m.group(1) if m else None), facts


def answer(question: Question, value: str, style: str, extra: tuple[str, str] | None = None
           ) -> str:
  """The response text of `style` (module docstring) stating `value` for the asked attribute;
  `extra` = (attribute, value) of the extra claim (style "extra")."""
  plain = f"the {question.attribute} at {question.entity} is {value} ."
  if style == "short":
    return f"{value} ."
  if style == "plain":
    return plain
  if style == "filler":
    return f"{plain} {FILLER}"
  if style == "extra":
    if extra is None:
      raise ValueError("pugc answer: style 'extra' needs the extra (attribute, value)")
    return f"{plain} the {extra[0]} is also {extra[1]} ."
  raise ValueError(f"pugc answer: style must be one of {STYLES}, got {style!r}")


def claims(text: str) -> list[tuple[str, str]]:
  """(attribute, value) for every value word of a text, in order."""
  return [(VALUE_ATTRIBUTE[w], w) for w in text.split() if w in VALUE_ATTRIBUTE]


def oracle_score(world, question: Question, text: str, *, extra_bonus: float = 0.25,
                 extra_penalty: float = 0.5) -> float:
  """The world-knowing judge's score of a response (module docstring)."""
  truth = world[question.entity]
  by_attr: dict[str, set[str]] = {}
  for a, v in claims(text):
    by_attr.setdefault(a, set()).add(v)
  asked = by_attr.pop(question.attribute, set())
  score = 0.0 if not asked else (1.0 if asked == {truth[question.attribute]} else -1.0)
  for a, values in by_attr.items():
    score += extra_bonus if values == {truth[a]} else -extra_penalty
  return score


def answers_correctly(world, question: Question, text: str) -> bool:
  """The asked attribute is stated, and only with its true value."""
  values = {v for a, v in claims(text) if a == question.attribute}
  return values == {world[question.entity][question.attribute]}
