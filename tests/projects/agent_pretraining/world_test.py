"""Call parsing and call-accuracy scoring on hand-built cases."""
import pytest

from rl_jax.projects.agent_pretraining.world import (Api, Call, call_correct, parse_call,
                                                      word_tokenizer)

API = Api("gura", "peli", "mare", (("zi", "int"), ("go", "word")), "kidi")
CALL = Call(API, ("6", "ruro"))


@pytest.mark.parametrize("completion,exact,schema,name", [
    ("call gura ( zi = 6 , go = ruro ) .", True, True, True),
    ("doc : peli mare -> gura . args : zi int , go word . returns kidi . "
     "call gura ( zi = 6 , go = ruro ) .", True, True, True),      # recalled doc, then the call
    ("call gura ( go = ruro , zi = 6 ) .", False, False, True),          # parameters out of order
    ("call gura ( zi = 7 , go = ruro ) .", False, True, True),          # wrong value
    ("call gura ( zi = 6 ) .", False, False, True),                      # missing parameter
    ("call gura ( zi = 6 , go = ruro , na = 1 ) .", False, False, True),  # extra parameter
    ("call bona ( zi = 6 , go = ruro ) .", False, False, False),         # wrong API
    ("call bona ( x ) . call gura ( zi = 6 , go = ruro )", True, True, True),  # the last counts
    ("call gura ( zi = 6 , go = ruro", False, False, False),             # unclosed: no call
    ("gura ( zi = 6 , go = ruro )", False, False, False),                # no call keyword
    ("call gura ( zi 6 , go = ruro )", False, False, False),             # malformed argument
    ("", False, False, False),
])
def test_call_correct_on_hand_built_completions(completion, exact, schema, name):
  assert call_correct(CALL, completion) == (exact, schema, name)


def test_parse_call_returns_name_and_pairs():
  assert parse_call("x call f ( a = 1 , b = z ) .") == ("f", (("a", "1"), ("b", "z")))
  assert parse_call("call f ( ) .") == ("f", ())


def test_word_tokenizer_round_trip_and_unknown_word():
  tok = word_tokenizer(["call", "gura", "("])
  assert tok.encode("call gura (") == [3, 4, 5]
  assert tok.decode([3, 4, 1, 0]) == "call gura"
  with pytest.raises(ValueError, match="unknown word 'zz'"):
    tok.encode("call zz")
