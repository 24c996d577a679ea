"""Reading a finished run back (rl_jax.eval.run_results) from a workdir the test writes by hand:
stage plan, final evals, saved eval records, per-stage RL step records and quarter means."""
import json

import pytest

from rl_jax.eval import run_results

PLAN = [{"name": "sft", "kind": "sft"},
        {"name": "rl_a", "kind": "rl", "section": {"steps": 8}},
        {"name": "rl_b", "kind": "rl"},  # no final evaluation: left out of finished_stages
        {"name": "rl_c", "kind": "rl"}]
FINALS = {"rl_c": {"eval/accuracy": 0.25}, "sft": {"eval/accuracy": 0.5, "eval/len": 12.0},
          "rl_a": {"eval/accuracy": 0.75}}
# rl_a: 5 RL steps (rewards 0, 1, 2, 3, 4) and one eval-only record; sft: loss records only.
METRICS = ([{"stage": "sft", "step": i, "loss": 2.0 - i} for i in range(2)]
           + [{"stage": "rl_a", "step": i, "reward/mean": float(i), "correct/mean": i / 10}
              for i in range(5)]
           + [{"stage": "rl_a", "step": 4, "eval/accuracy": 0.7}]
           + [{"stage": "rl_b", "step": 0, "reward/mean": 9.0}])


def write_run(workdir, finals=FINALS, metrics=METRICS):
  (workdir / "config.json").write_text(json.dumps({"stage_plan": PLAN, "seed": 0}))
  (workdir / "summary.json").write_text(json.dumps({"eval": finals}))
  (workdir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in metrics))
  (workdir / "eval").mkdir()
  for name in ("rl_c", "sft"):  # written out of plan order; rl_a and rl_b saved none
    (workdir / "eval" / f"{name}.json").write_text(json.dumps({"records": [name, 1]}))


def test_plan_finals_records_and_saved_evals(tmp_path):
  write_run(tmp_path)
  assert run_results.stage_plan(str(tmp_path)) == PLAN
  assert run_results.final_evals(str(tmp_path)) == FINALS
  assert run_results.metric_records(str(tmp_path)) == METRICS
  saved = run_results.saved_evals(str(tmp_path))
  assert list(saved) == ["sft", "rl_c"]  # the plan's order, not the files'
  assert saved["rl_c"] == {"records": ["rl_c", 1]}


def test_final_evals_not_required(tmp_path):
  assert run_results.final_evals(str(tmp_path), required=False) == {}  # no summary.json
  with pytest.raises(FileNotFoundError):
    run_results.final_evals(str(tmp_path))
  (tmp_path / "summary.json").write_text(json.dumps({"wall_s": 3}))
  assert run_results.final_evals(str(tmp_path), required=False) == {}
  with pytest.raises(KeyError):
    run_results.final_evals(str(tmp_path))


def test_finished_stages(tmp_path):
  write_run(tmp_path)
  results = run_results.finished_stages(str(tmp_path))
  assert [r.name for r in results] == ["sft", "rl_a", "rl_c"]
  sft, rl_a, rl_c = results
  assert (sft.kind, sft.final, sft.training) == ("sft", FINALS["sft"], [])
  assert rl_a.stage == PLAN[1] and rl_c.training == []
  # Only rl_a's records with reward/mean: its eval-only record and rl_b's step are not its own.
  assert [r["step"] for r in rl_a.training] == [0, 1, 2, 3, 4]
  assert sft.row("SFT", ("accuracy", "len", "missing")) == {
      "policy": "SFT", "stage": "sft", "kind": "sft", "accuracy": 0.5, "len": 12.0,
      "missing": None}


def test_finished_stages_without_final_evaluation(tmp_path):
  write_run(tmp_path, finals={"other": {"eval/accuracy": 1.0}})
  with pytest.raises(ValueError, match="summary.json has no final evaluation of any stage"):
    run_results.finished_stages(str(tmp_path))


def test_quarter_means_by_hand():
  rows = [{"r": float(v)} for v in (1, 2, 3, 4, 5, 6, 7, 8, 9)]
  # 9 records: a quarter is 2; first (1 + 2) / 2, last (8 + 9) / 2.
  assert run_results.quarter_means(rows, "r") == (1.5, 8.5)
  # Fewer than 4 records: one record each end.
  assert run_results.quarter_means(rows[:3], "r") == (1.0, 3.0)
  assert run_results.quarter_means(rows[:1], "r") == (1.0, 1.0)
  # 8 records: a quarter is 2; first (1 + 2) / 2, last (7 + 8) / 2.
  assert run_results.quarter_means(rows[:8], "r") == (1.5, 7.5)


def test_quarter_means_of_a_finished_stage(tmp_path):
  write_run(tmp_path)
  rl_a = run_results.finished_stages(str(tmp_path))[1]
  # 5 steps: a quarter is 1 step; rewards 0 ... 4, correct 0.0 ... 0.4.
  assert run_results.quarter_means(rl_a.training, "reward/mean") == (0.0, 4.0)
  assert run_results.quarter_means(rl_a.training, "correct/mean") == pytest.approx((0.0, 0.4))
