"""The synthetic entity world of QUBRIC's CPU reproduction (arXiv 2606.03968; docs/qubric.md).

Entities are products with ten attributes, each with one of three values. A product is shown to
the policy as its catalogue entry, one statement per attribute in a fixed order:

    price=cheap weight=heavy size=small battery=week ... support=phone

A *latent scenario* (who asks, and why) decides which three attributes an answer must cover:
"budget_buyer" needs price, durability and warranty. The scenario's key points are the
entity's statements of those attributes. The open-ended query ("tell me about it") does not say
the scenario, so no answer can know which key points matter; the scenario rewrite appends it
("tell me about it for a budget_buyer"); the fabricated-reference rewrite (the negative control)
asks about an attribute no entity has ("tell me about its award"), which no answer can state
verifiably. Answers are statements `attr=value`; `parse_statements` reads them from any text.
"""
from __future__ import annotations

import dataclasses
import re
import zlib
from typing import Sequence

import numpy as np

# Ten attributes, three values each; values are distinct across attributes so a statement's
# value alone never names another attribute.
ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "price": ("cheap", "fair", "costly"),
    "weight": ("light", "medium", "heavy"),
    "size": ("small", "compact", "large"),
    "battery": ("short", "day", "week"),
    "durability": ("fragile", "sturdy", "rugged"),
    "noise": ("silent", "quiet", "loud"),
    "speed": ("slow", "brisk", "fast"),
    "warranty": ("none", "year", "lifetime"),
    "style": ("plain", "sleek", "bold"),
    "support": ("email", "phone", "onsite"),
}
ATTRIBUTE_NAMES: tuple[str, ...] = tuple(ATTRIBUTES)

# The latent scenarios: which attributes an answer for that asker must cover (the hidden key
# points). Attributes overlap across scenarios, so the mapping is not a partition.
SCENARIOS: dict[str, tuple[str, ...]] = {
    "budget_buyer": ("price", "durability", "warranty"),
    "traveler": ("weight", "size", "battery"),
    "office_worker": ("noise", "support", "style"),
    "gamer": ("speed", "battery", "style"),
    "outdoor_user": ("durability", "weight", "battery"),
    "business_buyer": ("support", "warranty", "price"),
}

# Attributes no entity has: the fabricated references of the negative control, with the values
# a rewriter (or a teacher playing along with the premise) would make up for them.
FABRICATED: dict[str, tuple[str, ...]] = {
    "award": ("gold", "silver", "bronze"),
    "designer": ("milano", "oslo", "kyoto"),
    "origin": ("alps", "delta", "steppe"),
    "recall": ("never", "once", "twice"),
}

STATEMENT = re.compile(r"([a-z_]+)=([a-z_]+)")
QUERY_SEP = " | "
OPEN_QUERY = "tell me about it"


def statement(attribute: str, value: str) -> str:
  return f"{attribute}={value}"


def all_statements() -> list[str]:
  """Every statement a text can make about a real or a fabricated attribute (the tokenizer's
  single pieces)."""
  return [statement(a, v) for table in (ATTRIBUTES, FABRICATED) for a, vs in table.items()
          for v in vs]


def parse_statements(text: str) -> list[tuple[str, str]]:
  """The (attribute, value) statements of a text, in order, repeats removed."""
  return list(dict.fromkeys(STATEMENT.findall(text)))


@dataclasses.dataclass(frozen=True)
class Entity:
  """values: one value per attribute, in `ATTRIBUTE_NAMES` order."""
  values: tuple[str, ...]

  def value(self, attribute: str) -> str | None:
    """The entity's value of `attribute`; None for an attribute it does not have (fabricated)."""
    if attribute not in ATTRIBUTES:
      return None
    return self.values[ATTRIBUTE_NAMES.index(attribute)]

  @property
  def document(self) -> str:
    return " ".join(statement(a, v) for a, v in zip(ATTRIBUTE_NAMES, self.values))


def sample_entities(n: int, rng: np.random.Generator, exclude: Sequence[Entity] = ()
                    ) -> list[Entity]:
  """n distinct entities, none of them in `exclude` (uniform values per attribute)."""
  seen = set(exclude)
  out: list[Entity] = []
  if n > 3 ** len(ATTRIBUTES) - len(seen):
    raise ValueError(f"sample_entities: cannot draw {n} distinct entities")
  while len(out) < n:
    e = Entity(tuple(str(vs[rng.integers(len(vs))]) for vs in ATTRIBUTES.values()))
    if e not in seen:
      seen.add(e)
      out.append(e)
  return out


def key_points(entity: Entity, scenario: str) -> list[str]:
  """The scenario's key points for this entity: its statements of the scenario's attributes, in
  catalogue order."""
  if scenario not in SCENARIOS:
    raise ValueError(f"unknown scenario {scenario!r}; known: {sorted(SCENARIOS)}")
  wanted = set(SCENARIOS[scenario])
  return [statement(a, entity.value(a)) for a in ATTRIBUTE_NAMES if a in wanted]


def key_point_recall(entity: Entity, scenario: str, text: str) -> float:
  """|key points stated| / |key points| (a stated key point is a true statement of a scenario
  attribute; the held-out metric of docs/qubric.md, an ArenaHard analogue)."""
  points = key_points(entity, scenario)
  stated = {statement(a, v) for a, v in parse_statements(text)}
  return sum(p in stated for p in points) / len(points)


def fabricated_value(attribute: str, salt: str) -> str:
  """A made-up value for a fabricated attribute, deterministic in (attribute, salt): what a
  model asked about a non-existent reference writes (CRC-32, not Python's salted hash)."""
  values = FABRICATED[attribute]
  return values[zlib.crc32(f"{attribute}|{salt}".encode()) % len(values)]


# Query texts. The prompt is the catalogue entry, then the query.
def open_query() -> str:
  return OPEN_QUERY


def scenario_query(scenario: str) -> str:
  return f"{OPEN_QUERY} for a {scenario}"


def fabricated_query(attribute: str) -> str:
  return f"tell me about its {attribute}"


def prompt(entity: Entity, query: str) -> str:
  return entity.document + QUERY_SEP + query


def split_prompt(text: str) -> tuple[str, str]:
  """(catalogue entry, query) of a prompt; ValueError if it has no separator."""
  if QUERY_SEP not in text:
    raise ValueError(f"prompt without the catalogue/query separator {QUERY_SEP!r}: {text[:60]!r}")
  doc, query = text.split(QUERY_SEP, 1)
  return doc, query


def entity_of(document: str) -> Entity:
  """The entity whose catalogue entry is `document`; ValueError if it is not one."""
  found = dict(parse_statements(document))
  if set(found) != set(ATTRIBUTE_NAMES) or any(found[a] not in ATTRIBUTES[a] for a in found):
    raise ValueError(f"not a catalogue entry (expected one statement per attribute of "
                     f"{ATTRIBUTE_NAMES}): {document[:80]!r}")
  return Entity(tuple(found[a] for a in ATTRIBUTE_NAMES))


def query_target(query: str) -> tuple[str, str]:
  """("open", ""), ("scenario", name) or ("attribute", name) for a query text."""
  if query == OPEN_QUERY:
    return "open", ""
  m = re.fullmatch(re.escape(OPEN_QUERY) + r" for a ([a-z_]+)", query)
  if m:
    return "scenario", m.group(1)
  m = re.fullmatch(r"tell me about its ([a-z_]+)", query)
  if m:
    return "attribute", m.group(1)
  raise ValueError(f"unknown query form: {query!r}")
