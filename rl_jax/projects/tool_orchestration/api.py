"""The synthetic booking-like API set and its deterministic, cache-served environment
(seed S4, arXiv 2603.24709; docs/tool_orchestration.md).

Four domains (flights, hotels, cars, attractions), 14 functions with JSON schemas. Search
functions return ids that detail / search functions take as arguments (the dependent fields a
workflow wires together: `search_hotels(dest_id=<search_destination data[0].dest_id>)`). Four
functions (`hotel_reviews`, `nearby_airports`, `car_insurance`, `attraction_hours`) appear in no
workflow template: they are the distractors listed next to a workflow's functions in a prompt.

The environment is served from a response cache, as the paper's BookingAPI
(`environment/booking_api.py` of the authors' code): function -> {normalised arguments ->
response}. The cache is built by enumerating every function's small argument domain (cities,
days). Lookup normalises the arguments (`normalise_arguments`: numeric strings become numbers,
integral floats become ints [I], keys are sorted) and a miss returns an error response (no
fallback, no live backend: deterministic). Calls are parsed by the core's strict JSON syntax
(`rl_jax.tools.json_syntax`); an unparsable call, an unknown function, or a call past the budget
is a `MalformedCall` (ends the episode; the scorer gives it the configured reward). Wrongly
typed or missing arguments are NOT rejected: they are normalised and looked up like any call (a
"3" for day 3 hits the cache, as in the authors' environment), and the reward's structure and
value scores see the wrong type.
"""
from __future__ import annotations

import dataclasses
import json
from typing import Any, Iterator, Mapping

from rl_jax.tools import Episode, MalformedCall, ToolCall, ToolResult, get_syntax

CITIES = ("paris", "rome", "oslo", "lima", "cairo", "delhi")
DAYS = (1, 2, 3, 4)
DOMAINS = ("flights", "hotels", "cars", "attractions")


def _city(i: int) -> str:
  return str(i + 1)


@dataclasses.dataclass(frozen=True)
class ApiFunction:
  """name, domain, JSON schema of the parameters (all required), and the argument domain the
  cache enumerates (a list of argument dicts) with the response of each."""
  name: str
  domain: str
  parameters: Mapping[str, str]  # param -> JSON type ("string", "integer", "number")
  description: str

  @property
  def schema(self) -> dict[str, Any]:
    return {"name": self.name, "description": self.description,
            "parameters": {"type": "object", "required": list(self.parameters),
                           "properties": {p: {"type": t} for p, t in self.parameters.items()}}}


FUNCTIONS = {f.name: f for f in (
    ApiFunction("search_airport", "flights", {"query": "string"}, "airport id of a city"),
    ApiFunction("search_flights", "flights", {"from_id": "string", "to_id": "string",
                                              "day": "integer"}, "flights between airports"),
    ApiFunction("flight_details", "flights", {"flight_id": "string"}, "price of a flight"),
    ApiFunction("nearby_airports", "flights", {"query": "string"}, "airports near a city"),
    ApiFunction("search_destination", "hotels", {"query": "string"}, "destination id of a city"),
    ApiFunction("search_hotels", "hotels", {"dest_id": "string", "day": "integer"},
                "hotels at a destination"),
    ApiFunction("hotel_details", "hotels", {"hotel_id": "string"}, "stars of a hotel"),
    ApiFunction("hotel_reviews", "hotels", {"hotel_id": "string"}, "reviews of a hotel"),
    ApiFunction("search_cars", "cars", {"dest_id": "string", "day": "integer"},
                "rental cars at a destination"),
    ApiFunction("car_details", "cars", {"car_id": "string"}, "price of a rental car"),
    ApiFunction("car_insurance", "cars", {"car_id": "string"}, "insurance of a rental car"),
    ApiFunction("search_attractions", "attractions", {"dest_id": "string"},
                "attractions at a destination"),
    ApiFunction("attraction_details", "attractions", {"slug": "string"},
                "rating of an attraction"),
    ApiFunction("attraction_hours", "attractions", {"slug": "string"},
                "opening hours of an attraction"),
)}


