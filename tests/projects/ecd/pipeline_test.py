"""configs/ecd_tiny.py:runlocal through the one loop: SFT, then the three DPO arms of the
preference sweep from the same SFT params, the eval hook by level, and the report."""
import json

import numpy as np

from rl_jax import main as main_lib
from rl_jax import metrics as metrics_lib

ARMS = ("preference_negatives=random", "preference_negatives=ecd", "preference_negatives=both")


def test_ecd_runlocal_pipeline(load_config, tmp_path):
  summary = main_lib.run(load_config("ecd_tiny"), str(tmp_path), show_progress=False)
  records = metrics_lib.read_metrics(str(tmp_path / "metrics.jsonl"))
  assert set(summary["eval"]) == {"sft", *ARMS}
  for arm in ARMS:
    steps = [r for r in records if r["stage"] == arm]
    assert [r["step"] for r in steps] == [0, 1, 2, 3]
    # Every arm starts at the reference (the SFT params): DPO loss log 2 (plus the config's
    # nll_coef = 1 times the chosen's per-token NLL), zero margin.
    np.testing.assert_allclose(steps[0]["preference/loss"],
                               np.log(2.0) + steps[0]["preference/nll_chosen"], atol=1e-5)
    assert abs(steps[0]["preference/rewards_margin"]) < 1e-5  # to float reassociation
    assert steps[0]["preference/nll_chosen"] > 0
    assert all(r["grad/norm"] > 0 for r in steps)
    assert steps[-1]["preference/rewards_margin"] > 0  # it learns to prefer the chosen
    m = summary["eval"][arm]
    assert {f"eval/strict_level{k}" for k in range(1, 6)} <= set(m)
  sft = [r for r in records if r["stage"] == "sft"]
  assert sft[-1]["sft/nll"] < 0.5 * sft[0]["sft/nll"]
  assert summary["eval"]["sft"]["eval/instruction_acc"] > 0  # some constraints already followed
  results = json.loads((tmp_path / "ecd_results.json").read_text())
  assert list(results["table"]) == ["SFT", "DPO-random", "DPO-ECD", "DPO-both"]
  assert results["num_instructions"]["SFT"] == 40  # 8 per level
  assert (tmp_path / "ecd_levels.png").stat().st_size > 1000
  assert "| DPO-ECD |" in (tmp_path / "ecd_report.md").read_text()
