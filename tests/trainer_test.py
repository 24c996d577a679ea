"""End-to-end trainer: runlocal configs run, config errors are clear, NaN stops the run."""
import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest
from ml_collections import config_flags  # noqa: F401  (the CLI path is tested below)

from rl_jax import experiment, metrics, trainer
from rl_jax.algorithms import losses

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _load(name, arg="runlocal"):
  sys.path.insert(0, REPO)
  try:
    module = __import__(f"configs.{name}", fromlist=["get_config"])
  finally:
    sys.path.remove(REPO)
  return module.get_config(arg)


@pytest.mark.parametrize("name", ["quickstart", "grpo_tiny_arith", "gspo_tiny_arith",
                                  "dapo_tiny_arith", "grpo_qwen3_gsm8k"])
def test_runlocal_configs_run_end_to_end(name, tmp_path):
  exp = experiment.from_config_dict(_load(name))
  summary = trainer.run(exp, str(tmp_path), show_progress=False)
  assert 0.0 <= summary["eval_before_rl"] <= 1.0
  assert 0.0 <= summary["eval_after_rl"] <= 1.0
  records = metrics.read_metrics(str(tmp_path / "metrics.jsonl"))
  rl = [r for r in records if "loss/total" in r]
  assert [r["step"] for r in rl] == list(range(exp.rl.steps))
  for key in ("reward/mean", "clip/frac_low", "entropy", "grad/norm", "rollout/len_mean"):
    assert all(np.isfinite(r[key]) for r in rl), key
  assert json.loads((tmp_path / "summary.json").read_text())["eval_after_rl"] == \
      summary["eval_after_rl"]


def test_unknown_config_keys_are_named():
  c = _load("quickstart")
  bad = c.to_dict()
  bad["rl"]["eps_hgih"] = 0.3
  with pytest.raises(ValueError, match=r"unknown config key rl\.'eps_hgih'"):
    experiment.from_config_dict(bad)
  bad = c.to_dict()
  bad["task"]["num_digitz"] = 3
  with pytest.raises(ValueError, match=r"task\.\['num_digitz'\]"):
    experiment.from_config_dict(bad)
  bad = c.to_dict()
  bad["model"]["overrides"] = {"num_layerz": 2}
  with pytest.raises(ValueError, match="num_layerz"):
    experiment.from_config_dict(bad)


def test_cli_rejects_misspelt_override(tmp_path):
  out = subprocess.run(
      [sys.executable, "-m", "rl_jax.main", "--config=configs/quickstart.py:runlocal",
       f"--workdir={tmp_path}", "--config.rl.learning_rat=1e-3"],
      cwd=REPO, capture_output=True, text=True, timeout=120)
  assert out.returncode != 0
  assert "learning_rat" in out.stderr


def test_batch_not_divisible_by_group_is_clear(tmp_path):
  c = _load("quickstart")
  c.rl.num_minibatches = 3  # 4 prompts cannot split into 3 mini-batches of whole groups
  with pytest.raises(ValueError, match="mini-batches"):
    trainer.run(experiment.from_config_dict(c), str(tmp_path), show_progress=False)


def test_nan_in_loss_stops_the_run_naming_metric_and_step(tmp_path, monkeypatch):
  # update_step may already be compiled for this config by an earlier test: start fresh so the
  # poisoned loss is traced.
  jax.clear_caches()
  real = losses.policy_loss

  def poisoned(*args, **kwargs):
    loss_sum, denom, stats = real(*args, **kwargs)
    return loss_sum * float("nan"), denom, stats

  monkeypatch.setattr(losses, "policy_loss", poisoned)
  c = _load("quickstart")
  c.rl.weight_decay = 0.0123  # a static config no other test compiles: update_step is retraced
  exp = experiment.from_config_dict(c)
  with pytest.raises(metrics.NonFiniteMetricError, match=r"'loss/total' is nan.* at step 0"):
    trainer.run(exp, str(tmp_path), show_progress=False)


def test_drop_zero_advantage_rows_runs_and_refuses_a_kl_loss(tmp_path):
  c = _load("gspo_tiny_arith")
  c.rl.drop_zero_advantage = 4  # = group_size
  exp = experiment.from_config_dict(c)
  trainer.run(exp, str(tmp_path / "drop"), show_progress=False)
  rl = [r for r in metrics.read_metrics(str(tmp_path / "drop" / "metrics.jsonl"))
        if "loss/total" in r]
  assert len(rl) == exp.rl.steps
  for r in rl:  # kept rows / rows of the step
    assert 0.0 <= r["update/kept_rows_frac"] <= 1.0
    assert np.isfinite(r["loss/total"])
  c.rl.use_kl_loss = True
  c.rl.beta = 0.04
  with pytest.raises(ValueError, match="drop_zero_advantage"):
    trainer.run(experiment.from_config_dict(c), str(tmp_path / "kl"), show_progress=False)
