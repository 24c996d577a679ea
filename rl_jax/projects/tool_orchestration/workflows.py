"""Workflow templates, constrained trace synthesis through a reverse index, distractors, and
queries written through the `Teacher` protocol (seed S4, arXiv 2603.24709; the authors'
`generate_bfcl_training_data.py`; docs/tool_orchestration.md).

A template is a list of steps; each step names a function, the steps it `depends_on` and its
`dependency_args` {arg: (from_step, from_field)}, where from_field is a path into the earlier
step's response such as "data[0].dest_id". Synthesis (`synthesize`):
  1. build the reverse index function -> param -> value -> {cache-entry ids};
  2. walk the steps in order: an independent step takes a random cache entry of its function
     (constrained to the values the query fixes, e.g. the same city for two steps, when the
     template says so through `same_as`); a dependent step reads each dependency value from the
     earlier sampled response through from_field, intersects the entry-id sets of its
     dependency args (and of its `same_as` constraints) and samples one entry;
  3. retry the whole walk up to `max_tries` (50) times.
Every call of the chain is a cache hit, so the chain is valid by construction.
`num_distractors` functions of the workflow's domains that the workflow does not call are added
to the tool list of the prompt. The query is written by a `Teacher` from the chain's user-facing
parameters (`TemplateQueryOracle`: a grammar template, the default; an LLM behind the same
protocol otherwise).
"""
from __future__ import annotations

import dataclasses
import json
import re
from typing import Any, Mapping, Sequence

import numpy as np

from rl_jax.projects.tool_orchestration.api import FUNCTIONS, ResponseCache

_PATH_PART = re.compile(r"([A-Za-z_]\w*)(?:\[(\d+)\])?")


@dataclasses.dataclass(frozen=True)
class StepTemplate:
  """function; depends_on: earlier step indices; dependency_args: {arg: (from_step,
  from_field)}; same_as: {arg: (step, arg)}: this independent arg takes the value another step
  used (e.g. a car on the hotel's day)."""
  function: str
  depends_on: tuple[int, ...] = ()
  dependency_args: Mapping[str, tuple[int, str]] = dataclasses.field(default_factory=dict)
  same_as: Mapping[str, tuple[int, str]] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class WorkflowTemplate:
  name: str
  steps: tuple[StepTemplate, ...]
  query: str  # grammar template over the user-facing parameters: "{city}", "{day}", ...


def _step(function, *deps, args=None, same=None):
  return StepTemplate(function, tuple(deps), dict(args or {}), dict(same or {}))


DEST = "data[0].dest_id"
TEMPLATES = {t.name: t for t in (
    WorkflowTemplate("hotels", (_step("search_destination"),
                                _step("search_hotels", 0, args={"dest_id": (0, DEST)})),
                     "hotels in {city} on day {day}"),
    WorkflowTemplate("hotel_stars", (
        _step("search_destination"), _step("search_hotels", 0, args={"dest_id": (0, DEST)}),
        _step("hotel_details", 1, args={"hotel_id": (1, "data[0].hotel_id")})),
        "stars of a hotel in {city} on day {day}"),
    WorkflowTemplate("cars", (_step("search_destination"),
                              _step("search_cars", 0, args={"dest_id": (0, DEST)})),
                     "rent a car in {city} on day {day}"),
    WorkflowTemplate("car_price", (
        _step("search_destination"), _step("search_cars", 0, args={"dest_id": (0, DEST)}),
        _step("car_details", 1, args={"car_id": (1, "data[0].car_id")})),
        "price of a car in {city} on day {day}"),
    WorkflowTemplate("sights", (_step("search_destination"),
                                _step("search_attractions", 0, args={"dest_id": (0, DEST)})),
                     "things to see in {city}"),
    WorkflowTemplate("sight_rating", (
        _step("search_destination"), _step("search_attractions", 0, args={"dest_id": (0, DEST)}),
        _step("attraction_details", 1, args={"slug": (1, "data[0].slug")})),
        "rating of a sight in {city}"),
    WorkflowTemplate("flights", (
        _step("search_airport"), _step("search_airport"),
        _step("search_flights", 0, 1, args={"from_id": (0, "data[0].airport_id"),
                                            "to_id": (1, "data[0].airport_id")})),
        "flights from {city} to {city2} on day {day}"),
    WorkflowTemplate("hotel_and_car", (
        _step("search_destination"), _step("search_hotels", 0, args={"dest_id": (0, DEST)}),
        _step("search_cars", 0, args={"dest_id": (0, DEST)}, same={"day": (1, "day")})),
        "hotel and car in {city} on day {day}"),
    WorkflowTemplate("hotel_and_sights", (
        _step("search_destination"), _step("search_hotels", 0, args={"dest_id": (0, DEST)}),
        _step("search_attractions", 0, args={"dest_id": (0, DEST)})),
        "hotel and sights in {city} on day {day}"),
    WorkflowTemplate("car_and_sights", (
        _step("search_destination"), _step("search_cars", 0, args={"dest_id": (0, DEST)}),
        _step("search_attractions", 0, args={"dest_id": (0, DEST)})),
        "car and sights in {city} on day {day}"),
)}


