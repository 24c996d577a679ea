"""QUBRIC's calls through `rl_jax.intelligence`: the disk cache (a second run of the same config
makes zero teacher, rewriter, rubric and judge calls) and a fault-injecting judge (retried with
backoff, counted; the configured policy fails the step or leaves the group out, never a 0).
The cache and retry machinery itself is tested in tests/intelligence/; these tests cover the
project's path through it (task pipeline and scorer)."""
import types

import numpy as np
import pytest

from rl_jax import intelligence
from rl_jax.projects.qubric import oracles, world
from rl_jax.projects.qubric.scoring import QubricScorer, qubric_scorer
from rl_jax.projects.qubric.task import Problem, build_items

ENTITY = world.Entity(("cheap", "heavy", "small", "week", "rugged", "loud", "fast", "year",
                       "bold", "phone"))
TEXTS = ["price=cheap style=bold", "price=cheap durability=rugged warranty=year",
         "weight=heavy", "price=fair"]


class _Out:
  def __init__(self, texts):
    self.texts = texts


class CountingTeacher(oracles.WorldTeacher):
  def __init__(self):
    self.invocations = 0

  def generate(self, prompts, n=1, temperature=0.0):
    self.invocations += 1
    return super().generate(prompts, n, temperature)


class FaultyWorldJudge(oracles.WorldJudge):
  """Raises TimeoutError on its first `timeouts` invocations, then judges."""

  def __init__(self, timeouts):
    self.timeouts, self.invocations = timeouts, 0

  def score(self, prompts, responses, references=None, criteria=None):
    self.invocations += 1
    if self.invocations <= self.timeouts:
      raise TimeoutError("judge did not answer")
    return super().score(prompts, responses, references, criteria)


def _problem():
  item = build_items([ENTITY], ["budget_buyer"], kappa=1.0, intelligence_spec=None,
                     prefix="t")[0]
  return Problem(item, "full")


def test_second_run_of_the_same_config_makes_zero_calls(tmp_path, monkeypatch):
  spec = {"cache_dir": str(tmp_path / "task_cache")}
  teachers = []

  def counting():
    teachers.append(CountingTeacher())
    return teachers[-1]

  monkeypatch.setattr(oracles, "WorldTeacher", counting)
  first = build_items([ENTITY], ["budget_buyer"], kappa=1.0, intelligence_spec=spec, prefix="t")
  second = build_items([ENTITY], ["budget_buyer"], kappa=1.0, intelligence_spec=spec, prefix="t")
  assert first == second
  assert teachers[0].invocations == 3 and teachers[1].invocations == 0
  monkeypatch.undo()

  # The scorer's judge and rubric generator, built from the config as a run builds them (a
  # relative cache_dir under the workdir), twice: the second run's calls are all cache hits.
  problem = _problem()
  ctx = types.SimpleNamespace(workdir=str(tmp_path / "workdir"))
  section = types.SimpleNamespace(group_size=4)
  cfg = {"cache_dir": "intelligence_cache"}
  results = []
  for _ in range(2):
    scorer = qubric_scorer(ctx=ctx, section=section, judge=cfg, rubric_generator=cfg)
    results.append(scorer([problem] * 4, _Out(TEXTS)))
  assert results[0].metrics["judge/calls"] == 2  # the consistency check, then the samples
  assert results[0].metrics["rubric_generator/calls"] == 1
  assert results[1].metrics["judge/calls"] == 0
  assert results[1].metrics["rubric_generator/calls"] == 0
  assert results[1].metrics["judge/cache_hits"] == 2 + 4
  np.testing.assert_array_equal(results[0].reward_B, results[1].reward_B)
  assert (tmp_path / "workdir" / "intelligence_cache").is_dir()


def _scorer(inner, policy, sleeps):
  judge = intelligence.build("judge", {"max_retries": 2, "backoff_s": 0.5, **policy}, inner,
                             sleep=sleeps.append)
  gen = intelligence.build("rubric_generator", None, oracles.ContrastiveRubricOracle())
  return QubricScorer(judge, gen, group_size=4, p_low=0.1, p_high=0.9, sigma_min=0.05)


def test_faulty_judge_is_retried_with_backoff_and_counted():
  sleeps = []
  reference = _scorer(oracles.WorldJudge(), {}, [])([_problem()] * 4, _Out(TEXTS))
  scores = _scorer(FaultyWorldJudge(timeouts=2), {}, sleeps)([_problem()] * 4, _Out(TEXTS))
  np.testing.assert_array_equal(scores.reward_B, reference.reward_B)  # same scores after retries
  assert sleeps == [0.5, 1.0]
  m = scores.metrics
  assert (m["judge/retries"], m["judge/timeouts"], m["judge/failures"], m["judge/dropped"]) == \
      (2, 2, 2, 0)


def test_judge_that_keeps_failing_fails_the_step_by_default():
  with pytest.raises(intelligence.IntelligenceError, match="judge: 3 tries failed.*Timeout"):
    _scorer(FaultyWorldJudge(timeouts=99), {}, [])([_problem()] * 4, _Out(TEXTS))


def test_drop_policy_leaves_the_group_out_never_scores_it_zero():
  """on_failure="drop": the first call (the rubric's consistency check) and its retries fail,
  so the pair has no rubric yet: no row is scored (judge_dropped 1, kept 0, reward 0 carries no
  advantage); the next visit, with the judge answering, scores the group like a judge that
  never failed."""
  sleeps = []
  inner = FaultyWorldJudge(timeouts=3)
  scorer = _scorer(inner, {"on_failure": "drop"}, sleeps)
  first = scorer([_problem()] * 4, _Out(TEXTS))
  np.testing.assert_array_equal(first.extras["qubric/judge_dropped"], [1, 1, 1, 1])
  np.testing.assert_array_equal(first.extras["qubric/kept"], [0, 0, 0, 0])
  assert np.ptp(first.reward_B) == 0  # one value per group: advantage 0
  assert first.metrics["judge/dropped"] == 2  # the two consistency rows
  assert first.metrics["judge/timeouts"] == 3
  again = scorer([_problem()] * 4, _Out(TEXTS))
  reference = _scorer(oracles.WorldJudge(), {}, [])([_problem()] * 4, _Out(TEXTS))
  np.testing.assert_array_equal(again.reward_B, reference.reward_B)
  np.testing.assert_array_equal(again.extras["qubric/kept"], [1, 1, 1, 1])
