"""FunctionToolEnv: name and argument checks before the call, tool errors, budget, ledger."""
import pytest

from rl_jax.tools import (CallSyntax, FunctionToolEnv, MalformedCall, Tool, ToolCall, ToolEnv,
                          get_syntax)

CALLS = []


def add(a: int, b: float = 0.0) -> float:
  CALLS.append(("add", a, b))
  return a + b


def divide(a, b):
  return a / b


def shout(text: str, **style) -> str:
  return text.upper() + ("!" * style.get("bangs", 0))


def _env(max_calls=4, syntax="json"):
  return FunctionToolEnv({"add": Tool(add, cost=1.0, description="a + b"),
                          "divide": Tool(divide, cost=2.0),
                          "shout": Tool(shout, cost=lambda response: 0.5 * len(response)),
                          "listing": Tool(lambda: {"files": ["a", "b"]})},
                         syntax=syntax, max_calls=max_calls)


def _text(name, **arguments):
  return get_syntax("json").format_call(name, arguments)


def test_protocol_and_execution_records_the_ledger():
  env = _env()
  assert isinstance(env, ToolEnv) and isinstance(env.syntax, CallSyntax)
  ep = env.new_episode("item")
  call = env.parse_call(_text("add", a=2, b=0.5), ep)
  assert call == ToolCall("add", {"a": 2, "b": 0.5})
  res = env.execute(call, ep)
  assert (res.text, res.cost, res.malformed, res.error) == ("2.5", 1.0, None, None)
  res = env.execute(env.parse_call(_text("shout", text="hi", bangs=2), ep), ep)
  assert (res.text, res.cost) == ("HI!!", 2.0)
  res = env.execute(env.parse_call(_text("listing"), ep), ep)
  assert res.text == '{"files": ["a", "b"]}'  # non-str results are rendered as JSON
  led = ep.ledger
  assert (led.n_calls, led.total_cost, led.call_costs, led.used_tool) == (3, 3.0, [1.0, 2.0, 0.0],
                                                                          True)
  e = led.entries[0]
  assert (e.name, e.arguments, e.response, e.cost, e.malformed, e.error, e.truncated) == \
      ("add", '{"a": 2, "b": 0.5}', "2.5", 1.0, None, None, False)
  assert led.entries[1].arguments == '{"text": "hi", "bangs": 2}'


@pytest.mark.parametrize("text, reason", [
    (_text("mul", a=1, b=2), "unknown tool 'mul'; known tools: ['add', 'divide', 'listing'"),
    (_text("add", b=1.0), "bad arguments for 'add': missing a required argument: 'a'"),
    (_text("add", a=1, c=2), "bad arguments for 'add': got an unexpected keyword argument 'c'"),
    (_text("add", a="1"), "bad arguments for 'add': 'a' expected int, got str"),
    (_text("add", a=True), "'a' expected int, got bool"),
    (_text("add", a=1.5), "'a' expected int, got float"),
    (_text("add", a=1, b="x"), "'b' expected float, got str"),
    (_text("shout", text=["no"]), "'text' expected str, got list"),
    ('<tool_call>{"name": "add"', "unclosed"),
])
def test_unknown_names_and_bad_arguments_are_malformed_and_never_run(text, reason):
  env = _env()
  ep = env.new_episode(None)
  CALLS.clear()
  call = env.parse_call(text, ep)
  assert isinstance(call, MalformedCall) and reason in call.reason, call
  res = env.execute(call, ep)
  assert res.malformed == call and res.text == "" and res.cost == 0.0
  assert CALLS == [] and ep.ledger.n_calls == 0 and ep.ledger.malformed_reasons == [call.reason]


def test_execute_rechecks_a_call_parsed_without_the_episode():
  env = _env()
  ep = env.new_episode(None)
  CALLS.clear()
  res = env.execute(ToolCall("add", {"a": "x"}), ep)  # not through parse_call
  assert res.malformed is not None and CALLS == []
  assert ep.ledger.entries[0].name == "add" and ep.ledger.entries[0].malformed is not None


def test_int_is_accepted_for_float_and_unannotated_args_are_not_type_checked():
  env = _env()
  assert env.parse_call(_text("add", a=1, b=2)) == ToolCall("add", {"a": 1, "b": 2})
  assert isinstance(env.parse_call(_text("divide", a="x", b=[1])), ToolCall)


def test_exception_inside_the_tool_is_an_error_response_and_the_episode_goes_on():
  env = _env()
  ep = env.new_episode(None)
  res = env.execute(env.parse_call(_text("divide", a=1, b=0), ep), ep)
  assert res.malformed is None
  assert res.error == "ZeroDivisionError: division by zero"
  assert res.text == "error: ZeroDivisionError: division by zero" and res.cost == 2.0
  # Types are unchecked for divide: a TypeError raised inside the tool is an error, not malformed.
  res = env.execute(env.parse_call(_text("divide", a="x", b=2), ep), ep)
  assert res.error.startswith("TypeError") and res.malformed is None
  res = env.execute(env.parse_call(_text("add", a=1, b=2), ep), ep)
  assert res.text == "3"
  led = ep.ledger
  assert (led.n_calls, led.n_errors, led.n_malformed) == (3, 2, 0)
  assert led.entries[0].error == "ZeroDivisionError: division by zero"


def test_max_calls():
  env = _env(max_calls=2)
  ep = env.new_episode(None)
  for _ in range(2):
    assert env.execute(env.parse_call(_text("add", a=1), ep), ep).malformed is None
  third = env.parse_call(_text("add", a=1), ep)
  assert isinstance(third, MalformedCall) and "max_calls=2" in third.reason
  # Without the episode the budget is unknown; execute enforces it.
  res = env.execute(env.parse_call(_text("add", a=1)), ep)
  assert "max_calls=2" in res.malformed.reason
  assert (ep.ledger.n_calls, ep.ledger.n_malformed, ep.ledger.total_cost) == (2, 1, 2.0)
  zero = _env(max_calls=0)
  assert isinstance(zero.parse_call(_text("add", a=1), zero.new_episode(None)), MalformedCall)


def test_chat_syntax_and_constructor_errors():
  assert _env(syntax="json_chat").syntax.response_mode == "chat"
  with pytest.raises(ValueError, match="unknown tool-call syntax 'yaml'"):
    _env(syntax="yaml")
  with pytest.raises(ValueError, match=r"tools\['f'\]: expected a Tool"):
    FunctionToolEnv({"f": add})
  with pytest.raises(ValueError, match="at least one tool"):
    FunctionToolEnv({})
  with pytest.raises(ValueError, match="max_calls must be >= 0"):
    FunctionToolEnv({"add": Tool(add)}, max_calls=-1)
  with pytest.raises(ValueError, match="Tool.cost"):
    Tool(add, cost=-1.0)
  with pytest.raises(ValueError, match="syntax: expected a registered name"):
    FunctionToolEnv({"add": Tool(add)}, syntax=3)