def extract_field(response: Any, path: str) -> Any:
  """The value at `path` ("data[0].dest_id") of a response; KeyError / IndexError if absent."""
  value = response
  for part in path.split("."):
    match = _PATH_PART.fullmatch(part)
    if match is None:
      raise ValueError(f"bad from_field path {path!r} at {part!r}")
    value = value[match.group(1)]
    if match.group(2) is not None:
      value = value[int(match.group(2))]
  return value


def reverse_index(cache: ResponseCache) -> dict[str, dict[str, dict[str, set[int]]]]:
  """function -> param -> canonical JSON value -> {entry ids} (ids index cache.entries[fn])."""
  index: dict[str, dict[str, dict[str, set[int]]]] = {}
  for name, rows in cache.entries.items():
    per_param = index.setdefault(name, {})
    for i, entry in enumerate(rows):
      for param, value in entry["arguments"].items():
        per_param.setdefault(param, {}).setdefault(json.dumps(value), set()).add(i)
  return index


@dataclasses.dataclass(frozen=True)
class TraceStep:
  """One ground-truth call: function, arguments, the cached response, depends_on."""
  function: str
  arguments: Mapping[str, Any]
  response: Mapping[str, Any]
  depends_on: tuple[int, ...]


@dataclasses.dataclass(frozen=True)
class Workflow:
  """A synthesized item: template name, the ground-truth chain, the user-facing parameters,
  the tool list of the prompt (workflow functions and distractors, shuffled) and the query."""
  template: str
  steps: tuple[TraceStep, ...]
  params: Mapping[str, Any]
  tools: tuple[str, ...]
  query: str = ""

  @property
  def key(self) -> str:
    """Identity of the chain (template and calls): held-out splits are disjoint in it."""
    return json.dumps([self.template, [[s.function, dict(s.arguments)] for s in self.steps]],
                      sort_keys=True)


def _sample_chain(template: WorkflowTemplate, cache: ResponseCache, index, rng
                  ) -> tuple[TraceStep, ...] | None:
  steps: list[TraceStep] = []
  for st in template.steps:
    rows = cache.entries[st.function]
    allowed = set(range(len(rows)))
    constraints = {arg: extract_field(steps[s].response, path)
                   for arg, (s, path) in st.dependency_args.items()}
    constraints.update({arg: steps[s].arguments[a] for arg, (s, a) in st.same_as.items()})
    for arg, value in constraints.items():
      allowed &= index[st.function].get(arg, {}).get(json.dumps(value), set())
    if not allowed:
      return None
    entry = rows[int(rng.choice(sorted(allowed)))]
    steps.append(TraceStep(st.function, dict(entry["arguments"]), entry["response"],
                           tuple(st.depends_on)))
  return tuple(steps)


