"""The HeaPA study pipeline at its runlocal shrink through the one loop (`rl_jax.main`): a heap
arm with augmentation and PathAgg trains, logs the pool's metrics and writes the study report
(pipeline check, not effect size); the report's numbers against hand-computed records."""
import importlib.util
import json
import pathlib

import numpy as np
import pytest

from rl_jax import main as main_lib
from rl_jax import metrics as metrics_lib
from rl_jax.projects.heapa import report

CONFIG = pathlib.Path(__file__).resolve().parents[3] / "configs" / "heapa_tiny_arith.py"


def _config(arg):
  spec = importlib.util.spec_from_file_location("heapa_tiny_arith", CONFIG)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(arg)


def test_runlocal_study_pipeline(tmp_path):
  main_lib.run(_config("heap_aug_path,runlocal"), str(tmp_path / "heap_aug_path"),
               show_progress=False)
  records = [r for r in metrics_lib.read_metrics(str(tmp_path / "heap_aug_path" /
                                                     "metrics.jsonl")) if r.get("stage") == "rl"]
  assert len(records) == 4
  assert all(r["rollout/tokens"] > 0 for r in records)
  assert any(r["adv/abs_mean"] > 0 for r in records)  # rewards vary within groups: gradients
  last = records[-1]
  verdicts = sum(last[f"aug/{k}"] for k in ("ok", "invalid", "unsolvable", "duplicate",
                                            "heldout"))
  assert last["aug/proposed"] > 0 and verdicts + last["pool/pending"] == last["aug/proposed"]
  assert last["pool/aug_records"] <= last["aug/ok"]  # only accepted variants are records
  assert sum(last[f"pool/hist_{i:02d}"] for i in range(10)) == pytest.approx(1.0)
  results = json.loads((tmp_path / "heapa_results.json").read_text())
  arm = results["arms"]["heap_aug_path"]
  assert arm["steps"] == 4 and arm["tokens_total"] == sum(r["rollout/tokens"] for r in records)
  assert 0 <= arm["source_overhead"] < 1
  for name in ("heapa_report.md", "heapa_accuracy_vs_tokens.png", "heapa_zero_var.png",
               "heapa_pool_hist_heap_aug_path.png"):
    assert (tmp_path / name).stat().st_size > 0
  assert "| heap_aug_path |" in (tmp_path / "heapa_report.md").read_text()


def test_tokens_to_target_by_hand():
  records = [{"stage": "rl", "step": s, "rollout/tokens": 100.0 * (s + 1),
              "reward/frac_groups_zero_var": 0.5, "rollout/draws": 1.0,
              "aug/aug_tokens": 10.0 * (s + 1)} for s in range(6)]
  for step, acc in ((1, 0.2), (3, 0.6), (5, 0.7)):
    records[step]["eval/accuracy"] = acc
  s = report.summarize_arm(records, target=0.5)
  # cumulative tokens after steps 0..3: 100+200+300+400 = 1000, plus 40 policy-augmentation
  # tokens (aug/aug_tokens is a running total)
  assert s["eval_steps"] == [2, 4, 6] and s["tokens_to_target"] == 1040.0
  assert s["eval_tokens"] == [320.0, 1040.0, 2160.0]
  assert report.summarize_arm(records, target=0.9)["tokens_to_target"] is None
  # The stage-end eval (summary.json) counts after the last step: 1500 + 50 tokens.
  final = report.summarize_arm(records[:5], target=0.9, final_accuracy=0.95)
  assert final["eval_steps"] == [2, 4, 5] and final["tokens_to_target"] == 1550.0
  base = dict(s, tokens_to_target=2000.0)
  table = report.markdown({"uniform": base, "heap_aug": s}, 0.5)
  assert "| heap_aug | 1040 | 48.0% fewer |" in table
  # More tokens than uniform reads as more, not as negative fewer: 2600 / 2000.
  table = report.markdown({"uniform": base, "heap_aug": dict(s, tokens_to_target=2600.0)}, 0.5)
  assert "| heap_aug | 2600 | 30.0% more |" in table
