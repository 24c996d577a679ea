"""A generic `ToolEnv` over plain Python functions.

    env = FunctionToolEnv({"add": Tool(lambda a, b: a + b, cost=1.0, description="a + b")},
                          syntax="json", max_calls=4)

The policy calls a function by name with keyword arguments (the syntax decides how that is
written; "json" is `<tool_call>{"name": "add", "arguments": {"a": 1, "b": 2}}</tool_call>`).

Malformed (the episode ends; `MalformedCall` in the ledger): a syntax error, an unknown function
name, arguments that do not bind to the function's signature (missing, unexpected; checked with
`inspect.signature` BEFORE the call, so a bad call never runs), an argument whose value does not
match a plain JSON-type annotation (str, int, float, bool, list, dict; int is accepted for float,
bool is not an int), and a call beyond `max_calls`.

A well-formed call whose function raises is NOT malformed: the model chose a valid call and the
tool failed (a division by zero, a missing file). The response is `error: <Type>: <message>`,
the ledger entry has `error` set, the call's cost is charged (it ran), and the episode goes on.
A return value that is not a str is rendered as JSON (repr for what JSON cannot hold).
"""
from __future__ import annotations

import dataclasses
import inspect
import json
import typing
from typing import Any, Callable, Mapping

from rl_jax.tools.episode import Episode, MalformedCall, ToolCall, ToolResult
from rl_jax.tools.syntax import CallSyntax, resolve_syntax

_JSON_TYPES = (str, int, float, bool, list, dict)


@dataclasses.dataclass(frozen=True)
class Tool:
  """fn: called with the call's arguments as keywords. cost: per call, or a function of the
  response text (e.g. per token). description: for the prompt that lists the tools."""
  fn: Callable[..., Any]
  cost: float | Callable[[str], float] = 0.0
  description: str = ""

  def __post_init__(self):
    if not callable(self.fn):
      raise ValueError(f"Tool.fn must be callable, got {type(self.fn).__name__}")
    if not callable(self.cost) and float(self.cost) < 0:
      raise ValueError(f"Tool.cost must be >= 0 or a function of the response, got {self.cost}")

  def call_cost(self, response: str) -> float:
    return float(self.cost(response)) if callable(self.cost) else float(self.cost)


def _type_hints(fn: Callable[..., Any]) -> dict[str, Any]:
  """Resolved annotations; {} when they cannot be resolved (then types are not checked)."""
  try:
    return typing.get_type_hints(fn)
  except Exception:  # pylint: disable=broad-except  (forward refs, builtins without hints)
    return {}


def type_mismatch(value: Any, annotation: Any) -> str | None:
  """Why `value` does not fit a plain JSON-type annotation, or None (other annotations: None)."""
  if annotation not in _JSON_TYPES:
    return None
  if annotation is float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
  elif annotation is int:
    ok = isinstance(value, int) and not isinstance(value, bool)
  else:
    ok = isinstance(value, annotation)
  return None if ok else f"expected {annotation.__name__}, got {type(value).__name__}"


def render(value: Any) -> str:
  """A tool's return value as response text."""
  if isinstance(value, str):
    return value
  return json.dumps(value, ensure_ascii=False, default=repr)


class FunctionToolEnv:
  """`ToolEnv` over named `Tool`s (module docstring). `syntax`: a registered name or object."""

  def __init__(self, tools: Mapping[str, Tool], *, syntax: str | CallSyntax = "json",
               max_calls: int = 4):
    if not tools:
      raise ValueError("FunctionToolEnv.tools: expected at least one tool")
    for name, tool in tools.items():
      if not isinstance(tool, Tool):
        raise ValueError(f"FunctionToolEnv.tools[{name!r}]: expected a Tool, got "
                         f"{type(tool).__name__}")
    if max_calls < 0:
      raise ValueError(f"FunctionToolEnv.max_calls must be >= 0, got {max_calls}")
    self.tools = dict(tools)
    self.syntax = resolve_syntax(syntax)
    self.max_calls = max_calls
    self._signatures = {n: inspect.signature(t.fn) for n, t in self.tools.items()}
    self._hints = {n: _type_hints(t.fn) for n, t in self.tools.items()}

  def new_episode(self, item: Any) -> Episode:
    return Episode(item)

  def _check(self, call: ToolCall, episode: Episode | None) -> MalformedCall | None:
    if call.name not in self.tools:
      return MalformedCall(f"unknown tool {call.name!r}; known tools: {sorted(self.tools)}")
    try:
      bound = self._signatures[call.name].bind(**call.arguments)
    except TypeError as e:
      return MalformedCall(f"bad arguments for {call.name!r}: {e}")
    hints = self._hints[call.name]
    for arg, value in bound.arguments.items():
      why = type_mismatch(value, hints.get(arg))
      if why:
        return MalformedCall(f"bad arguments for {call.name!r}: {arg!r} {why}")
    if episode is not None and episode.ledger.n_calls >= self.max_calls:
      return MalformedCall(f"too many calls: max_calls={self.max_calls} already used")
    return None

  def parse_call(self, text: str, episode: Episode | None = None
                 ) -> ToolCall | MalformedCall | None:
    call = self.syntax.parse(text)
    if isinstance(call, ToolCall):
      return self._check(call, episode) or call
    return call

  def execute(self, call: ToolCall | MalformedCall, episode: Episode) -> ToolResult:
    """Runs `call` and records it in the ledger. The checks run again here (the loop may have
    parsed without the episode); a rejected `ToolCall` keeps its name in the ledger."""
    bad = call if isinstance(call, MalformedCall) else self._check(call, episode)
    if bad is not None:
      result = ToolResult(text="", cost=0.0, malformed=bad)
      episode.ledger.record(call, result)
      return result
    tool = self.tools[call.name]
    try:
      text, error = render(tool.fn(**call.arguments)), None
    except Exception as e:  # pylint: disable=broad-except  (a tool failure is a response)
      error = f"{type(e).__name__}: {e}"
      text = f"error: {error}"
    result = ToolResult(text=text, cost=tool.call_cost(text), error=error)
    episode.ledger.record(call, result)
    return result
