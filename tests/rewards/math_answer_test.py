"""Answer extraction and numeric equivalence, on hand-written cases."""
from fractions import Fraction

import pytest

from rl_jax.rewards.math_answer import (answers_equal, extract_answer, math_reward,
                                        normalize_number)


@pytest.mark.parametrize("text,value", [
    ("72", Fraction(72)), (" 72 ", Fraction(72)), ("1,000", Fraction(1000)),
    ("12,345,678", Fraction(12345678)), ("$1,000.00", Fraction(1000)), ("\\$5", Fraction(5)),
    ("50%", Fraction(50)), ("-3", Fraction(-3)), ("\u22123", Fraction(-3)), ("- 5", Fraction(-5)),
    ("+4", Fraction(4)), ("5.", Fraction(5)), ("2.50", Fraction(5, 2)), (".5", Fraction(1, 2)),
    ("3/4", Fraction(3, 4)), ("-6/8", Fraction(-3, 4)), ("\\frac{1}{3}", Fraction(1, 3)),
    ("\\dfrac{2}{4}", Fraction(1, 2)), ("{42}", Fraction(42)), ("5\\text{ apples}", Fraction(5)),
    ("0.1", Fraction(1, 10)),  # exact, not the binary float 0.1
])
def test_normalize_number_accepts(text, value):
  assert normalize_number(text) == value


@pytest.mark.parametrize("text", [
    "", "abc", "1/0", "1,5", "1,23", "1,2,3", "5 - 3", "1e5", "2**10", "__import__('os')",
    "5 6", "1..", "\u0663", "1" * 300, None, 7,
])
def test_normalize_number_rejects(text):
  assert normalize_number(text) is None


@pytest.mark.parametrize("text,answer", [
    ("She sold 48/2 = 24 in May.\n#### 72", "72"),                   # #### beats the last number
    ("#### $1,000 dollars", "$1,000"),
    ("\\boxed{7}\n#### 8", "8"),                                     # #### beats \boxed
    ("The answer is \\boxed{\\frac{3}{4}}. Then 9.", "\\frac{3}{4}"),  # \boxed beats last number
    ("\\boxed{x = 5}", "5"),
    ("\\boxed{1} and later \\boxed{2}", "2"),
    ("\\boxed{5", "5"),                                              # unbalanced -> last number
    ("So the answer is 42 apples, not 43.", "42"),                   # "answer is" beats last
    ("Answer: -7 (checked 3 times)", "-7"),
    ("The answer is: $18.", "$18"),
    ("I think 5-3 = 2 and then 10.", "10"),                          # last number
    ("It costs -$4.50 in total", "-$4.50"),
    ("She has 1,234,567 coins", "1,234,567"),
    ("x5 and 1.5", "1.5"),
    ("1, 2, 3", "3"),
    ("####\nThe answer is 6", "6"),                                  # empty #### falls through
    ("no number here", None),
    ("", None),
    (None, None),
])
def test_extract_answer(text, answer):
  assert extract_answer(text) == answer


@pytest.mark.parametrize("pred,gold,equal", [
    ("72", "72", True), ("72.0", "72", True), ("$72", "72", True), ("1000", "1,000", True),
    ("0.5", "1/2", True), ("\\frac{1}{2}", "0.5", True), ("50%", "50", True),
    ("-3", "-3", True), ("3", "-3", False), ("72", "73", False), ("0.333", "1/3", False),
    (None, "72", False), ("seventy-two", "72", False), ("Yes", "yes", True), ("no", "yes", False),
])
def test_answers_equal(pred, gold, equal):
  assert answers_equal(pred, gold) is equal


@pytest.mark.parametrize("completion,gold,reward", [
    ("48/2 = 24, 48+24 = 72\n#### 72", "72", 1.0),
    ("The answer is 1000.", "1,000", 1.0),
    ("so \\boxed{10}", "10", 1.0),
    ("#### 71", "72", 0.0),
    ("I don't know", "72", 0.0),
    ("", "72", 0.0),
    (None, "72", 0.0),
])
def test_math_reward(completion, gold, reward):
  assert math_reward(completion, gold) == reward


# Exponent notation and non-finite spellings, with every gold that a partial match of them could
# equal: the mantissa ("5" of "5e3"), a backtracked prefix ("5" of "55e3", "1" of "1.5e3"), the
# exponent ("3" of "2e-3") and the value itself. None of them may score: golds are written as
# plain integers/decimals, and a float exponent can overflow ("1e999" -> inf).
_EXPONENT_CASES = [
    ("1e999", ("1", "999")),
    ("-1e999", ("-1", "1", "999")),
    ("5e3", ("5", "3", "5000")),
    ("5E3", ("5", "3", "5000")),
    ("1E5", ("1", "5", "100000")),
    ("5e+3", ("5", "3", "5000")),
    ("2e-3", ("2", "3", "-3", "0.002")),
    ("1.5e3", ("1", "1.5", "5", "1500")),
    ("55e3", ("5", "55", "3", "55000")),
    ("-5e3", ("-5", "5", "-5000")),
    ("$5e3", ("5", "5000")),
    ("1,000e3", ("1", "1,000", "1000", "000")),
    ("5.e3", ("5", "5000")),
    ("inf", ("0", "1")),
    ("-inf", ("0", "-1", "1")),
    ("Infinity", ("0", "1")),
    ("nan", ("0", "1")),
]
_CONTEXTS = ["{}", "#### {}", "The answer is {}", "The answer is {}.", "Answer: {}",
             "\\boxed{{{}}}", "so \\boxed{{{}}} eggs", "We get {} eggs in total."]


@pytest.mark.parametrize("context", _CONTEXTS)
@pytest.mark.parametrize("written,golds", _EXPONENT_CASES)
def test_exponent_and_non_finite_never_match_a_numeric_gold(written, golds, context):
  completion = context.format(written)
  for gold in golds:
    assert math_reward(completion, gold) == 0.0, (completion, gold)


@pytest.mark.parametrize("text", ["1e999", "5e3", "55e3", "1.5e3", "2e-3", "5e+3", "1E5", "-5e3",
                                  "The answer is 5e3", "it is 1.5E-2 m"])
def test_no_number_is_extracted_from_exponent_notation(text):
  assert extract_answer(text) is None


@pytest.mark.parametrize("completion,gold", [
    ("5", "5"), ("#### 5", "5"), ("The answer is 5.", "5"), ("\\boxed{5}", "5"),
    ("She has 5 eggs", "5"), ("5eggs", "5"), ("5 e3", "5"), ("x5 and 1.5", "1.5"),
    ("The answer is 1,500.", "1500"), ("#### $1,000.00", "1000"), ("-3", "-3"),
    ("1/2", "0.5"), ("a speed of 3e-2 m/s, so 7 laps", "7"),        # an exponent elsewhere
    ("2e-3 is small.\n#### 4", "4"), ("\\boxed{1e5} no wait \\boxed{12}", "12"),
])
def test_ordinary_answers_still_score(completion, gold):
  assert math_reward(completion, gold) == 1.0