def _entries(name: str) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
  """(arguments, response) of every cached call of `name`: the enumerated argument domain."""
  n = len(CITIES)
  for c, city in enumerate(CITIES):
    k = _city(c)
    if name == "search_airport":
      yield {"query": city}, {"data": [{"airport_id": "A" + k}]}
    elif name == "nearby_airports":
      yield {"query": city}, {"data": [{"airport_id": "A" + _city((c + 1) % n)}]}
    elif name == "search_destination":
      yield {"query": city}, {"data": [{"dest_id": "D" + k}]}
    elif name == "search_attractions":
      yield {"dest_id": "D" + k}, {"data": [{"slug": "P" + k}]}
    elif name == "attraction_details":
      yield {"slug": "P" + k}, {"data": {"rating": 3 + (c % 3)}}
    elif name == "attraction_hours":
      yield {"slug": "P" + k}, {"data": {"open": 8 + c % 3}}
    for day in DAYS:
      if name == "search_hotels":
        yield {"dest_id": "D" + k, "day": day}, {"data": [{"hotel_id": f"H{k}{day}"}]}
      elif name == "hotel_details":
        yield {"hotel_id": f"H{k}{day}"}, {"data": {"stars": 1 + (c + day) % 5}}
      elif name == "hotel_reviews":
        yield {"hotel_id": f"H{k}{day}"}, {"data": {"score": 5 + (c * day) % 5}}
      elif name == "search_cars":
        yield {"dest_id": "D" + k, "day": day}, {"data": [{"car_id": f"C{k}{day}"}]}
      elif name == "car_details":
        yield {"car_id": f"C{k}{day}"}, {"data": {"price": 20 + 5 * ((c + day) % 4)}}
      elif name == "car_insurance":
        yield {"car_id": f"C{k}{day}"}, {"data": {"cover": (c + day) % 2}}
      for t, _ in enumerate(CITIES):
        if t == c:
          continue
        if name == "search_flights":
          yield ({"from_id": "A" + k, "to_id": "A" + _city(t), "day": day},
                 {"data": [{"flight_id": f"F{k}{_city(t)}{day}"}]})
        elif name == "flight_details":
          yield ({"flight_id": f"F{k}{_city(t)}{day}"},
                 {"data": {"price": 100 + 10 * ((c + t + day) % 7)}})


def _number(text: str) -> int | float | None:
  try:
    value = float(text)
  except ValueError:
    return None
  return int(value) if value.is_integer() else value


def normalise_value(value: Any) -> Any:
  """Numeric strings -> numbers; integral floats -> ints [I] (the cache key of 2.0 and "2" is
  the key of 2); bools and everything else unchanged."""
  if isinstance(value, bool):
    return value
  if isinstance(value, str):
    number = _number(value.strip()) if value.strip() else None
    return value if number is None else number
  if isinstance(value, float) and value.is_integer():
    return int(value)
  return value


def normalise_arguments(arguments: Mapping[str, Any]) -> str:
  """The cache key of a call's arguments: canonical JSON of the normalised values, keys
  sorted."""
  return json.dumps({k: normalise_value(v) for k, v in arguments.items()}, sort_keys=True,
                    separators=(",", ":"), default=repr)


@dataclasses.dataclass
class ResponseCache:
  """function -> list of {"arguments", "response"} entries, and the normalised lookup."""
  entries: dict[str, list[dict[str, Any]]]

  def __post_init__(self):
    self._index = {name: {normalise_arguments(e["arguments"]): e["response"] for e in rows}
                   for name, rows in self.entries.items()}

  @classmethod
  def build(cls) -> "ResponseCache":
    return cls({name: [{"arguments": a, "response": r} for a, r in _entries(name)]
                for name in FUNCTIONS})

  def lookup(self, name: str, arguments: Mapping[str, Any]) -> dict[str, Any] | None:
    """The cached response, or None on a miss (no fallback)."""
    return self._index.get(name, {}).get(normalise_arguments(arguments))

  def __len__(self) -> int:
    return sum(len(rows) for rows in self.entries.values())


def miss_response(name: str) -> dict[str, Any]:
  return {"error": f"no cached response for {name} with these arguments"}


class CachedApiEnv:
  """`ToolEnv` over the response cache (module docstring). syntax: a registered call syntax
  ("json"); max_calls: the per-episode budget (a call past it is malformed)."""

  def __init__(self, cache: ResponseCache, *, syntax: str = "json", max_calls: int = 4,
               max_body_chars: int = 4096):
    """syntax: a registered JSON-style syntax name, built with `max_body_chars` (a longer call
    body is malformed before any JSON is decoded; the longest call here is ~90 characters)."""
    if max_calls < 0:
      raise ValueError(f"CachedApiEnv.max_calls must be >= 0, got {max_calls}")
    self.cache, self.max_calls = cache, max_calls
    self.syntax = get_syntax(syntax, max_body_chars=max_body_chars)

  def new_episode(self, item: Any) -> Episode:
    return Episode(item)

  def _check(self, call: ToolCall, episode: Episode | None) -> MalformedCall | None:
    if call.name not in FUNCTIONS:
      return MalformedCall(f"unknown function {call.name!r}")
    if episode is not None and episode.ledger.n_calls >= self.max_calls:
      return MalformedCall(f"too many calls: max_calls={self.max_calls} already used")
    return None

  def parse_call(self, text: str, episode: Episode | None = None
                 ) -> ToolCall | MalformedCall | None:
    """The syntax's parse only: the function name and the budget are checked in `execute`, so
    a call to an unknown function keeps its name in the ledger (the scorer can then treat it as
    the authors' parser does: a call that matches no step)."""
    return self.syntax.parse(text)

  def execute(self, call: ToolCall | MalformedCall, episode: Episode) -> ToolResult:
    bad = call if isinstance(call, MalformedCall) else self._check(call, episode)
    if bad is not None:
      result = ToolResult(text="", cost=0.0, malformed=bad)
      episode.ledger.record(call, result)
      return result
    response = self.cache.lookup(call.name, call.arguments)
    error = None
    if response is None:
      response = miss_response(call.name)
      error = response["error"]
    result = ToolResult(text=json.dumps(response, separators=(", ", ": ")), cost=1.0,
                        error=error)
    episode.ledger.record(call, result)
    return result
