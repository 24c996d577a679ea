"""The runlocal shrink of the QUBRIC study through the one loop (`rl_jax.main`): SFT on generic
descriptions, then GRPO arms of the sweep (the full pipeline and the fabricated-reference
control); the full arm has non-zero rewards and gradients, the control's reward signal is
exactly gone, and the report writes its table and plot."""
import importlib.util
import json
import os
import pathlib

import numpy as np
import pytest

from rl_jax import main as main_lib
from rl_jax import metrics as metrics_lib

CONFIG = pathlib.Path(__file__).resolve().parents[3] / "configs" / "qubric_tiny.py"


@pytest.fixture(scope="module")
def run(tmp_path_factory):
  spec = importlib.util.spec_from_file_location("qubric_tiny", CONFIG)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  workdir = tmp_path_factory.mktemp("qubric")
  main_lib.run(module.get_config("runlocal"), str(workdir), show_progress=False)
  return str(workdir)


def test_runlocal_full_arm_learns_and_control_signal_vanishes(run):
  records = metrics_lib.read_metrics(os.path.join(run, "metrics.jsonl"))
  rl = [r for r in records if r.get("stage", "").startswith("rl_arm=")]
  assert {r["stage"] for r in rl} == {"rl_arm=full", "rl_arm=fabricated"}
  full = [r for r in rl if r["stage"] == "rl_arm=full"]
  control = [r for r in rl if r["stage"] == "rl_arm=fabricated"]
  assert len(full) == len(control) == 2
  assert any(r["reward/mean"] > 0 and r["grad/norm"] > 0 for r in full)
  # The fabricated reference is never verifiable: every reward is 0, every group has zero
  # variance, no advantage, no gradient (GRPO without a KL term).
  for r in control:
    assert r["reward/mean"] == 0 and r["reward/frac_groups_zero_var"] == 1
    assert r["adv/nonzero_frac"] == 0 and r["grad/norm"] == 0
  for key in ("correct/mean", "qubric/rubric_reward/mean", "judge/calls",
              "qubric/reward_recall_corr", "qubric/retired_pairs"):
    assert all(key in r and np.isfinite(r[key]) for r in rl), key
  assert full[-1]["judge/calls"] > 0 and full[-1]["judge/failures"] == 0


def test_report_table_and_plot(run):
  with open(os.path.join(run, "results.json")) as f:
    rows = json.load(f)["rows"]
  assert [r["policy"] for r in rows] == ["sft", "rl (full)", "rl (fabricated)"]
  for r in rows:
    assert 0 <= r["recall"] <= 1 and 0 <= r["wrong"] <= 1
  assert rows[2]["zero_var_groups"] == 1.0 and rows[2]["reward_std"] == 0.0
  # The control never changed the policy: its held-out answers are the SFT policy's.
  assert rows[2]["recall"] == rows[0]["recall"]
  assert os.path.getsize(os.path.join(run, "recall.png")) > 1000
  with open(os.path.join(run, "report.md")) as f:
    assert "| rl (fabricated) |" in f.read()
