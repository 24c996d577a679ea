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
