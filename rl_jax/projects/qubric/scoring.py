"""The scorer of QUBRIC (docs/qubric.md), registered as "qubric": the weighted rubric reward of
each sample through the `Judge`, with the contrastive rubric, the consistency filter and the
learnability filter of the problem's arm (`task.ARMS`).

Per group (one pair, G samples of the training policy), at the pair's first visit:
  1. rubric: generic (RubricGenerator with reference "") or contrastive (reference
     {"good": a_T, "bad": a_pi}, a_pi = the group's first sample: a draw of the policy on q',
     docs/qubric.md, pipeline step 3);
  2. consistency (arms with it): keep the rubric iff R(a_T; C) > R(a_pi; C), both judged;
  3. every sample is judged per criterion; R = the weighted rubric reward (`rubric.py`);
  4. learnability (arms with it): keep the pair iff p_low < mean R < p_high and std R > sigma_min
     over the G samples.
A pair the filters reject has its group's rewards replaced by their mean: its advantage is 0,
the mean reward logged is unchanged, and the prompt source retires it (`source.py`). Rubrics
and verdicts are kept per pair for later visits.

Judge failures: every call goes through `rl_jax.intelligence` (disk cache, retries with
backoff, counted). With on_failure="fail" the step fails naming the call; with "drop" the
failed rows are left out of the reward: their group's rewards are replaced by the mean of its
judged rows (advantage 0 for the whole group), counted in `qubric/judge_dropped`. A failure is
never scored 0 as if the answer were wrong.

Extras (per row, logged as means): correct (key-point recall of the latent scenario, the
quantity the study measures), qubric/rubric_reward (before the filters), qubric/kept (1 where
the group carries signal), qubric/judge_dropped. Metrics: judge/* and rubric_generator/* call
counts (cumulative: calls, cache_hits, misses, retries, failures, timeouts, dropped),
qubric/reward_recall_corr (Pearson over the step's rows of the rubric reward and the recall; 0
where either is constant), qubric/rubrics, qubric/inconsistent_pairs, qubric/unlearnable_pairs
(cumulative).
"""
from __future__ import annotations

import json
import os
from typing import Any, Mapping, Sequence

import numpy as np

from rl_jax import intelligence
from rl_jax.projects.qubric import oracles, rubric as rb, world
from rl_jax.projects.qubric.task import ARMS
from rl_jax.rewards.scorers import SCORERS, Scores, check_rewards


def pearson(x_N, y_N) -> float:
  """Pearson correlation; 0.0 where either side is constant (no linear signal to measure)."""
  x, y = np.asarray(x_N, np.float64), np.asarray(y_N, np.float64)
  if x.size < 2 or x.std() == 0 or y.std() == 0:
    return 0.0
  return float(np.corrcoef(x, y)[0, 1])


def with_workdir(spec: Mapping[str, Any] | None, workdir: str) -> dict[str, Any]:
  """An intelligence config whose relative cache_dir is resolved against the run's workdir (so
  a rerun of the same command in the same workdir finds every answer)."""
  spec = dict(spec or {})
  cache_dir = spec.get("cache_dir", "")
  if cache_dir and not os.path.isabs(cache_dir):
    spec["cache_dir"] = os.path.join(workdir, cache_dir)
  return spec


