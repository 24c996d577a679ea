"""Benchmark suites: named sets of tasks, each scored by its type's parser and metric.

    suite = EVAL_SUITES.get("shopping_mmlu")(data_dir="data")          # -> Suite
    results = score_suite(suite, {task: generations})                   # -> {task: TaskResult}
    report = suite_report(suite, results)                               # per task and per skill

A `Suite` maps task name -> `BenchTask(type, metric, examples, skill)`; the type fixes the parser
and the per-example score, the metric names the benchmark's metric (Shopping MMLU's strings:
"accuracy", "hit rate@3", "ndcg", "micro f1", "rougel", "bleu", "jp-bleu", "sent-transformer",
"multilingual-sent-transformer"; "gsm8k" for the math answer). A task's score is the mean of its
examples' scores, except micro-F1, which pools TP/FP/FN over the task; a skill's score is the
mean of its tasks' scores (arXiv 2410.20745, `skill_wise_eval/skill_evaluation.py`).

`EVAL_SUITES` (suite name -> loader) is a registry of its own, apart from the training loop's
`TASKS`: a suite is evaluated, never trained on.
"""
from __future__ import annotations

import dataclasses
import json
from typing import Any, Mapping, Sequence

import numpy as np

from rl_jax.eval import metrics_shopping as m
from rl_jax.registry import Registry

EVAL_SUITES: Registry = Registry("eval suite")

TASK_TYPES = ("multiple_choice", "retrieval", "ranking", "ner", "generation", "math")

# metric name -> the task type it belongs to
METRIC_TYPES = {
    "accuracy": "multiple_choice", "hit rate@3": "retrieval", "ndcg": "ranking",
    "micro f1": "ner", "rougel": "generation", "bleu": "generation", "jp-bleu": "generation",
    "sent-transformer": "generation", "multilingual-sent-transformer": "generation",
    "gsm8k": "math",
}


@dataclasses.dataclass(frozen=True)
class Example:
  """One item: the full prompt text (system prompt included) and the truth the metric reads
  (a label string, a list of ints / relevances / entity strings, a reference text or list)."""
  prompt: str
  truth: Any
  where: str = ""  # "file, row i": named in errors


@dataclasses.dataclass(frozen=True)
class BenchTask:
  """A task of a suite: its type's parser and metric score every generation.

  max_new_tokens: the benchmark's output budget for this task (multiple choice 1, others 100 in
  Shopping MMLU's skill-wise evaluation).
  """
  name: str
  skill: str
  task_type: str
  metric: str
  examples: tuple[Example, ...]
  max_new_tokens: int

  def __post_init__(self):
    if self.task_type not in TASK_TYPES:
      raise ValueError(f"task {self.name!r}: unknown task type {self.task_type!r}; expected one "
                       f"of {TASK_TYPES}")
    if METRIC_TYPES.get(self.metric) != self.task_type:
      raise ValueError(f"task {self.name!r}: metric {self.metric!r} does not score a "
                       f"{self.task_type} task; metrics: {METRIC_TYPES}")


@dataclasses.dataclass(frozen=True)
class Suite:
  name: str
  tasks: Mapping[str, BenchTask]
  system_prompt: str = ""

  def skills(self) -> list[str]:
    return sorted({t.skill for t in self.tasks.values()})


@dataclasses.dataclass(frozen=True)
class TaskResult:
  """score: the task's metric; per_example: each example's score (TP/FP/FN triples for NER)."""
  score: float
  per_example: list
  parsed: list


def parse(task_type: str, generation: str, truth: Any) -> Any:
  """What the metric reads from a generation (the type's parser)."""
  if task_type == "multiple_choice":
    return m.mc_first_char(generation)
  if task_type == "retrieval":
    return m.retrieved_ids(generation)
  if task_type == "ranking":
    return m.ranked_ids(generation, len(truth))
  if task_type == "ner":
    return m.ner_entities(generation)
  if task_type == "math":
    from rl_jax.rewards import math_answer  # pylint: disable=g-import-not-at-top
    return math_answer.extract_answer(generation)
  return generation


def example_score(metric: str, generation: str, truth: Any, embedders: Mapping[str, Any]):
  """The per-example score of `metric` (a (TP, FP, FN) triple for micro f1)."""
  if metric == "accuracy":
    return m.mc_accuracy(generation, str(truth))
  if metric == "hit rate@3":
    return m.hit_rate(generation, truth)
  if metric == "ndcg":
    return m.ndcg_eval(generation, truth)
  if metric == "micro f1":
    return m.ner_counts(generation, truth)
  if metric == "rougel":
    return m.rouge_l(generation, truth)
  if metric in ("bleu", "jp-bleu"):
    return m.bleu(generation, truth, japanese=metric == "jp-bleu")
  if metric in ("sent-transformer", "multilingual-sent-transformer"):
    return m.embedding_similarity(generation, truth, embedders[metric])
  if metric == "gsm8k":
    from rl_jax.rewards import math_answer  # pylint: disable=g-import-not-at-top
    return float(math_answer.math_reward(generation, str(truth)))
  raise ValueError(f"unknown metric {metric!r}; expected one of {sorted(METRIC_TYPES)}")


