"""Shopping MMLU (arXiv 2410.20745) in its released file layout, as a `Suite`.

Two layouts of the authors' `data/` folder are read (README of their code, "Data formats"):

  skill-wise   <data_dir>/skills/<skill>.json, JSON lines with fields input_field (the formatted
               question), output_field (the truth), task_name, task_type ("multiple-choice" or
               another type name) and metric (a metric string of `suites.METRIC_TYPES`). The
               skill is the file name (e.g. skill1_concept).
  task-wise    <data_dir>/<type>/<task>_dataset.<ext> with type in multiple_choice (csv),
               retrieval, ranking, named_entity_recognition, generation (JSON lines):
                 csv: columns question, choices (a Python list literal of 4 strings), answer
                      (0-3, the index into choices; 1-5 for review_rating_prediction tasks,
                      whose questions list no choices);
                 json: input_field and target_field (output_field also accepted).
               The task's skill comes from <data_dir>/skill_map.json ({task: skill}) when it
               exists, else "ungrouped". A generation task's metric follows the reference's
               task-name rule: "extraction" -> rougel, "translation" -> bleu ("JP" in the name:
               jp-bleu), "multilingual" -> multilingual-sent-transformer, else sent-transformer.

Prompts are the benchmark's system prompt + the question; a task-wise multiple-choice question is
formatted as the reference's `format_example` does ("\\n0. c0\\n1. c1 ..." then "\\nAnswer: ").
Output budgets (skill-wise protocol): multiple choice `mc_max_new_tokens` (1; the task-wise
scripts use 4), every other type `max_new_tokens` (100).

Every malformed input is an error naming the file, the row (1-based data row; JSON lines count
lines) and the field.
"""
from __future__ import annotations

import ast
import csv
import json
import os
from typing import Any

from rl_jax.eval.metrics_shopping import SYSTEM_PROMPT
from rl_jax.eval.suites import EVAL_SUITES, METRIC_TYPES, BenchTask, Example, Suite

TYPE_DIRS = {"multiple_choice": "multiple_choice", "retrieval": "retrieval",
             "ranking": "ranking", "named_entity_recognition": "ner", "generation": "generation"}
TYPE_METRIC = {"retrieval": "hit rate@3", "ranking": "ndcg", "ner": "micro f1"}
MC_CHOICES = ("0", "1", "2", "3")
RATING_CHOICES = ("1", "2", "3", "4", "5")


class DataError(ValueError):
  """Bad benchmark data: the message names the file, row and field."""


def _err(path: str, row: int | None, field: str | None, msg: str) -> DataError:
  where = path + (f", row {row}" if row is not None else "") + (
      f", field {field!r}" if field is not None else "")
  return DataError(f"{where}: {msg}")


def is_rating_task(task: str) -> bool:
  return "review_rating_prediction" in task


def generation_metric(task: str) -> str:
  """The reference's metric of a generation task, chosen by its name (module docstring)."""
  if "extraction" in task:
    return "rougel"
  if "translation" in task:
    return "jp-bleu" if "JP" in task else "bleu"
  if "multilingual" in task:
    return "multilingual-sent-transformer"
  return "sent-transformer"


def format_mc_question(question: str, choices: list[str] | None) -> str:
  """The reference's task-wise multiple-choice text: numbered choices, then "Answer: "."""
  text = question
  for j, c in enumerate(choices or ()):
    text += f"\n{j}. {c}"
  return text + "\nAnswer: "


def read_jsonl(path: str) -> list[tuple[int, dict]]:
  """(line number, record) of every non-empty line."""
  out = []
  with open(path, encoding="utf-8") as f:
    for i, line in enumerate(f, start=1):
      if not line.strip():
        continue
      try:
        rec = json.loads(line)
      except json.JSONDecodeError as e:
        raise _err(path, i, None, f"not a JSON object ({e.msg})") from e
      if not isinstance(rec, dict):
        raise _err(path, i, None, f"expected a JSON object, got {type(rec).__name__}")
      out.append((i, rec))
  if not out:
    raise _err(path, None, None, "no records")
  return out


def _need(path: str, row: int, rec: dict, field: str) -> Any:
  if field not in rec:
    raise _err(path, row, field, f"missing; the record has {sorted(rec)}")
  return rec[field]