class QubricScorer:
  """See the module docstring. `judge` / `rubric_generator`: protocol objects behind
  `rl_jax.intelligence` (built by the factory; tests inject faulty ones)."""

  def __init__(self, judge, rubric_generator, *, group_size: int, p_low: float, p_high: float,
               sigma_min: float):
    if not 0 <= p_low < p_high <= 1 or sigma_min < 0:
      raise ValueError(f"config rl.scorer: need 0 <= p_low < p_high <= 1 and sigma_min >= 0, "
                       f"got p_low={p_low}, p_high={p_high}, sigma_min={sigma_min}")
    self.judge, self.rubric_generator = judge, rubric_generator
    self.group_size = group_size
    self.p_low, self.p_high, self.sigma_min = p_low, p_high, sigma_min
    self.rubrics: dict[str, list[dict[str, Any]]] = {}  # pair key -> rubric
    self.rejected: dict[str, str] = {}  # pair key -> "inconsistent" | "unlearnable"
    self.visited: set[str] = set()

  @staticmethod
  def pair_key(problem) -> str:
    return f"{problem.arm}/{problem.item.key}"

  def _judged_rewards(self, prompts, responses, rubrics) -> list[float | None]:
    """R per row, None for a row the judge dropped."""
    scores = self.judge.score(prompts, responses,
                              criteria=[[c["criterion"] for c in r] for r in rubrics])
    out = []
    for s, r in zip(scores, rubrics):
      if s is None:
        out.append(None)
        continue
      if not isinstance(s, (list, tuple)) or len(s) != len(r):
        raise ValueError(f"qubric scorer: the judge returned {s!r} for {len(r)} criteria")
      out.append(rb.rubric_reward(s, [c["weight"] for c in r]))
    return out

  def _build_rubrics(self, groups: Sequence[tuple[Any, str]]) -> None:
    """Rubrics (and the consistency verdicts) for first-visit pairs: (problem, a_pi) each."""
    refs = []
    for p, sample in groups:
      arm = ARMS[p.arm]
      refs.append("" if arm.rubric == "generic" else
                  json.dumps({"good": p.reference, "bad": sample}, sort_keys=True))
    made = self.rubric_generator.generate_rubrics([p.prompt for p, _ in groups], refs)
    check = []
    for (p, sample), rubric in zip(groups, made):
      if rubric is None:  # dropped: tried again at the next visit
        continue
      rb.check_rubric(rubric, f"rubric of {p.item.key}")
      self.rubrics[self.pair_key(p)] = [dict(c) for c in rubric]
      if ARMS[p.arm].consistency:
        check.append((p, sample))
    if check:
      rubrics = [self.rubrics[self.pair_key(p)] for p, _ in check]
      rewards = self._judged_rewards(
          [p.prompt for p, _ in check] * 2, [p.reference for p, _ in check] +
          [s for _, s in check], rubrics * 2)
      n = len(check)
      for i, (p, _) in enumerate(check):
        teacher, policy = rewards[i], rewards[n + i]
        if teacher is None or policy is None:  # judge dropped: decide at the next visit
          del self.rubrics[self.pair_key(p)]
        elif not rb.consistent(teacher, policy):
          self.rejected[self.pair_key(p)] = "inconsistent"

  def __call__(self, problems: Sequence[Any], out) -> Scores:
    g = self.group_size
    if len(problems) % g:
      raise ValueError(f"qubric scorer: {len(problems)} rows is not a multiple of G={g}")
    heads = problems[::g]
    texts = list(out.texts)
    new = [(p, texts[i * g]) for i, p in enumerate(heads) if self.pair_key(p) not in self.rubrics]
    if new:
      self._build_rubrics(new)
    has = [self.pair_key(p) in self.rubrics for p in problems]
    judged = self._judged_rewards([p.prompt for p, h in zip(problems, has) if h],
                                  [t for t, h in zip(texts, has) if h],
                                  [self.rubrics[self.pair_key(p)] for p, h in zip(problems, has)
                                   if h])
    it = iter(judged)
    raw = [next(it) if h else None for h in has]
    recall_B = np.asarray([world.key_point_recall(p.item.entity, p.item.scenario, t)
                           for p, t in zip(problems, texts)], np.float32)
    reward_B = np.zeros(len(problems), np.float32)
    kept_B = np.ones(len(problems), np.float32)
    dropped_B = np.asarray([r is None for r in raw], np.float32)
    for i, p in enumerate(heads):
      rows = slice(i * g, (i + 1) * g)
      values = [r for r in raw[rows] if r is not None]
      key = self.pair_key(p)
      if len(values) < g:  # judge dropped rows (or no rubric yet): no signal from this group
        reward_B[rows] = np.mean(values) if values else 0.0
        kept_B[rows] = 0.0
        continue
      reward_B[rows] = values
      if key not in self.visited:
        self.visited.add(key)
        if (key not in self.rejected and ARMS[p.arm].learnability and
            not rb.learnable(values, self.p_low, self.p_high, self.sigma_min)):
          self.rejected[key] = "unlearnable"
      if key in self.rejected:
        reward_B[rows] = np.mean(values)
        kept_B[rows] = 0.0
    raw_B = np.asarray([np.nan if r is None else r for r in raw], np.float32)
    judged_rows = ~np.isnan(raw_B)
    extras = {"correct": recall_B, "qubric/rubric_reward": np.where(judged_rows, raw_B, 0.0),
              "qubric/kept": kept_B, "qubric/judge_dropped": dropped_B}
    metrics = {**self.judge.calls.stats.metrics("judge"),
               **self.rubric_generator.calls.stats.metrics("rubric_generator"),
               "qubric/reward_recall_corr": pearson(raw_B[judged_rows], recall_B[judged_rows]),
               "qubric/rubrics": float(len(self.rubrics)),
               "qubric/inconsistent_pairs": float(sum(v == "inconsistent"
                                                      for v in self.rejected.values())),
               "qubric/unlearnable_pairs": float(sum(v == "unlearnable"
                                                     for v in self.rejected.values()))}
    return Scores(check_rewards(reward_B, "qubric scorer"), extras, metrics)


@SCORERS.register("qubric")
def qubric_scorer(*, ctx, section, p_low: float = 0.1, p_high: float = 0.9,
                  sigma_min: float = 0.05, judge: Mapping[str, Any] | None = None,
                  rubric_generator: Mapping[str, Any] | None = None) -> QubricScorer:
  """p_low / p_high / sigma_min: the learnability filter (docs/qubric.md, pipeline step 5:
  0.1, 0.9; sigma_min [I]); judge / rubric_generator: `rl_jax.intelligence.IntelligenceConfig`
  fields (default the world oracles, in-memory cache; a relative cache_dir is under the
  workdir)."""
  j = intelligence.build("judge", with_workdir(judge, ctx.workdir), oracles.WorldJudge(),
                         where="config rl.scorer.judge")
  r = intelligence.build("rubric_generator", with_workdir(rubric_generator, ctx.workdir),
                         oracles.ContrastiveRubricOracle(),
                         where="config rl.scorer.rubric_generator")
  return QubricScorer(j, r, group_size=section.group_size, p_low=p_low, p_high=p_high,
                      sigma_min=sigma_min)