def aggregate(metric: str, per_example: Sequence) -> float:
  """Task score: micro-F1 of pooled counts, else the mean of the example scores."""
  if metric == "micro f1":
    return m.micro_f1(per_example)
  return float(np.mean(per_example)) if len(per_example) else 0.0


def default_embedders(kind: str = "ngram") -> dict[str, m.Embedder]:
  """The embedders of the two embedding metrics: "ngram" (the tiny hashing encoder, no
  download) or "sentence-transformers" (the benchmark's models, optional dependency)."""
  if kind == "ngram":
    e = m.NgramEmbedder()
    return {"sent-transformer": e, "multilingual-sent-transformer": e}
  if kind == "sentence-transformers":
    return {"sent-transformer": m.SentenceTransformerEmbedder("all-MiniLM-L6-v2"),
            "multilingual-sent-transformer":
                m.SentenceTransformerEmbedder("paraphrase-multilingual-MiniLM-L12-v2")}
  raise ValueError(f"unknown embedder {kind!r}; expected 'ngram' or 'sentence-transformers'")


class _LazyEmbedders(dict):
  """Builds the embedders on first use (no sentence-transformers import for suites without
  embedding metrics)."""

  def __init__(self, kind: str):
    super().__init__()
    self.kind = kind

  def __missing__(self, key):
    self.update(default_embedders(self.kind))
    return dict.__getitem__(self, key)


def score_task(task: BenchTask, generations: Sequence[str],
               embedders: Mapping[str, Any] | None = None) -> TaskResult:
  if len(generations) != len(task.examples):
    raise ValueError(f"task {task.name!r}: {len(generations)} generations for "
                     f"{len(task.examples)} examples")
  embedders = _LazyEmbedders("ngram") if embedders is None else embedders
  per = [example_score(task.metric, g, ex.truth, embedders)
         for g, ex in zip(generations, task.examples)]
  parsed = [parse(task.task_type, g, ex.truth) for g, ex in zip(generations, task.examples)]
  return TaskResult(aggregate(task.metric, per), per, parsed)


def score_suite(suite: Suite, generations: Mapping[str, Sequence[str]],
                embedders: Mapping[str, Any] | None = None) -> dict[str, TaskResult]:
  missing = sorted(set(suite.tasks) - set(generations))
  if missing:
    raise ValueError(f"suite {suite.name!r}: no generations for tasks {missing}")
  embedders = _LazyEmbedders("ngram") if embedders is None else embedders
  return {name: score_task(task, generations[name], embedders)
          for name, task in suite.tasks.items()}


def skill_scores(suite: Suite, task_scores: Mapping[str, float]) -> dict[str, float]:
  """skill -> mean of its tasks' scores."""
  by_skill: dict[str, list[float]] = {}
  for name, task in suite.tasks.items():
    by_skill.setdefault(task.skill, []).append(task_scores[name])
  return {s: float(np.mean(v)) for s, v in sorted(by_skill.items())}


def suite_report(suite: Suite, results: Mapping[str, TaskResult]) -> dict[str, Any]:
  """JSON-able report: per task (skill, type, metric, n, score), per skill, overall mean."""
  tasks = {name: {"skill": t.skill, "type": t.task_type, "metric": t.metric,
                  "n": len(t.examples), "score": results[name].score}
           for name, t in suite.tasks.items()}
  skills = skill_scores(suite, {k: v["score"] for k, v in tasks.items()})
  return {"suite": suite.name, "tasks": tasks, "skills": skills,
          "overall": float(np.mean(list(skills.values()))) if skills else 0.0}


def format_table(report: Mapping[str, Any]) -> str:
  """A markdown table: one row per task (grouped by skill), then one row per skill."""
  lines = ["| skill | task | type | metric | n | score |", "|---|---|---|---|---|---|"]
  for name, t in sorted(report["tasks"].items(), key=lambda kv: (kv[1]["skill"], kv[0])):
    lines.append(f"| {t['skill']} | {name} | {t['type']} | {t['metric']} | {t['n']} | "
                 f"{t['score']:.4f} |")
  for skill, score in report["skills"].items():
    lines.append(f"| **{skill}** | (skill mean) | | | | **{score:.4f}** |")
  lines.append(f"| **overall** | (mean of skills) | | | | **{report['overall']:.4f}** |")
  return "\n".join(lines)


def write_report(report: Mapping[str, Any], path: str) -> None:
  with open(path, "w", encoding="utf-8") as f:
    json.dump(report, f, indent=1)


