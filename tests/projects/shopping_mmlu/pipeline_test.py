"""The runlocal shrink of the shop-world study through the one loop, and the eval command on the
loop's checkpoint (pipeline check: every part runs and the numbers move)."""
import json
import os

import jax
import numpy as np
import pytest

from rl_jax import main as main_lib
from rl_jax import metrics as metrics_lib
from rl_jax.eval import __main__ as eval_main
from rl_jax.eval import checkpoints

TASK_WISE = os.path.join(os.path.dirname(__file__), "..", "..", "testdata", "shopping_mmlu")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
  import importlib.util  # pylint: disable=g-import-not-at-top
  import pathlib  # pylint: disable=g-import-not-at-top
  path = pathlib.Path(__file__).resolve().parents[3] / "configs" / "shop_world_tiny.py"
  spec = importlib.util.spec_from_file_location("shop_world_tiny", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  config = module.get_config("runlocal")
  workdir = tmp_path_factory.mktemp("shop_world")
  summary = main_lib.run(config, str(workdir), show_progress=False)
  return str(workdir), summary


def test_untrained_and_trained_reports_cover_every_skill_and_task(run):
  workdir, _ = run
  with open(os.path.join(workdir, "results.json")) as f:
    results = json.load(f)
  assert list(results) == ["untrained", "sft"]
  for r in results.values():
    assert set(r["skills"]) == {"concept", "knowledge", "behavior", "multilingual"}
    assert len(r["tasks"]) == 20
    assert r["overall"] == pytest.approx(np.mean(list(r["skills"].values())))
  # 40 SFT steps already move the held-out scores (the full study: docs/eval.md)
  assert results["sft"]["overall"] > results["untrained"]["overall"]
  records = [r for r in metrics_lib.read_metrics(os.path.join(workdir, "metrics.jsonl"))
             if "sft/nll" in r]
  assert records[-1]["sft/nll"] < records[0]["sft/nll"]
  text = open(os.path.join(workdir, "report.md")).read()
  assert "| untrained | sft |" in text and "| mc_compatible_kai | multilingual |" in text


def test_eval_command_loads_the_loop_checkpoint(run, tmp_path):
  workdir, summary = run
  model = checkpoints.load_model(os.path.join(workdir, "checkpoints", "sft"))
  for a, b in zip(jax.tree.leaves(model.params), jax.tree.leaves(summary["final_params"])):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  out = tmp_path / "r.json"
  report = eval_main.main(["--suite=shopping_mmlu", f"--data_dir={TASK_WISE}",
                           f"--checkpoint={os.path.join(workdir, 'checkpoints', 'sft')}",
                           "--max_new_tokens=4", f"--out={out}"])
  assert len(report["tasks"]) == 8 and out.exists()