def check_truth(task_type: str, truth: Any, path: str, row: int, field: str,
                choices: tuple[str, ...] = ()) -> Any:
  """The truth in the form the type's metric reads, or an error naming file, row and field."""
  def bad(expected):
    return _err(path, row, field, f"expected {expected}, got {truth!r}")
  if task_type == "multiple_choice":
    label = str(truth).strip()
    if isinstance(truth, float) and truth.is_integer():
      label = str(int(truth))
    if label not in choices:
      raise bad(f"a label in {list(choices)}")
    return label
  if task_type in ("retrieval", "ranking"):
    if not isinstance(truth, list) or not truth or not all(
        isinstance(x, (int, float)) and not isinstance(x, bool) for x in truth):
      raise bad("a non-empty list of numbers" + (" (item ids)" if task_type == "retrieval"
                                                  else " (relevance of item 1, 2, ...)"))
    return list(truth)
  if task_type == "ner":
    if not isinstance(truth, list) or not all(isinstance(x, str) for x in truth):
      raise bad("a list of entity strings")
    return list(truth)
  if isinstance(truth, str) or (isinstance(truth, list) and truth
                                and all(isinstance(x, str) for x in truth)):
    return truth
  raise bad("a reference string or a non-empty list of strings")


def _mc_task_examples(path: str, task: str) -> list[Example]:
  rating = is_rating_task(task)
  out = []
  with open(path, encoding="utf-8", newline="") as f:
    reader = csv.DictReader(f)
    header = reader.fieldnames or []
    needed = ("question", "answer") if rating else ("question", "choices", "answer")
    for col in needed:
      if col not in header:
        raise _err(path, None, col, f"missing column; the header is {header}")
    for row, rec in enumerate(reader, start=1):
      for col in needed:
        if rec.get(col) is None:
          raise _err(path, row, col, "missing value (row shorter than the header)")
      choices = None
      if not rating:
        try:
          choices = ast.literal_eval(rec["choices"])
        except (ValueError, SyntaxError) as e:
          raise _err(path, row, "choices", f"not a Python list literal: {rec['choices'][:60]!r}"
                     ) from e
        if not isinstance(choices, (list, tuple)) or len(choices) != len(MC_CHOICES):
          raise _err(path, row, "choices", f"expected a list of {len(MC_CHOICES)} choices, got "
                     f"{choices!r}")
      label = check_truth("multiple_choice", rec["answer"], path, row, "answer",
                          RATING_CHOICES if rating else MC_CHOICES)
      out.append(Example(SYSTEM_PROMPT + format_mc_question(rec["question"], choices), label,
                         f"{path}, row {row}"))
  if not out:
    raise _err(path, None, None, "no rows")
  return out


def _json_task_examples(path: str, task_type: str) -> list[Example]:
  out = []
  for row, rec in read_jsonl(path):
    prompt = _need(path, row, rec, "input_field")
    if not isinstance(prompt, str):
      raise _err(path, row, "input_field", f"expected a string, got {prompt!r}")
    field = "target_field" if "target_field" in rec or "output_field" not in rec \
        else "output_field"
    truth = check_truth(task_type, _need(path, row, rec, field), path, row, field)
    out.append(Example(SYSTEM_PROMPT + prompt, truth, f"{path}, row {row}"))
  return out


def load_task_wise(data_dir: str, *, mc_max_new_tokens: int = 1, max_new_tokens: int = 100,
                   tasks: tuple[str, ...] = (), max_per_task: int = 0) -> Suite:
  skill_map: dict[str, str] = {}
  map_path = os.path.join(data_dir, "skill_map.json")
  if os.path.exists(map_path):
    with open(map_path, encoding="utf-8") as f:
      skill_map = json.load(f)
  found: dict[str, BenchTask] = {}
  for dirname, task_type in TYPE_DIRS.items():
    folder = os.path.join(data_dir, dirname)
    if not os.path.isdir(folder):
      continue
    for fname in sorted(os.listdir(folder)):
      ext = ".csv" if task_type == "multiple_choice" else ".json"
      if not fname.endswith("_dataset" + ext):
        continue
      name = fname[:-len("_dataset" + ext)]
      if tasks and name not in tasks:
        continue
      path = os.path.join(folder, fname)
      if task_type == "multiple_choice":
        examples, metric = _mc_task_examples(path, name), "accuracy"
      else:
        examples = _json_task_examples(path, task_type)
        metric = TYPE_METRIC.get(task_type) or generation_metric(name)
      found[name] = BenchTask(name, skill_map.get(name, "ungrouped"), task_type, metric,
                              tuple(examples[:max_per_task or None]),
                              mc_max_new_tokens if task_type == "multiple_choice"
                              else max_new_tokens)
  return Suite("shopping_mmlu", _select(found, tasks, data_dir), SYSTEM_PROMPT)


