"""How tool calls and responses are written as text, and a registry of named syntaxes.

A `CallSyntax` is the only place that knows the tags: the env parses the policy's segment with
it, the rollout loop stops a turn on its `stop_strings` and puts a tool's text into the context
through `format_response`, and SFT demonstrations write calls with `format_call`, so training
data, rollouts and parsing agree by construction.

Registered here on import of `rl_jax.tools`: "json" and "json_chat" (`rl_jax.tools.json_syntax`).
A project registers its own syntax when its module is imported.
"""
from __future__ import annotations

import abc

from typing import Any, Callable, Mapping, Protocol, runtime_checkable

from rl_jax.tools.episode import MalformedCall, ToolCall


@runtime_checkable
class CallSyntax(Protocol):
  """parse(text): the call in a policy segment, `MalformedCall(reason)` for a broken attempt,
  None when the segment holds no call (it is an answer); never raises on model output.
  format_call(name, arguments): the text of a call, as the model should write it.
  format_response(text): how a tool's text enters the context after a call.
  stop_strings: strings whose token ends a policy turn (e.g. the call's close tag)."""
  stop_strings: tuple[str, ...]

  def parse(self, text: str) -> ToolCall | MalformedCall | None:
    ...

  def format_call(self, name: str, arguments: Mapping[str, Any]) -> str:
    ...

  def format_response(self, text: str) -> str:
    ...


def tagged_call(text: str, *, call_open: str, call_close: str, response_open: str,
                response_close: str) -> tuple[str, str] | MalformedCall | None:
  """The envelope every tag-delimited syntax shares: (body, raw call text) of the one call in a
  policy segment, None if the segment holds no call, or `MalformedCall` for a model-written
  response tag, a stray or missing close tag, a nested call, a second call or text after the
  call. Text before the open tag is allowed (reasoning)."""
  if response_open in text or response_close in text:
    return MalformedCall(f"the model wrote a {response_open} tag")
  start = text.find(call_open)
  if start < 0:
    return MalformedCall(f"{call_close} without {call_open}") if call_close in text else None
  if call_close in text[:start]:
    return MalformedCall(f"{call_close} without {call_open}")
  end = text.find(call_close, start)
  if end < 0:
    return MalformedCall(f"unclosed {call_open}")
  body = text[start + len(call_open):end]
  if call_open in body:
    return MalformedCall(f"nested {call_open}")
  rest = text[end + len(call_close):]
  if call_open in rest:
    return MalformedCall(f"more than one {call_open} in a turn (one call per turn)")
  if rest.strip():
    return MalformedCall(f"text after {call_close}")
  return body, text[start:end + len(call_close)]


class TaggedCallSyntax(abc.ABC):
  """Base of tag-delimited syntaxes: `parse` finds the call's envelope (`tagged_call`, with the
  subclass's `CALL_OPEN` / `CALL_CLOSE` / `RESPONSE_OPEN` / `RESPONSE_CLOSE` tags) and hands
  the body to `parse_body(body, raw)`, the one thing a syntax of this kind defines."""
  CALL_OPEN = "<tool_call>"
  CALL_CLOSE = "</tool_call>"
  RESPONSE_OPEN = "<tool_response>"
  RESPONSE_CLOSE = "</tool_response>"

  def parse(self, text: str) -> ToolCall | MalformedCall | None:
    found = tagged_call(text, call_open=self.CALL_OPEN, call_close=self.CALL_CLOSE,
                        response_open=self.RESPONSE_OPEN, response_close=self.RESPONSE_CLOSE)
    if found is None or isinstance(found, MalformedCall):
      return found
    return self.parse_body(*found)

  @abc.abstractmethod
  def parse_body(self, body: str, raw: str) -> ToolCall | MalformedCall:
    """The call in the text between the tags; `raw` is the whole tagged call."""


_REGISTRY: dict[str, Callable[..., CallSyntax]] = {}


def register_syntax(name: str) -> Callable[[Callable[..., CallSyntax]], Callable[..., CallSyntax]]:
  """Decorator: registers a factory (a class, or any callable taking keyword options) under
  `name`. Registering a name twice is an error (two meanings for one config string)."""

  def register(factory: Callable[..., CallSyntax]) -> Callable[..., CallSyntax]:
    if name in _REGISTRY:
      raise ValueError(f"register_syntax: a syntax named {name!r} is already registered")
    _REGISTRY[name] = factory
    return factory

  return register


def syntax_names() -> list[str]:
  return sorted(_REGISTRY)


def get_syntax(name: str, **options: Any) -> CallSyntax:
  """A new syntax by registered name; `options` go to its factory (e.g. max_body_chars)."""
  if name not in _REGISTRY:
    raise ValueError(f"unknown tool-call syntax {name!r}; registered syntaxes: {syntax_names()}")
  return _REGISTRY[name](**options)


def resolve_syntax(syntax: str | CallSyntax) -> CallSyntax:
  """A registered name or a ready syntax object (what env constructors take)."""
  if isinstance(syntax, str):
    return get_syntax(syntax)
  if not isinstance(syntax, CallSyntax):
    raise ValueError(f"syntax: expected a registered name {syntax_names()} or an object with "
                     f"parse / format_call / format_response / stop_strings, got "
                     f"{type(syntax).__name__}")
  return syntax
