"""GSM8K (Cobbe et al., 2021, "Training Verifiers to Solve Math Word Problems", arXiv:2110.14168).

The train (7,473) and test (1,319) JSONL files are bundled in `rl_jax/data/assets/gsm8k/` under
their MIT licence (`LICENSE` beside them). Each line is `{"question": str, "answer": str}` where
`answer` is the worked solution (with `<<a*b=c>>` calculator annotations) followed by a final line
`#### <answer>`.

The loader is strict: every line must parse, so a corrupt or truncated file fails loudly with
`file:line` instead of silently shrinking the data set.
"""
from __future__ import annotations

import dataclasses
import json
import os
import pathlib
from typing import Iterator

ASSET_DIR = pathlib.Path(__file__).resolve().parent / "assets" / "gsm8k"
SPLITS = ("train", "test")
_MARKER = "####"


@dataclasses.dataclass(frozen=True)
class MathProblem:
  """`solution`: the worked text before `####` (annotations kept); `answer`: the text after it."""

  question: str
  solution: str
  answer: str


def _parse_line(line: str, where: str) -> MathProblem:
  expected = 'a JSON object {"question": str, "answer": str ending in "#### <answer>"}'
  try:
    row = json.loads(line)
  except json.JSONDecodeError as e:
    raise ValueError(f"{where}: invalid JSON ({e.msg} at column {e.colno}); "
                     f"expected {expected}") from None
  if not isinstance(row, dict):
    raise ValueError(f"{where}: got a JSON {type(row).__name__}; expected {expected}")
  for key in ("question", "answer"):
    if key not in row:
      raise ValueError(f"{where}: missing key {key!r} (keys: {sorted(row)}); "
                       f"expected {expected}")
    if not isinstance(row[key], str):
      raise ValueError(f"{where}: key {key!r} is a {type(row[key]).__name__}; "
                       f"expected {expected}")
  text = row["answer"]
  count = text.count(_MARKER)
  if count != 1:
    raise ValueError(f"{where}: 'answer' contains {_MARKER!r} {count} times; expected "
                     f"exactly one final '{_MARKER} <answer>'")
  solution, answer = text.split(_MARKER)
  answer = answer.strip()
  if not answer:
    raise ValueError(f"{where}: nothing after {_MARKER!r} in 'answer'; expected "
                     f"'{_MARKER} <answer>'")
  return MathProblem(question=row["question"], solution=solution.rstrip(), answer=answer)


def resolve_path(split: str = "train", path: str | os.PathLike | None = None) -> pathlib.Path:
  """The JSONL file of the bundled `split`, or `path` (which must exist)."""
  if path is None:
    if split not in SPLITS:
      raise ValueError(f"split: expected one of {SPLITS}, got {split!r}")
    path = ASSET_DIR / f"{split}.jsonl"
  path = pathlib.Path(path)
  if not path.is_file():
    raise ValueError(f"GSM8K file not found: {path}")
  return path


def iter_gsm8k(path: str | os.PathLike) -> Iterator[tuple[int, MathProblem]]:
  """(line number, problem) for every line of the JSONL file at `path`, strictly.

  Raises ValueError naming `file:line` for any malformed line (bad JSON, missing or non-string
  key, no or several `####`, empty answer, blank line, bad UTF-8); no row is ever skipped.
  A file with no records (0 bytes, or only blank lines) raises ValueError naming the file:
  an empty data set would otherwise train or evaluate on nothing without complaint (and an
  eval accuracy over 0 problems is meaningless), typically after a failed download or copy.
  The tfds builder of the data layer (`rl_jax.data.builders.Gsm8k`) reads through this too.
  """
  path = pathlib.Path(path)
  count = 0
  with open(path, "rb") as f:  # bytes, so a bad encoding is also reported with its line
    for lineno, raw in enumerate(f, start=1):
      try:
        line = raw.decode("utf-8")
      except UnicodeDecodeError as e:
        raise ValueError(f"{path}:{lineno}: not UTF-8 ({e.reason} at byte {e.start}); "
                         f"expected a UTF-8 JSON object") from None
      if not line.strip():
        if not count and not f.read().strip():  # nothing but blank lines: say so
          raise _no_records(path, "only blank lines")
        raise ValueError(f"{path}:{lineno}: blank line; expected a JSON object")
      count += 1
      yield lineno, _parse_line(line, f"{path}:{lineno}")
  if not count:
    raise _no_records(path, "the file is empty")


def load_gsm8k(split: str = "train", path: str | os.PathLike | None = None) -> list[MathProblem]:
  """All problems of the bundled `split`, or of the JSONL file at `path` (then `split` is unused).
  Errors as `iter_gsm8k` (file:line of the first malformed line)."""
  return [problem for _, problem in iter_gsm8k(resolve_path(split, path))]


def _no_records(path: pathlib.Path, what: str) -> ValueError:
  return ValueError(f"{path}: no records ({what}); expected one JSON object "
                    f'{{"question": str, "answer": str}} per line')