def load_skill_wise(data_dir: str, *, mc_max_new_tokens: int = 1, max_new_tokens: int = 100,
                    tasks: tuple[str, ...] = (), max_per_task: int = 0) -> Suite:
  folder = os.path.join(data_dir, "skills")
  examples: dict[str, list[Example]] = {}
  meta: dict[str, tuple[str, str, str, str]] = {}  # task -> (skill, type, metric, task_type)
  for fname in sorted(os.listdir(folder)):
    if not fname.endswith(".json"):
      continue
    skill, path = fname[:-len(".json")], os.path.join(folder, fname)
    for row, rec in read_jsonl(path):
      prompt = _need(path, row, rec, "input_field")
      name = str(_need(path, row, rec, "task_name"))
      raw_type = str(_need(path, row, rec, "task_type"))
      metric = str(_need(path, row, rec, "metric"))
      if metric not in METRIC_TYPES or metric == "gsm8k":
        raise _err(path, row, "metric", f"unknown metric {metric!r}; expected one of "
                   f"{sorted(k for k in METRIC_TYPES if k != 'gsm8k')}")
      task_type = METRIC_TYPES[metric]
      choices = RATING_CHOICES if is_rating_task(name) else MC_CHOICES
      # The skill files store labels as the answer character; rating labels are 1-5.
      truth = check_truth(task_type, _need(path, row, rec, "output_field"), path, row,
                          "output_field", choices)
      if name in meta and meta[name][:3] != (skill, task_type, metric):
        raise _err(path, row, "metric", f"task {name!r} was {meta[name][1:3]} in "
                   f"{meta[name][0]}, now ({task_type!r}, {metric!r}) in {skill}")
      meta[name] = (skill, task_type, metric, raw_type)
      examples.setdefault(name, []).append(Example(SYSTEM_PROMPT + prompt, truth,
                                                   f"{path}, row {row}"))
  found = {}
  for name, (skill, task_type, metric, raw_type) in meta.items():
    budget = mc_max_new_tokens if raw_type == "multiple-choice" or task_type == \
        "multiple_choice" else max_new_tokens
    found[name] = BenchTask(name, skill, task_type, metric,
                            tuple(examples[name][:max_per_task or None]), budget)
  return Suite("shopping_mmlu", _select(found, tasks, data_dir), SYSTEM_PROMPT)


def _select(found: dict[str, BenchTask], tasks: tuple[str, ...], data_dir: str
            ) -> dict[str, BenchTask]:
  unknown = sorted(set(tasks) - set(found))
  if unknown:
    raise ValueError(f"unknown task(s) {unknown} in {data_dir}; tasks found: {sorted(found)}")
  if not found:
    raise ValueError(f"{data_dir}: no Shopping MMLU task files; expected skills/<skill>.json or "
                     f"<type>/<task>_dataset.csv|json with <type> in {sorted(TYPE_DIRS)}")
  return dict(sorted(found.items()))


@EVAL_SUITES.register("shopping_mmlu")
def load_shopping_mmlu(data_dir: str, *, mc_max_new_tokens: int = 1, max_new_tokens: int = 100,
                       tasks: tuple[str, ...] = (), max_per_task: int = 0, **_) -> Suite:
  """The suite from `data_dir` in either released layout (skills/ wins when both exist)."""
  if not data_dir or not os.path.isdir(data_dir):
    raise ValueError(f"--data_dir={data_dir!r} is not a directory (the benchmark's data/ folder)")
  load = load_skill_wise if os.path.isdir(os.path.join(data_dir, "skills")) else load_task_wise
  return load(data_dir, mc_max_new_tokens=mc_max_new_tokens, max_new_tokens=max_new_tokens,
              tasks=tuple(tasks), max_per_task=max_per_task)
