"""GSM8K loader: counts, parsing, and loud failures on malformed lines."""
import json
import pathlib

import pytest

from rl_jax.data.gsm8k import ASSET_DIR, MathProblem, load_gsm8k


def test_counts_and_first_row():
  train, test = load_gsm8k("train"), load_gsm8k("test")
  assert (len(train), len(test)) == (7473, 1319)
  assert train[0].question.startswith("Natalia sold clips to 48 of her friends")
  assert train[0].solution == ("Natalia sold 48/2 = <<48/2=24>>24 clips in May.\n"
                               "Natalia sold 48+24 = <<48+24=72>>72 clips altogether in April "
                               "and May.")
  assert train[0].answer == "72"


def test_every_answer_is_an_integer_and_solutions_hold_no_marker():
  for p in load_gsm8k("test"):
    assert "####" not in p.solution and p.answer == p.answer.strip()
    int(p.answer.replace(",", ""))  # GSM8K golds are integers, some with thousands commas


def test_licence_is_bundled():
  assert "MIT License" in (ASSET_DIR / "LICENSE").read_text()


def _write(tmp_path: pathlib.Path, lines: list[str]) -> pathlib.Path:
  path = tmp_path / "mini.jsonl"
  path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
  return path


GOOD = json.dumps({"question": "1+1?", "answer": "1+1=2\n#### 2"})


def test_explicit_path(tmp_path):
  path = _write(tmp_path, [GOOD, json.dumps({"question": "q", "answer": "#### -3.5"})])
  assert load_gsm8k(path=path) == [MathProblem("1+1?", "1+1=2", "2"),
                                   MathProblem("q", "", "-3.5")]


@pytest.mark.parametrize("bad,expected", [
    ('{"question": "q", "answer": "#### 1"', "invalid JSON"),
    (json.dumps({"question": "q"}), "missing key 'answer'"),
    (json.dumps({"answer": "#### 1"}), "missing key 'question'"),
    (json.dumps({"question": 3, "answer": "#### 1"}), "'question' is a int"),
    (json.dumps({"question": "q", "answer": "no marker"}), "0 times"),
    (json.dumps({"question": "q", "answer": "#### 1\n#### 2"}), "2 times"),
    (json.dumps({"question": "q", "answer": "x\n####   "}), "nothing after"),
    (json.dumps(["q", "a"]), "got a JSON list"),
    ("", "blank line"),
])
def test_malformed_line_names_file_and_line(tmp_path, bad, expected):
  path = _write(tmp_path, [GOOD, bad, GOOD])
  with pytest.raises(ValueError) as info:
    load_gsm8k(path=path)
  assert f"{path}:2:" in str(info.value)
  assert expected in str(info.value)


def test_bad_utf8_names_line(tmp_path):
  path = tmp_path / "bad.jsonl"
  path.write_bytes(GOOD.encode() + b"\n" + GOOD.encode() + b"\n\xff\xfe\n")
  with pytest.raises(ValueError, match=r"bad\.jsonl:3: not UTF-8"):
    load_gsm8k(path=path)


def test_bad_split_and_missing_file(tmp_path):
  with pytest.raises(ValueError, match="split"):
    load_gsm8k("validation")
  with pytest.raises(ValueError, match="not found"):
    load_gsm8k(path=tmp_path / "nope.jsonl")


@pytest.mark.parametrize("content,what", [
    (b"", "the file is empty"),
    (b"\n", "only blank lines"),
    (b"\n\n  \n\t\r\n", "only blank lines"),
    (b"   ", "only blank lines"),  # whitespace without a newline
])
def test_file_without_records_is_an_error_naming_it(tmp_path, content, what):
  path = tmp_path / "empty.jsonl"
  path.write_bytes(content)
  with pytest.raises(ValueError) as info:
    load_gsm8k(path=path)
  assert str(info.value).startswith(f"{path}: no records ({what}); expected one JSON object")


def test_blank_line_before_a_record_is_still_reported_by_line(tmp_path):
  path = _write(tmp_path, ["", "", GOOD])
  with pytest.raises(ValueError) as info:
    load_gsm8k(path=path)
  assert str(info.value).startswith(f"{path}:1: blank line; expected a JSON object")