def user_params(template: WorkflowTemplate, steps: Sequence[TraceStep]) -> dict[str, Any]:
  """The values the query must state: the independent string args (cities, in step order:
  city, city2) and the day."""
  params: dict[str, Any] = {}
  for st, step in zip(template.steps, steps):
    for arg, value in step.arguments.items():
      if arg in st.dependency_args or arg in st.same_as:
        continue
      if arg == "day":
        params.setdefault("day", value)
      elif arg == "query":
        params["city" if "city" not in params else "city2"] = value
  return params


def synthesize(template: WorkflowTemplate, cache: ResponseCache, index,
               rng: np.random.Generator, *, num_distractors: int = 2, max_tries: int = 50
               ) -> Workflow | None:
  """One chain of `template` (module docstring), or None after `max_tries` failed walks."""
  for _ in range(max_tries):
    steps = _sample_chain(template, cache, index, rng)
    if steps is None:
      continue
    params = user_params(template, steps)
    if "city2" in template.query and params.get("city2") in (None, params.get("city")):
      continue
    used = sorted({s.function for s in steps})
    domains = {FUNCTIONS[f].domain for f in used}
    pool = sorted(f for f, fn in FUNCTIONS.items() if fn.domain in domains and f not in used)
    picks = list(rng.choice(pool, size=min(num_distractors, len(pool)), replace=False))
    tools = [str(t) for t in rng.permutation(used + picks)]
    return Workflow(template.name, steps, params, tuple(tools))
  return None


class TemplateQueryOracle:
  """`Teacher` that writes the query from the template's grammar: the prompt is the JSON
  {"template", "params"}; completion i of n uses phrasing variant i (deterministic; the
  temperature is ignored). Stands in for the paper's LLM query writer (class default gpt-4.1),
  which returns {query, chosen_parameters, variation_notes}."""
  identity = "tool_orchestration.template_query_oracle.v1"
  PREFIXES = ("", "please find ", "i need ")

  def generate(self, prompts: Sequence[str], n: int = 1, temperature: float = 0.0
               ) -> list[list[str]]:
    out = []
    for prompt in prompts:
      spec = json.loads(prompt)
      body = TEMPLATES[spec["template"]].query.format(**spec["params"])
      out.append([self.PREFIXES[i % len(self.PREFIXES)] + body for i in range(n)])
    return out


def query_prompt(workflow: Workflow) -> str:
  return json.dumps({"template": workflow.template, "params": dict(workflow.params)},
                    sort_keys=True)


def synthesize_split(templates: Sequence[str], n: int, cache: ResponseCache,
                     rng: np.random.Generator, teacher, *, num_distractors: int = 2,
                     exclude: set[str] = frozenset(), query_variants: int = 1
                     ) -> list[Workflow]:
  """`n` distinct workflows (by `Workflow.key`, none in `exclude`) over `templates` (uniform),
  each with its query from `teacher` (variant drawn from `query_variants`). Rows the teacher
  dropped (policy "drop") are left out; raises if the templates cannot give `n` distinct
  chains."""
  index = reverse_index(cache)
  found: dict[str, Workflow] = {}
  for _ in range(50 * n):
    if len(found) == n:
      break
    wf = synthesize(TEMPLATES[templates[int(rng.integers(len(templates)))]], cache, index, rng,
                    num_distractors=num_distractors)
    if wf is not None and wf.key not in exclude and wf.key not in found:
      found[wf.key] = wf
  if len(found) < n:
    raise ValueError(f"task: only {len(found)} distinct workflows of {list(templates)} outside "
                     f"the excluded set, asked for {n}")
  flows = list(found.values())
  queries = teacher.generate([query_prompt(w) for w in flows], n=query_variants)
  variants = rng.integers(0, query_variants, size=len(flows))
  return [dataclasses.replace(w, query=q[int(v)]) for w, q, v in zip(flows, queries, variants)
          if q is not None]
