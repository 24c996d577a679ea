"""ECD metrics and report on hand-made records: strict vs instruction-level, by level, and the
paired bootstrap of a difference."""
import json

import numpy as np

from rl_jax.projects.ecd import evaluation, report, world
from rl_jax.projects.ecd.world import Constraint, Instruction


def test_score_by_hand():
  ins = [Instruction("fruit", (Constraint("upper"),)),
         Instruction("fruit", (Constraint("upper"), Constraint("count", "2"))),
         Instruction("city", (Constraint("numbered"), Constraint("end", "!"),
                              Constraint("sorted")))]
  responses = ["MANGO APPLE PLUM", "MANGO APPLE PLUM", "1. cairo 2. oslo !"]
  metrics, records = evaluation.score(ins, responses)
  assert [r["satisfied"] for r in records] == [[True], [True, False], [True, True, True]]
  # strict: 2 of 3 prompts; instruction-level: 5 of 6 constraints.
  np.testing.assert_allclose(metrics["eval/accuracy"], 2 / 3)
  np.testing.assert_allclose(metrics["eval/instruction_acc"], 5 / 6)
  assert metrics["eval/strict_level2"] == 0.0 and metrics["eval/instruction_level2"] == 0.5
  assert metrics["eval/strict_level3"] == 1.0


def test_report_table_and_bootstrap(tmp_path):
  levels = [1, 3, 3, 3]
  arms = {"sft": [[True], [True, False, True], [True, True, False], [True, True, True]],
          "preference_negatives=ecd": [[True], [True, True, True], [True, True, True],
                                       [True, True, True]]}
  (tmp_path / "eval").mkdir()
  (tmp_path / "config.json").write_text(json.dumps(
      {"stage_plan": [{"name": n} for n in arms]}))
  for name, sats in arms.items():
    (tmp_path / "eval" / f"{name}.json").write_text(json.dumps({"records": [
        {"prompt": "p", "level": k, "response": "r", "satisfied": s}
        for k, s in zip(levels, sats)]}))
  results = report.report(str(tmp_path))
  assert results["table"]["SFT"]["eval/strict_level3"] == 1 / 3
  assert results["table"]["DPO-ECD"]["eval/strict_level3"] == 1.0
  assert (tmp_path / "ecd_levels.png").exists()
  assert "| DPO-ECD | 1.000 |" in (tmp_path / "ecd_report.md").read_text()
  d, lo, hi = report.paired_bootstrap([1, 1, 1, 0], [0, 1, 0, 0])
  assert d == 0.5 and 0.0 <= lo <= d <= hi <= 1.0
  assert report.paired_bootstrap([1, 0], [1, 0]) == (0.0, 0.0, 0.0)
  assert world.parse("1. a 2. b !").numbered


def _workdir(path, arms, levels):
  (path / "eval").mkdir(parents=True)
  (path / "config.json").write_text(json.dumps({"stage_plan": [{"name": n} for n in arms]}))
  for name, sats in arms.items():
    (path / "eval" / f"{name}.json").write_text(json.dumps({"records": [
        {"prompt": "p", "level": k, "response": "r", "satisfied": s}
        for k, s in zip(levels, sats)]}))


def test_seeds_pool_level3_items_by_hand(tmp_path):
  # Seed A: level >= 3 strict SFT 1/2, ECD 2/2; seed B: SFT 0/1, ECD 1/1 (its level-1 item
  # is left out). Per pooled item, ECD - SFT: 0, 1 (seed A) and 1 (seed B): mean 2/3.
  _workdir(tmp_path / "a", {"sft": [[True], [False, True]], "preference_negatives=ecd":
                            [[True], [True, True]]}, [3, 4])
  _workdir(tmp_path / "b", {"sft": [[True], [True, False, True]], "preference_negatives=ecd":
                            [[False], [True, True, True]]}, [1, 3])
  out = report.seeds([str(tmp_path / "a"), str(tmp_path / "b")])
  assert out["per_seed"] == {"SFT": [0.5, 0.0], "DPO-ECD": [1.0, 1.0]}
  d, lo, hi = out["pooled"]["DPO-ECD - SFT"]
  assert abs(d - 2 / 3) < 1e-12 and 0.0 <= lo <= d <= hi <= 1.0
  assert set(out["pooled"]) == {"DPO-ECD - SFT"}
