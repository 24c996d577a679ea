"""Deterministic oracle implementations of the external-intelligence protocols over the QUBRIC
entity world (`rl_jax.intelligence.protocols`; docs/qubric.md). Each is put behind the
content-hash disk cache by `rl_jax.intelligence.build`; an LLM can stand in for any of them
behind the config's `backend="openai"`.

Every oracle reads the product from the prompt's catalogue entry (`world.entity_of`), which is
the world's own record of it: the oracles have full world access, the policy only the prompt.

- `WorldTeacher` (Teacher): the ideal answer. For a scenario query, the scenario's key points;
  for the open query, every statement of the entry (an overview); for a question about an
  attribute the entity does not have, it plays along with the premise and makes a value up
  (`world.fabricated_value`), as an LLM asked about a non-existent reference does.
- `StatementKeyPoints` (KeyPointExtractor): the statements of a text.
- `ScenarioRewriter` (QueryRewriter): context = the key points the rewrite must make necessary;
  appends the scenario whose attributes are exactly theirs ("... for a budget_buyer").
- `FabricatingRewriter` (QueryRewriter, the negative control): naive narrowing; asks about an
  attribute the world does not have ("tell me about its award").
- `ContrastiveRubricOracle` (RubricGenerator): reference = JSON {"good": a_T, "bad": a_pi}:
  Essential for a key point a_T states and a_pi misses, Important for one both state, plus
  the hard rule Pitfall "states a wrong value"; reference "" gives the generic rubric (one
  Optional "states <attr> correctly" per attribute, plus the pitfall).
- `WorldJudge` (Judge): per-criterion 0/1 verified against the world (criterion grammar in
  `judge_criterion`); a statement about an attribute the entity lacks never verifies.
"""
from __future__ import annotations

import json
import re
import zlib
from typing import Any, Sequence

from rl_jax.projects.qubric import world
from rl_jax.projects.qubric.rubric import KIND_WEIGHTS

PITFALL = "states a wrong value"
_STATES = re.compile(r"states ([a-z_]+)=([a-z_]+)")
_CORRECTLY = re.compile(r"states ([a-z_]+) correctly")


class WorldTeacher:
  identity = "qubric-world-teacher-v1"

  def answer(self, prompt: str) -> str:
    doc, query = world.split_prompt(prompt)
    entity = world.entity_of(doc)
    form, target = world.query_target(query)
    if form == "scenario":
      return " ".join(world.key_points(entity, target))
    if form == "attribute":
      value = entity.value(target)
      if value is None:  # plays along with the premise: a made-up value
        value = world.fabricated_value(target, doc)
      return world.statement(target, value)
    return entity.document

  def generate(self, prompts: Sequence[str], n: int = 1, temperature: float = 0.0
               ) -> list[list[str]]:
    return [[self.answer(p)] * n for p in prompts]


class StatementKeyPoints:
  identity = "qubric-statement-key-points-v1"

  def extract(self, documents: Sequence[str]) -> list[list[str]]:
    return [[world.statement(a, v) for a, v in world.parse_statements(d)] for d in documents]


class ScenarioRewriter:
  identity = "qubric-scenario-rewriter-v1"

  def rewrite(self, queries: Sequence[str], contexts: Sequence[str]) -> list[str]:
    out = []
    for query, context in zip(queries, contexts, strict=True):
      attributes = {a for a, _ in world.parse_statements(context)}
      match = [s for s, attrs in world.SCENARIOS.items() if set(attrs) == attributes]
      if len(match) != 1:
        raise ValueError(f"ScenarioRewriter: no scenario has exactly the attributes of the key "
                         f"points {sorted(attributes)}")
      if query != world.OPEN_QUERY:
        raise ValueError(f"ScenarioRewriter: expected the open query {world.OPEN_QUERY!r}, got "
                         f"{query!r}")
      out.append(world.scenario_query(match[0]))
    return out


