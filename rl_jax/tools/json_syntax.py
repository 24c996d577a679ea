"""The Qwen3 / Hermes JSON tool-call convention, with a strict parser.

Qwen2.5 / Qwen3 chat templates (and the Hermes-2-Pro function-calling format they follow) have
the assistant write one call as

    <tool_call>
    {"name": "calc", "arguments": {"expr": "2+3"}}
    </tool_call>

and return the result in a user turn, `<tool_response>\\n...\\n</tool_response>` (see
`rl_jax.tokenizers.chat_template`, which renders `tool` messages the same way).

Two registered syntaxes differ only in how a response enters the context:
  "json"       plain:  `<tool_response>TEXT</tool_response>` right after the call (small models
               and text-only tokenizers with no chat markers);
  "json_chat"  chat:   the assistant turn is closed, the response is a ChatML user turn and a
               new assistant turn is opened, token for token what Qwen3's template renders:
               `<|im_end|>\\n<|im_start|>user\\n<tool_response>\\nTEXT\\n</tool_response>`
               `<|im_end|>\\n<|im_start|>assistant\\n`.

The parser is strict, since RL rewards what it accepts (a lenient parser teaches sloppy calls):
  - text before `<tool_call>` is allowed (reasoning); nothing but whitespace after the close tag;
  - exactly one JSON object between the tags, with keys "name" (non-empty string) and
    "arguments" (a JSON object); no other key, no duplicate key, no NaN / Infinity;
  - a missing "arguments" means `{}`: unambiguous for a function without parameters, and what
    `format_call` writes is always accepted. "arguments" as a JSON *string* (the OpenAI wire
    form) is malformed: in this convention it is an object;
  - one call per turn: a second `<tool_call>` (nested or after the first) is malformed;
  - an unclosed tag, a close tag without an open one, invalid JSON and a model-written
    `<tool_response>` tag are malformed;
  - the call body is capped (`max_body_chars`, default 64 Ki characters): a longer body is
    malformed before any JSON is decoded, so a 1 MB argument costs a string search, not a parse.
Every failure is a `MalformedCall(reason)`; the parser never raises on model output.
"""
from __future__ import annotations

import dataclasses
import functools
import json
from typing import Any, Mapping

from rl_jax.tools.episode import MalformedCall, ToolCall
from rl_jax.tools.syntax import TaggedCallSyntax, register_syntax

CALL_OPEN = "<tool_call>"
CALL_CLOSE = "</tool_call>"
RESPONSE_OPEN = "<tool_response>"
RESPONSE_CLOSE = "</tool_response>"
IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
RESPONSE_MODES = ("plain", "chat")
_KEYS = ("name", "arguments")


class _JsonError(ValueError):
  pass


def _reject_constant(token: str):
  raise _JsonError(f"{token} is not JSON")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
  out = dict(pairs)
  if len(out) != len(pairs):
    seen, dupes = set(), set()
    for k, _ in pairs:
      (dupes if k in seen else seen).add(k)
    raise _JsonError(f"duplicate keys {sorted(dupes)}")
  return out


def _decode(body: str) -> Any:
  """Strict JSON: one value, no NaN/Infinity, no duplicate keys (json.loads allows both)."""
  return json.loads(body, parse_constant=_reject_constant, object_pairs_hook=_no_duplicates)


def _call_from_object(obj: Any, raw: str) -> ToolCall | MalformedCall:
  if not isinstance(obj, dict):
    return MalformedCall(f"the call must be a JSON object, got {type(obj).__name__}")
  extra = sorted(set(obj) - set(_KEYS))
  if extra:
    return MalformedCall(f"unexpected keys {extra} in the call; expected {list(_KEYS)}")
  name = obj.get("name")
  if not isinstance(name, str) or not name.strip():
    return MalformedCall(f'"name" must be a non-empty string, got {name!r}')
  arguments = obj.get("arguments", {})
  if not isinstance(arguments, dict):
    return MalformedCall(f'"arguments" must be a JSON object, got {type(arguments).__name__}')
  return ToolCall(name, arguments, raw=raw)


@dataclasses.dataclass(frozen=True)
class JsonCallSyntax(TaggedCallSyntax):
  """Qwen3 / Hermes `<tool_call>{json}</tool_call>` calls (module docstring).

  response_mode: "plain" or "chat" (how `format_response` wraps a tool's text).
  max_body_chars: longest call body (between the tags) that is decoded; longer is malformed.
  """
  response_mode: str = "plain"
  max_body_chars: int = 65536

  def __post_init__(self):
    if self.response_mode not in RESPONSE_MODES:
      raise ValueError(f"JsonCallSyntax.response_mode must be one of {RESPONSE_MODES}, got "
                       f"{self.response_mode!r}")
    if self.max_body_chars < 1:
      raise ValueError(f"JsonCallSyntax.max_body_chars must be >= 1, got {self.max_body_chars}")

  @property
  def stop_strings(self) -> tuple[str, ...]:
    """The call's close tag; in chat mode also `<|im_end|>`, which ends an assistant turn (an
    answer) even with a tokenizer whose EOS is another token."""
    return (CALL_CLOSE,) if self.response_mode == "plain" else (CALL_CLOSE, IM_END)

  def parse_body(self, body: str, raw: str) -> ToolCall | MalformedCall:
    if len(body) > self.max_body_chars:
      return MalformedCall(f"call body of {len(body)} characters exceeds the cap of "
                           f"{self.max_body_chars} (JsonCallSyntax.max_body_chars)")
    try:
      obj = _decode(body)
    except (ValueError, RecursionError) as e:  # JSONDecodeError and _JsonError are ValueErrors
      return MalformedCall(f"invalid JSON in the call: {str(e)[:200]}")
    return _call_from_object(obj, raw)

  def format_call(self, name: str, arguments: Mapping[str, Any]) -> str:
    """Exactly Qwen3's template: `tojson` there is json.dumps(ensure_ascii=False)."""
    payload = json.dumps({"name": name, "arguments": dict(arguments)}, ensure_ascii=False)
    return f"{CALL_OPEN}\n{payload}\n{CALL_CLOSE}"

  def format_response(self, text: str) -> str:
    if self.response_mode == "plain":
      return f"{RESPONSE_OPEN}{text}{RESPONSE_CLOSE}"
    return (f"{IM_END}\n{IM_START}user\n{RESPONSE_OPEN}\n{text}\n{RESPONSE_CLOSE}{IM_END}\n"
            f"{IM_START}assistant\n")


register_syntax("json")(functools.partial(JsonCallSyntax, response_mode="plain"))
register_syntax("json_chat")(functools.partial(JsonCallSyntax, response_mode="chat"))
