"""rl_jax.eval.hooks with hand-built parts: a report registered once (not again by its module's
copy run as a script) and rerun on the workdirs of the command line; an evaluator's held-out
problems and batch size; the one-record-per-problem greedy eval hook over padded chunks."""
import types

import jax
import pytest

from rl_jax.eval import hooks
from rl_jax.registry import Registry


@pytest.fixture
def reports(monkeypatch):
  """An empty REPORTS registry for the test (the real one keeps the projects' reports)."""
  registry = Registry("report")
  monkeypatch.setattr(hooks, "REPORTS", registry)
  return registry


def test_register_report_skips_the_script_copy(reports):
  def imported(workdir):
    return workdir

  def script_copy(workdir):
    return workdir

  assert hooks.register_report("demo", "rl_jax.projects.demo.report")(imported) is imported
  assert hooks.register_report("demo", "__main__")(script_copy) is script_copy
  assert reports.get("demo") is imported  # the script's copy registered nothing
  with pytest.raises(ValueError, match="already registered"):
    hooks.register_report("demo", "another.module")(script_copy)


def test_report_main_runs_the_registered_report_on_each_workdir(reports):
  seen = []
  hooks.register_report("demo", "rl_jax.projects.demo.report")(seen.append)
  hooks.report_main("demo", ["runs/a", "runs/b"])
  hooks.report_main("demo", [])
  assert seen == ["runs/a", "runs/b", "."]
  with pytest.raises(ValueError, match="unknown report 'other'"):
    hooks.report_main("other", ["runs/a"])


def fake_ctx(problems, batch_size):
  return types.SimpleNamespace(task=types.SimpleNamespace(name="demo_task", eval=problems),
                               exp=types.SimpleNamespace(eval=types.SimpleNamespace(
                                   batch_size=batch_size)))


def test_heldout_problems():
  ctx = fake_ctx(("p0", "p1", "p2", "p3", "p4"), 4)
  assert hooks.heldout_problems(ctx, 0, "demo") == (["p0", "p1", "p2", "p3", "p4"], 4)
  assert hooks.heldout_problems(ctx, 2, "demo") == (["p0", "p1"], 2)  # batch <= problems
  with pytest.raises(ValueError, match="eval.evaluator 'demo': task 'demo_task' has no "
                                       "held-out workflows"):
    hooks.heldout_problems(fake_ctx((), 4), 0, "demo", "workflows")


def test_greedy_records_evaluator():
  calls = []

  def rollout(params, padded, key, knobs):
    calls.append((params, list(padded), float(knobs.temperature)))
    return [p.upper() for p in padded]  # one output per padded row

  def records_of(chunk, out):
    return [{"problem": p, "text": t} for p, t in zip(chunk, out[:len(chunk)])]

  def summarize(records):
    return {"eval/n": float(len(records))}

  evaluate = hooks.greedy_records_evaluator(rollout, ["a", "b", "c"], 2, records_of, summarize)
  metrics, saved = evaluate("P", jax.random.key(0), stage="rl", final=True)
  assert metrics == {"eval/n": 3.0}
  assert saved == {"rl": [{"problem": "a", "text": "A"}, {"problem": "b", "text": "B"},
                          {"problem": "c", "text": "C"}]}  # the padding copy of "c" dropped
  assert calls == [("P", ["a", "b"], 0.0), ("P", ["c", "c"], 0.0)]  # greedy, fixed batch
  assert evaluate("P", jax.random.key(0), stage="rl") == ({"eval/n": 3.0}, None)  # not final