class FabricatingRewriter:
  """Naive narrowing: the attribute it asks about is drawn from the fabricated ones by the
  context (a hash, deterministic), whatever the key points say."""
  identity = "qubric-fabricating-rewriter-v1"

  def rewrite(self, queries: Sequence[str], contexts: Sequence[str]) -> list[str]:
    names = sorted(world.FABRICATED)
    out = []
    for query, context in zip(queries, contexts, strict=True):
      pick = names[zlib.crc32(f"{query}|{context}".encode()) % len(names)]
      out.append(world.fabricated_query(pick))
    return out


def contrastive_rubric(good: str, bad: str) -> list[dict[str, Any]]:
  """The criteria that separate the teacher's answer from the policy's (module docstring)."""
  bad_points = {world.statement(a, v) for a, v in world.parse_statements(bad)}
  rubric = []
  for a, v in world.parse_statements(good):
    point = world.statement(a, v)
    kind = "important" if point in bad_points else "essential"
    rubric.append({"criterion": f"states {point}", "weight": KIND_WEIGHTS[kind], "kind": kind})
  rubric.append({"criterion": PITFALL, "weight": KIND_WEIGHTS["pitfall"], "kind": "pitfall"})
  return rubric


def generic_rubric() -> list[dict[str, Any]]:
  """The vague rubric of an open query: any correct statement counts the same."""
  rubric = [{"criterion": f"states {a} correctly", "weight": KIND_WEIGHTS["optional"],
             "kind": "optional"} for a in world.ATTRIBUTE_NAMES]
  rubric.append({"criterion": PITFALL, "weight": KIND_WEIGHTS["pitfall"], "kind": "pitfall"})
  return rubric


class ContrastiveRubricOracle:
  identity = "qubric-contrastive-rubric-v1"

  def generate_rubrics(self, queries: Sequence[str], references: Sequence[str]
                       ) -> list[list[dict[str, Any]]]:
    out = []
    for reference in references:
      if not reference:
        out.append(generic_rubric())
        continue
      pair = json.loads(reference)
      if not isinstance(pair, dict) or set(pair) != {"good", "bad"}:
        raise ValueError(f"ContrastiveRubricOracle: reference must be JSON {{'good', 'bad'}}, "
                         f"got {reference[:80]!r}")
      out.append(contrastive_rubric(pair["good"], pair["bad"]))
    return out


def judge_criterion(entity: world.Entity, response: str, criterion: str) -> float:
  """1.0 iff the response satisfies the criterion, verified against the world:
    "states <attr>=<value>": the response states it and the entity has that value;
    "states <attr> correctly": the response states the attribute with the entity's value;
    "states a wrong value" (a pitfall): some statement is false or about an attribute the
      entity does not have.
  ValueError for any other criterion (a judge must not guess)."""
  stated = world.parse_statements(response)
  m = _STATES.fullmatch(criterion)
  if m:
    a, v = m.groups()
    return float((a, v) in stated and entity.value(a) == v)
  m = _CORRECTLY.fullmatch(criterion)
  if m:
    a = m.group(1)
    return float(any(sa == a and entity.value(a) == sv for sa, sv in stated))
  if criterion == PITFALL:
    return float(any(entity.value(a) != v for a, v in stated))
  raise ValueError(f"WorldJudge: unknown criterion {criterion!r}")


class WorldJudge:
  identity = "qubric-world-judge-v1"

  def score(self, prompts: Sequence[str], responses: Sequence[str],
            references: Sequence[str] | None = None,
            criteria: Sequence[Sequence[str]] | None = None) -> list[Any]:
    if criteria is None:
      raise ValueError("WorldJudge scores rubrics: criteria are required")
    out = []
    for p, r, crit in zip(prompts, responses, criteria, strict=True):
      entity = world.entity_of(world.split_prompt(p)[0])
      out.append([judge_criterion(entity, r, c) for c in crit])
    return out
