"""The S8 multi-seed stage comparison (`report.seeds`) on hand-made workdirs: per-stage call
accuracy and the paired counts and sign test, computed by hand."""
import json

import numpy as np
import pytest

from rl_jax.projects.agent_pretraining import report


def _workdir(path, stages):
  """A finished run's files as the loop writes them: config.json (the stage plan) and
  eval/<stage>.json. stages: {name: [(correct, schema_correct, name_correct) per call]}."""
  path.mkdir()
  (path / "eval").mkdir()
  plan = [{"name": name, "kind": "sft" if name.startswith("sft") else "pretrain", "section": {}}
          for name in stages]
  for name, calls in stages.items():
    records = [{"prompt": f"task {i}", "completion": "call", "correct": c, "schema_correct": s,
                "name_correct": n} for i, (c, s, n) in enumerate(calls)]
    (path / "eval" / f"{name}.json").write_text(json.dumps({"stage": name,
                                                            "records": records}))
  (path / "config.json").write_text(json.dumps({"seed": 0, "stage_plan": plan}))
  return str(path)


def test_seeds_counts_calls_only_one_stage_gets_right_pooled_over_runs(tmp_path):
  t, f = True, False
  a = _workdir(tmp_path / "s0", {
      "pretrain": [(f, t, t), (f, f, t), (f, f, f)],
      "pretrain_seed": [(t, t, t), (t, t, t), (f, f, f)],
      "sft": [(f, f, t), (t, t, t), (f, f, f)],
      "sft_stage1_only": [(t, t, t), (f, t, t), (f, f, f)]})
  b = _workdir(tmp_path / "s1", {
      "pretrain": [(f, f, f), (f, f, f)],
      "pretrain_seed": [(t, t, t), (f, f, t)],
      "sft": [(f, f, f), (f, f, f)],
      "sft_stage1_only": [(f, f, f), (t, t, t)]})
  out = report.seeds([a, b])
  assert out["per_seed"]["pretrain_seed"]["exact"] == pytest.approx([2 / 3, 1 / 2])
  assert out["per_seed"]["sft"]["name"] == pytest.approx([2 / 3, 0.0])
  # pretrain_seed vs pretrain, exact: run 0 calls 0 and 1 only a, run 1 call 0 only a: 3 vs 0
  # of 5 calls; two-sided sign test on 3 discordant: 2 * (1/2)^3 = 0.25.
  pe = out["pairs"]["pretrain_seed vs pretrain"]["exact"]
  assert (pe["a"], pe["b"], pe["a_only"], pe["b_only"], pe["n"]) == (3, 0, 3, 0, 5)
  assert pe["p"] == pytest.approx(0.25)
  # sft vs sft_stage1_only, schema: run 0 only b on call 0 (call 1 both), run 1 only b on
  # call 1: 1 vs 3 right, 0 vs 2 only; p = 0.5.
  ss = out["pairs"]["sft vs sft_stage1_only"]["schema"]
  assert (ss["a"], ss["b"], ss["a_only"], ss["b_only"]) == (1, 3, 0, 2)
  assert ss["p"] == pytest.approx(0.5)
  # Pairs with a stage no run has are left out.
  assert "sft vs sft_cont" not in out["pairs"]


def test_seeds_keeps_runs_aligned_when_a_run_lacks_a_stage(tmp_path):
  t, f = True, False
  a = _workdir(tmp_path / "s0", {"pretrain": [(f, f, t)], "pretrain_seed": [(t, t, t)]})
  b = _workdir(tmp_path / "s1", {"pretrain": [(f, f, f)], "pretrain_seed": [(f, t, t)],
                                 "pretrain_cont": [(t, t, t)]})
  out = report.seeds([a, b])
  cont = out["per_seed"]["pretrain_cont"]["exact"]
  assert np.isnan(cont[0]) and cont[1] == 1.0
  # Only run 1 has the control: stage II 0 vs control 1 exact, the one call only the control.
  pc = out["pairs"]["pretrain_seed vs pretrain_cont"]["exact"]
  assert (pc["a"], pc["b"], pc["a_only"], pc["b_only"], pc["n"]) == (0, 1, 0, 1, 1)


def test_seeds_refuses_stages_scored_on_different_calls(tmp_path):
  a = _workdir(tmp_path / "s0", {"sft": [(True, True, True)],
                                 "sft_stage1_only": [(True, True, True)]})
  other = json.loads((tmp_path / "s0" / "eval" / "sft.json").read_text())
  other["records"][0]["prompt"] = "another task"
  (tmp_path / "s0" / "eval" / "sft.json").write_text(json.dumps(other))
  with pytest.raises(ValueError, match="'sft' and 'sft_stage1_only' were scored on different"):
    report.seeds([a])
