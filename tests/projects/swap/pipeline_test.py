"""The runlocal shrink of the SWAP study through the one loop (`rl_jax.main`): SFT, the three
RL arms (outcome-only, uniform penalty, SWAP), the evaluator and the report all run and write
coherent outputs (a pipeline check, not the effect size), with non-zero rewards and gradients;
plus the task's oracle on hand cases."""
import json
import os

import numpy as np

from rl_jax import main as main_lib
from rl_jax import metrics as metrics_lib
from rl_jax.projects.swap import task as task_lib


def test_oracle_labels_hand_cases():
  p = task_lib.Problem(7, (("+", 5), ("-", 3)), "9", ("7+5=12", "12-3=9"), "")
  assert p.prompt == "7+5-3"
  text = "q7+5-3;7+5=12;v7+5=12;d12>7;12-3=9;7+5=12;A9"
  steps = task_lib.split(text)
  assert steps == ["q7+5-3", "7+5=12", "v7+5=12", "d12>7", "12-3=9", "7+5=12"]
  # necessary: the two running totals, first occurrence only (the repeat is redundant)
  assert task_lib.step_labels(p, steps) == [False, True, False, False, True, False]
  assert task_lib.necessary_kept(p, text) == 1.0
  assert task_lib.necessary_kept(p, "7+5=12;A9") == 0.5
  assert task_lib.reward(p, text) == 1.0 and task_lib.reward(p, "12-3=9;A8") == 0.0
  assert task_lib.reward(p, "no trigger 9") == 0.0


def test_demonstrations_are_verbose_and_correct():
  t = task_lib.verbose_arith_task(seed=0, train_size=50, eval_size=10)
  for p in t.train:
    steps = task_lib.split(p.completion)
    labels = task_lib.step_labels(p, steps)
    assert task_lib.reward(p, p.completion) == 1.0
    assert sum(labels) == len(p.necessary) and 2 <= len(steps) - sum(labels) <= 4
  assert not {p.prompt for p in t.train} & {p.prompt for p in t.eval}


def test_runlocal_pipeline(load_config, tmp_path):
  config = load_config("swap_tiny_arith")
  summary = main_lib.run(config, str(tmp_path), show_progress=False)
  arms = ("rl_penalty=none", "rl_penalty=uniform", "rl_penalty=swap")
  assert set(summary["eval"]) == {"sft", *arms}
  records = metrics_lib.read_metrics(str(tmp_path / "metrics.jsonl"))
  for arm in arms:
    rows = [r for r in records if r.get("stage") == arm and "rollout/len_mean" in r]
    assert len(rows) == 2, arm
    assert max(r["grad/norm"] for r in rows) > 0, arm
    assert max(r["correct/mean"] for r in rows) > 0, arm
    assert all("swap/num_steps/mean" in r for r in rows)
  swap_rows = [r for r in records if r.get("stage") == "rl_penalty=swap" and "swap/penalty_mean"
               in r]
  none_rows = [r for r in records if r.get("stage") == "rl_penalty=none" and "swap/penalty_mean"
               in r]
  assert all(r["swap/penalty_mean"] == 0.0 for r in none_rows)  # outcome-only: no penalty
  assert any(r["swap/penalty_mean"] > 0 for r in swap_rows)
  sft = summary["eval"]["sft"]
  assert 0 < sft["eval/accuracy"] <= 1 and sft["eval/len_mean"] > 0
  assert sft["eval/steps_scored"] > 0
  results = json.load(open(tmp_path / "results.json"))
  assert set(results["policies"]) == {"sft", *arms}
  np.testing.assert_allclose(results["swap/shorter_than_outcome"],
                             1 - summary["eval"]["rl_penalty=swap"]["eval/len_mean"]
                             / summary["eval"]["rl_penalty=none"]["eval/len_mean"])
  for name in ("results.md", "curves.png", "final.png"):
    assert os.path.getsize(tmp_path / name) > 0
