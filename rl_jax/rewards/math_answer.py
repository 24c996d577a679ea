"""Final-answer extraction and numeric equivalence for math word problems (GSM8K style).

`math_reward(completion, gold)` = 1.0 iff the answer extracted from the completion equals the gold
answer as an exact rational number (so "1,000", "$1000.00" and "1000" agree, and "0.5" == "1/2"),
else 0.0. Model text is only ever matched with regular expressions and parsed by
`fractions.Fraction` on a validated digit string: it is never evaluated.
"""
from __future__ import annotations

import fractions
import re

# A number inside free text: optional sign / currency, thousands commas, decimals, a/b, percent.
# [0-9] rather than \d: \d also matches non-ASCII digits, which Fraction/int would then accept.
#
# Exponent notation ("5e3", "1.5E-2", "1e999") is not a number here at all, nor is any piece of
# it: otherwise the leading "5" of "5e3" (or the "3" of "2e-3") is extracted and "5e3" scores
# as the gold "5". Exponents are refused rather than evaluated because a float exponent can
# overflow to inf ("1e999") and GSM8K-style golds are never written that way. Both checks look
# at the whole digit run, so backtracking cannot shorten "55e3" to "5" or "1.5e3" to "1".
_EXPONENT_AHEAD = r"[0-9.,/]*[eE][+-]?[0-9]"
_NUMBER_RE = re.compile(r"""
    (?<![\w.])                                  # token start: not the "5" in "x5" or "1.5"
    (?<![0-9.][eE][+-])                         # nor the exponent digits of "2e-3" / "5e+3"
    -?\$?-?                                     # -$5 and $-5
    (?=\.?[0-9])                                # a digit is ahead
    (?!""" + _EXPONENT_AHEAD + r""")            # ... but not the mantissa of "5e3", "1.5e-3"
    (?:[0-9]{1,3}(?:,[0-9]{3})+(?![0-9])|[0-9]+)?   # integer part, thousands commas allowed
    (?:\.[0-9]+)?                               # decimals ("5." at a sentence end stays "5")
    (?:/[0-9]+)?                                # a/b
    %?
""", re.VERBOSE)
_PLAIN_RE = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)")
_RATIO_RE = re.compile(r"[+-]?[0-9]+/[0-9]+")
_THOUSANDS_RE = re.compile(r"[+-]?[0-9]{1,3}(?:,[0-9]{3})+(?:\.[0-9]+)?")
_FRAC_RE = re.compile(r"\\[dt]?frac\{([^{}]*)\}\{([^{}]*)\}")
_TEXT_RE = re.compile(r"\\(?:text|mathrm|textbf|mbox)\{[^{}]*\}")
_HASH_RE = re.compile(r"####[ \t]*([^\n]*)")
_ANSWER_IS_RE = re.compile(r"answer(?:\s+is|\s*:)\s*:?([^\n]*)", re.IGNORECASE)
_MAX_LEN = 200  # longer "numbers" are not answers; also bounds Fraction's work


def normalize_number(s: str | None) -> fractions.Fraction | None:
  """The exact value of a written number, or None if `s` is not one number.

  Accepts: surrounding whitespace, `$` / `\\$`, `%` (dropped, not divided by 100: GSM8K golds
  are written without it), thousands commas ("1,234"), one trailing '.', a sign (also U+2212),
  decimals, `a/b`, `\\frac{a}{b}`, LaTeX spacing and `\\text{units}`, and one pair of braces.
  """
  if not isinstance(s, str):
    return None
  t = s.strip()
  if not t or len(t) > _MAX_LEN:
    return None
  t = _TEXT_RE.sub("", t)
  for junk in ("\\!", "\\,", "\\;", "\\ ", "\\$", "\\%", "$", "%", "\\left", "\\right"):
    t = t.replace(junk, "")
  t = t.replace("\u2212", "-").strip()
  if t.startswith("{") and t.endswith("}"):
    t = t[1:-1].strip()
  t = _FRAC_RE.sub(lambda m: f"{m.group(1).strip()}/{m.group(2).strip()}", t)
  t = re.sub(r"\s*([+\-/])\s*", r"\1", t)  # "- 5" -> "-5", "1 / 2" -> "1/2"
  if t.endswith(".") and not t.endswith(".."):
    t = t[:-1]
  if "," in t:
    if not _THOUSANDS_RE.fullmatch(t):  # "1,5" or "1,2,3" is not one number
      return None
    t = t.replace(",", "")
  if _PLAIN_RE.fullmatch(t) or _RATIO_RE.fullmatch(t):
    try:
      return fractions.Fraction(t)
    except (ValueError, ZeroDivisionError):  # "1/0"
      return None
  return None


def _pick(segment: str) -> str | None:
  """The answer inside a located segment: all of it if it is a number, else its first number,
  else the (non-numeric) segment itself."""
  segment = segment.strip()
  if not segment:
    return None
  if normalize_number(segment) is not None:
    return segment
  m = _NUMBER_RE.search(segment)
  return m.group(0) if m else segment


def _last_boxed(text: str) -> str | None:
  """Content of the last `\\boxed{...}` / `\\fbox{...}`, braces balanced; None if absent."""
  start = max(text.rfind("\\boxed{"), text.rfind("\\fbox{"))
  if start < 0:
    return None
  i = text.index("{", start) + 1
  depth = 1
  for j in range(i, len(text)):
    depth += {"{": 1, "}": -1}.get(text[j], 0)
    if depth == 0:
      return text[i:j]
  return None  # unbalanced: not a usable box


def extract_answer(text: str) -> str | None:
  """The final answer written in `text`, as a string, or None if it has none.

  Preference order: the last `#### x` line (GSM8K), the last `\\boxed{x}`, the last
  "answer is x" / "answer: x", then the last number anywhere in the text.
  """
  if not isinstance(text, str):
    return None
  hashes = _HASH_RE.findall(text)
  if hashes and (picked := _pick(hashes[-1])) is not None:
    return picked
  boxed = _last_boxed(text)
  if boxed is not None and (picked := _pick(boxed)) is not None:
    return picked
  for segment in reversed(_ANSWER_IS_RE.findall(text)):
    m = _NUMBER_RE.search(segment)
    if m:
      return m.group(0)
  numbers = _NUMBER_RE.findall(text)
  return numbers[-1] if numbers else None


def answers_equal(pred: str | None, gold: str) -> bool:
  """Exact rational equality when the gold is a number; otherwise case- and
  whitespace-insensitive string equality (for non-numeric golds)."""
  if not isinstance(pred, str) or not isinstance(gold, str):
    return False
  gold_value = normalize_number(gold)
  if gold_value is not None:
    return normalize_number(pred) == gold_value
  return " ".join(pred.split()).casefold() == " ".join(gold.split()).casefold()


def math_reward(completion: str, gold_answer: str) -> float:
  """1.0 if the completion's extracted final answer equals `gold_answer`, else 0.0."""
  return 1.0 if answers_equal(extract_answer(completion), gold_answer) else 0.0
