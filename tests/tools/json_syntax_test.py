"""The Qwen3 / Hermes JSON call syntax: strict parsing, formatting, registry."""
import time

import pytest

from rl_jax import tokenizers
from rl_jax.tools import JsonCallSyntax, MalformedCall, ToolCall, get_syntax, register_syntax

JSON = get_syntax("json")


def _call(body: str) -> str:
  return f"<tool_call>{body}</tool_call>"


@pytest.mark.parametrize("text, name, arguments", [
    (_call('{"name": "calc", "arguments": {"expr": "2+3"}}'), "calc", {"expr": "2+3"}),
    # Qwen3's own layout: newlines around the JSON, trailing whitespace after the close tag.
    ('<tool_call>\n{"name": "calc", "arguments": {"expr": "2+3"}}\n</tool_call>\n  ', "calc",
     {"expr": "2+3"}),
    # Reasoning before the call is allowed.
    ('I should add. <tool_call>{"name": "add", "arguments": {"a": 1, "b": 2.5}}</tool_call>',
     "add", {"a": 1, "b": 2.5}),
    # A missing "arguments" means {} (documented choice).
    (_call('{"name": "now"}'), "now", {}),
    (_call('{"arguments": {}, "name": "now"}'), "now", {}),
    # Unicode names and values; nested argument values.
    (_call('{"name": "übersetze", "arguments": {"text": "日本語 ✓", "opts": {"k": [1, null]}}}'),
     "übersetze", {"text": "日本語 ✓", "opts": {"k": [1, None]}}),
    (_call('{"name": "s", "arguments": {"q": "a \\"quoted\\" <b>"}}'), "s",
     {"q": 'a "quoted" <b>'}),
])
def test_valid_calls(text, name, arguments):
  got = JSON.parse(text)
  assert got == ToolCall(name, arguments)
  assert got.raw == text[text.index("<tool_call>"):text.index("</tool_call>") + 12]


@pytest.mark.parametrize("text", ["", "the answer is 5", "<answer> 5 </answer>",
                                  "I could call a tool_call but won't"])
def test_no_call_is_an_answer(text):
  assert JSON.parse(text) is None


@pytest.mark.parametrize("text, reason", [
    (_call('{"arguments": {"x": 1}}'), '"name" must be a non-empty string'),
    (_call('{"name": "", "arguments": {}}'), '"name" must be a non-empty string'),
    (_call('{"name": 3, "arguments": {}}'), '"name" must be a non-empty string'),
    (_call('{"name": "f", "arguments": [1, 2]}'), '"arguments" must be a JSON object'),
    (_call('{"name": "f", "arguments": "{\\"x\\": 1}"}'), '"arguments" must be a JSON object'),
    (_call('{"name": "f", "arguments": {"x": 1}'), "invalid JSON"),
    (_call("{'name': 'f', 'arguments': {}}"), "invalid JSON"),
    (_call(""), "invalid JSON"),
    (_call('{"name": "f"} {"name": "g"}'), "invalid JSON"),  # two objects
    (_call('{"name": "f", "arguments": {"x": NaN}}'), "invalid JSON"),
    (_call('{"name": "f", "name": "g"}'), "duplicate keys ['name']"),
    (_call('["f", {}]'), "must be a JSON object, got list"),
    (_call('"f"'), "must be a JSON object, got str"),
    (_call('{"name": "f", "arguments": {}, "id": 7}'), "unexpected keys ['id']"),
    ('<tool_call>{"name": "f", "arguments": {}}', "unclosed <tool_call>"),
    ('{"name": "f", "arguments": {}}</tool_call>', "</tool_call> without <tool_call>"),
    ('</tool_call> ' + _call('{"name": "f"}'), "</tool_call> without <tool_call>"),
    ('<tool_call><tool_call>{"name": "f"}</tool_call>', "nested <tool_call>"),
    (_call('{"name": "f"}') + " so the answer is 4", "text after </tool_call>"),
    (_call('{"name": "f"}') + _call('{"name": "g"}'), "one call per turn"),
    ('<tool_response>5</tool_response> the answer is 5', "wrote a <tool_response> tag"),
    (_call('{"name": "f"}') + "</tool_response>", "wrote a <tool_response> tag"),
    (_call("[" * 50000), "invalid JSON"),  # deep nesting: RecursionError, caught
])
def test_malformed_calls(text, reason):
  got = JSON.parse(text)
  assert isinstance(got, MalformedCall), got
  assert reason in got.reason


def test_one_megabyte_argument_is_malformed_in_bounded_time():
  text = _call('{"name": "f", "arguments": {"x": "' + "a" * (1 << 20) + '"}}')
  start = time.perf_counter()
  got = JSON.parse(text)
  assert time.perf_counter() - start < 0.05
  assert isinstance(got, MalformedCall) and "exceeds the cap of 65536" in got.reason
  # The cap is configurable: a larger one accepts the same call.
  big = get_syntax("json", max_body_chars=2 << 20).parse(text)
  assert isinstance(big, ToolCall) and len(big.arguments["x"]) == 1 << 20


def test_format_call_round_trips_and_matches_qwen3():
  args = {"expr": "2+3", "note": "ü"}
  text = JSON.format_call("calc", args)
  assert text == '<tool_call>\n{"name": "calc", "arguments": {"expr": "2+3", "note": "ü"}}' \
      '\n</tool_call>'
  assert JSON.parse("thinking... " + text) == ToolCall("calc", args)
  assert JSON.stop_strings == ("</tool_call>",)


def test_format_response_modes():
  assert JSON.format_response("5") == "<tool_response>5</tool_response>"
  chat = get_syntax("json_chat")
  assert chat.response_mode == "chat" and JSON.response_mode == "plain"
  assert chat.stop_strings == ("</tool_call>", "<|im_end|>")
  # The chat form is what the ChatML template renders for a tool turn after an assistant turn.
  assistant = 'x<tool_call>{"name": "f"}</tool_call>'
  rendered = tokenizers.chat_template([
      {"role": "user", "content": "q"}, {"role": "assistant", "content": assistant},
      {"role": "tool", "content": "5"}])
  assert rendered.endswith(assistant + chat.format_response("5"))
  assert chat.format_response("5") == ("<|im_end|>\n<|im_start|>user\n<tool_response>\n5\n"
                                       "</tool_response><|im_end|>\n<|im_start|>assistant\n")


def test_registry_and_validation():
  with pytest.raises(ValueError, match=r"registered syntaxes: \[.*'json', 'json_chat'"):
    get_syntax("xml")
  with pytest.raises(ValueError, match="already registered"):
    register_syntax("json")(JsonCallSyntax)
  with pytest.raises(ValueError, match="response_mode"):
    JsonCallSyntax(response_mode="html")
  with pytest.raises(ValueError, match="max_body_chars"):
    JsonCallSyntax(max_body_chars=0)
