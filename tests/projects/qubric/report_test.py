"""QUBRIC's multi-seed summary (`report.seeds`) on hand-made workdirs."""
import json

import pytest

from rl_jax.projects.qubric import report


def _workdir(path, arms):
  """config.json's stage plan and eval/<stage>.json per stage; arms: {stage: recalls}."""
  path.mkdir()
  (path / "eval").mkdir()
  plan = []
  for name, recalls in arms.items():
    arm = name.split("=", 1)[1] if "=" in name else None
    plan.append({"name": name, "kind": "rl" if arm else "sft",
                 "section": {"prompt_source": {"name": "qubric", "arm": arm}} if arm else {}})
    records = [{"recall": r} for r in recalls]
    (path / "eval" / f"{name}.json").write_text(json.dumps({"records": {name: records}}))
  (path / "config.json").write_text(json.dumps({"stage_plan": plan}))
  return str(path)


def test_seeds_pools_per_answer_differences_within_each_run(tmp_path):
  a = _workdir(tmp_path / "s0", {"sft": [0, 1 / 3], "rl_arm=full": [1 / 3, 2 / 3],
                                 "rl_arm=original_generic": [0, 1 / 3]})
  b = _workdir(tmp_path / "s1", {"sft": [1, 0], "rl_arm=full": [1, 1 / 3],
                                 "rl_arm=original_generic": [2 / 3, 0]})
  out = report.seeds([a, b])
  assert out["per_seed"]["sft"] == pytest.approx([1 / 6, 0.5])
  assert out["per_seed"]["rl (full)"] == pytest.approx([0.5, 2 / 3])
  # full - original_generic per answer: 1/3, 1/3, 1/3, 1/3 -> mean 1/3, no spread.
  d, lo, hi = out["pooled"]["rl (full) - rl (original_generic)"]
  assert (d, lo, hi) == pytest.approx((1 / 3, 1 / 3, 1 / 3))
  # full - sft: 1/3, 1/3, 0, 1/3 -> 0.25.
  assert out["pooled"]["rl (full) - sft"][0] == pytest.approx(0.25)
  assert "rl (fabricated) - sft" not in out["pooled"]  # no run has that arm
