"""The one training loop end to end (`rl_jax.main.run`): every runlocal config runs, config
errors are clear, a NaN stops the run naming step and stage and leaves a restorable checkpoint,
a sweep trains its variants from the same params."""
import json
import pathlib
import subprocess
import sys

import jax
import numpy as np
import pytest

from rl_jax import experiment, main, metrics
from rl_jax.algorithms import losses
from rl_jax.rewards import scorers

REPO = pathlib.Path(__file__).resolve().parent.parent


def _is_project_config(path: pathlib.Path) -> bool:
  """A seed project's config (it imports `rl_jax.projects.<name>`): its pipeline, with the
  project's own assertions, is tested in tests/projects/<name>/ (running it here too would
  double its CI time)."""
  return "rl_jax.projects." in path.read_text()


CONFIGS = sorted(p.stem for p in (REPO / "configs").glob("*.py")
                 if p.stem != "__init__" and not _is_project_config(p))


def _load(name, arg="runlocal"):
  sys.path.insert(0, str(REPO))
  try:
    module = __import__(f"configs.{name}", fromlist=["get_config"])
  finally:
    sys.path.remove(str(REPO))
  return module.get_config(arg)


def _run(config, workdir, **kwargs):
  return main.run(config, str(workdir), show_progress=kwargs.pop("show_progress", False))


def _none_paths(tree, path=""):
  if tree is None:
    return [path]
  if isinstance(tree, dict):
    return [p for k, v in tree.items() for p in _none_paths(v, f"{path}.{k}")]
  if isinstance(tree, list):
    return [p for i, v in enumerate(tree) for p in _none_paths(v, f"{path}[{i}]")]
  return []


def test_configs_are_found():
  assert {"quickstart", "grpo_tiny_arith", "gspo_tiny_arith", "dapo_tiny_arith",
          "grpo_qwen3_gsm8k"} <= set(CONFIGS)


@pytest.mark.parametrize("name", CONFIGS)
def test_runlocal_configs_run_end_to_end(name, tmp_path):
  c = _load(name)
  exp = experiment.from_config_dict(c)
  summary = _run(c, tmp_path)
  trained = [k for k in ("pretrain", "sft") if getattr(exp, k).steps] + ["rl"]
  assert list(summary["eval"]) == trained
  for stage in trained:
    assert 0.0 <= summary["eval"][stage]["eval/accuracy"] <= 1.0, stage
  records = metrics.read_metrics(str(tmp_path / "metrics.jsonl"))
  assert {r["stage"] for r in records} == set(trained)
  rl = [r for r in records if r["stage"] == "rl"]
  assert [r["step"] for r in rl] == list(range(exp.rl.steps))
  for key in ("reward/mean", "loss/total", "clip/frac_low", "entropy", "grad/norm",
              "rollout/len_mean"):
    assert all(np.isfinite(r[key]) for r in rl), key
  # The CI shrink exercises the numbers: some RL step has a learning signal and a gradient.
  assert any(r["adv/abs_mean"] > 0 and r["adv/nonzero_frac"] > 0 and r["grad/norm"] > 1e-3
             for r in rl), [(r["adv/abs_mean"], r["grad/norm"]) for r in rl]
  if exp.sft.steps:
    sft = [r for r in records if r["stage"] == "sft"]
    assert [r["step"] for r in sft] == list(range(exp.sft.steps))
    assert all(np.isfinite(r["sft/nll"]) for r in sft)
  written = json.loads((tmp_path / "summary.json").read_text())
  assert written == {"eval": summary["eval"]}
  # The stage-end evaluation ends the stage's TensorBoard eval curve at step = its steps (after
  # the last training record; `eval.every` points before it), and is not in metrics.jsonl.
  for stage in trained:
    steps = getattr(exp, stage).steps
    points = metrics.read_scalars(str(tmp_path / "tb" / stage), "eval/accuracy")
    assert points[-1] == (steps, pytest.approx(summary["eval"][stage]["eval/accuracy"],
                                               abs=1e-6)), (stage, points)
    assert len({step for step, _ in points}) == len(points) and max(
        r["step"] for r in records if r["stage"] == stage) == steps - 1, stage
  assert "final_params" in summary
  config = json.loads((tmp_path / "config.json").read_text())
  assert not _none_paths(config), _none_paths(config)
  assert [s["name"] for s in config["stage_plan"]] == trained
  if name == "quickstart":  # GRPO preset values resolved into config.json
    assert config["rl"]["eps_low"] == 0.2 and config["rl"]["eps_high"] == 0.2
    assert config["rl"]["agg"] == "seq_mean_token_mean"
    assert config["rl"]["kl_estimator"] == "k3" and config["rl"]["adv_normalize"] == "std"
    assert config["rl"]["use_kl_loss"] is False  # set by the config, not the preset's True
    assert config["stage_plan"][1]["section"]["eps_low"] == 0.2


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
  bad = c.to_dict()
  bad["rl"]["advantage"] = {"name": "group", "normalise": "none"}
  with pytest.raises(ValueError, match=r"rl\.advantage\.\['normalise'\] for advantage 'group'"):
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
    _run(c, tmp_path)


def test_nan_in_loss_stops_the_run_naming_metric_step_and_stage(tmp_path, monkeypatch):
  # The update step may already be compiled for this config by an earlier test: start fresh so
  # the poisoned loss is traced.
  jax.clear_caches()
  real = losses.policy_loss

  def poisoned(*args, **kwargs):
    loss_sum, denom, stats = real(*args, **kwargs)
    return loss_sum * float("nan"), denom, stats

  monkeypatch.setattr(losses, "policy_loss", poisoned)
  c = _load("quickstart")
  c.rl.weight_decay = 0.0123  # a static config no other test compiles: the update is retraced
  with pytest.raises(metrics.NonFiniteMetricError,
                     match=r"'loss/total' is nan.* at step 0 of stage 'rl'"):
    _run(c, tmp_path)


_NAN_SCORER = "loop_test_nan_reward"


def _nan_scorer(*, ctx, section=None, nan_call: int = -1):
  """The task scorer, with a NaN reward in row 1 of its `nan_call`-th call (one call per RL
  step without dynamic sampling), checked as every scorer checks its rewards."""
  base, calls = scorers.TaskScorer(ctx), []

  def score(problems, out):
    s = base(problems, out)
    if len(calls) == nan_call:
      reward_B = s.reward_B.copy()
      reward_B[1] = np.nan
      scorers.check_rewards(reward_B, "test scorer")
    calls.append(None)
    return s

  return score


if _NAN_SCORER not in scorers.SCORERS:
  scorers.SCORERS.register(_NAN_SCORER)(_nan_scorer)


def test_nan_reward_stops_naming_step_and_stage_and_the_checkpoint_resumes(tmp_path, capsys):
  c = _load("quickstart")
  c.rl.steps = 4
  c.checkpoint.every = 1  # async saves (the default)
  c.rl.scorer = {"name": _NAN_SCORER, "nan_call": 2}
  assert c.checkpoint.async_save
  with pytest.raises(ValueError, match=r"test scorer: reward of row 1 is nan") as e:
    _run(c, tmp_path)
  assert "(at step 2 of stage 'rl')" in e.value.__notes__
  assert any(n.startswith("last checkpoint of stage 'rl': step 2 in ") and
             n.endswith("a rerun of the same command resumes from it") for n in e.value.__notes__)
  ckpt = tmp_path / "checkpoints" / "rl"
  assert sorted(int(p.name) for p in ckpt.iterdir() if p.name.isdigit()) == [1, 2]
  assert (ckpt / "2" / "commit_success.txt").exists()  # the in-flight save was finished
  assert not list(ckpt.glob("*tmp*")), list(ckpt.iterdir())
  capsys.readouterr()

  c.rl.scorer = {"name": _NAN_SCORER}  # fixed: the rerun resumes from the last checkpoint
  summary = _run(c, tmp_path, show_progress=True)
  out = capsys.readouterr().out
  assert "[sft] finished earlier: restored its final checkpoint" in out, out
  assert "[rl] resumed from its checkpoint at step 2" in out, out
  records = metrics.read_metrics(str(tmp_path / "metrics.jsonl"))
  assert [r["step"] for r in records if r["stage"] == "rl"] == [0, 1, 2, 3]
  assert [r["step"] for r in records if r["stage"] == "sft"] == list(range(c.sft.steps))
  assert set(summary["eval"]) == {"sft", "rl"}


def test_drop_zero_advantage_rows_runs_and_refuses_a_kl_loss(tmp_path):
  """Also micro-batches chosen by memory: with a budget below one row per device, the finest
  split that keeps the 16 rows sharded over the 8 test devices is 2 micro-batches."""
  c = _load("gspo_tiny_arith")
  c.rl.drop_zero_advantage = 4  # = group_size
  c.rl.num_microbatches, c.rl.microbatch_budget_mib = 0, 1e-3
  c.rl.num_minibatches = 1  # one optimizer step over all 16 rows
  _run(c, tmp_path / "drop")
  rl = [r for r in metrics.read_metrics(str(tmp_path / "drop" / "metrics.jsonl"))
        if r["stage"] == "rl"]
  assert len(rl) == c.rl.steps
  assert c.rl.prompts_per_step * c.rl.group_size == 16 and len(jax.devices()) == 8
  for r in rl:  # kept rows / rows of the step
    assert 0.0 <= r["update/kept_rows_frac"] <= 1.0
    assert np.isfinite(r["loss/total"])
    assert r["update/num_microbatches"] == 2
  c.rl.num_microbatches = -1
  with pytest.raises(ValueError, match="num_microbatches must be >= 0"):
    _run(c, tmp_path / "negative")
  c.rl.num_microbatches = 0
  c.rl.use_kl_loss = True
  c.rl.beta = 0.04
  with pytest.raises(ValueError, match="drop_zero_advantage"):
    _run(c, tmp_path / "kl")


def test_sweep_trains_each_variant_from_the_same_params(tmp_path):
  c = _load("quickstart")
  c.rl.steps = 1
  c.checkpoint.every = 1
  c.rl.warmup_steps = 0
  c.rl.sweep = {"learning_rate": (1e-4, 1e-2)}
  # The soft overlong penalty makes rewards differ by length: the gradient is not zero.
  c.rl.overlong_max_len, c.rl.overlong_cache_len = 10, 8
  summary = _run(c, tmp_path)
  names = ["rl_learning_rate=0.0001", "rl_learning_rate=0.01"]
  assert list(summary["eval"]) == ["sft"] + names
  records = metrics.read_metrics(str(tmp_path / "metrics.jsonl"))
  assert [(r["stage"], r["step"]) for r in records] == (
      [("sft", s) for s in range(c.sft.steps)] + [(n, 0) for n in names])
  a, b = records[-2:]
  # Same start params, prompts and sampling keys: the same rollouts and loss; the swept
  # learning rate is the difference.
  for key in ("reward/mean", "rollout/len_mean", "loss/total", "grad/norm", "entropy"):
    assert a[key] == b[key], key
  assert a["grad/norm"] > 0
  assert a["optim/lr"] == pytest.approx(1e-4) and b["optim/lr"] == pytest.approx(1e-2)
  plan = json.loads((tmp_path / "config.json").read_text())["stage_plan"]
  assert [(s["name"], s["start_from"], s["overrides"]) for s in plan] == [
      ("sft", "initial params", {}), (names[0], "sft", {"learning_rate": 1e-4}),
      (names[1], "sft", {"learning_rate": 1e-2})]
  for n in names:
    assert (tmp_path / "checkpoints" / n / "1").is_dir()


def test_cli_failure_prints_one_error_and_names_the_last_checkpoint(tmp_path):
  """A run stopped by a non-finite metric (default async saves) prints one traceback, names
  the checkpoint it leaves, and a rerun says what it resumes from."""
  args = [sys.executable, "-m", "rl_jax.main", "--config=configs/quickstart.py:runlocal",
          f"--workdir={tmp_path}", "--config.checkpoint.every=1", "--config.rl.steps=2"]
  out = subprocess.run(args + ["--config.sft.learning_rate=1e30",
                               "--config.sft.max_grad_norm=1e30"],
                       cwd=REPO, capture_output=True, text=True, timeout=300)
  assert out.returncode == 1
  assert out.stderr.count("Traceback") == 1, out.stderr
  assert "NonFiniteMetricError: metric 'grad/norm' is nan at step 1 of stage 'sft'" in out.stderr, \
      out.stderr
  assert (f"last checkpoint of stage 'sft': step 1 in {tmp_path}/checkpoints/sft; a rerun of "
          "the same command resumes from it") in out.stderr, out.stderr
  assert not list((tmp_path / "checkpoints" / "sft").glob("*tmp*"))
  # (The checkpoint holds step 0's huge update, so this rerun diverges too: it only has to say
  # what it resumes from. test_nan_reward_stops_... resumes to the end.)
  out = subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=300)
  assert "[sft] resumed from its checkpoint at step 1" in out.stdout + out.stderr


def test_checkpoint_with_a_smaller_vocabulary_than_the_tokenizer_is_refused(tmp_path):
  c = _load("quickstart")
  c.tokenizer = "gsm8k_unigram"  # 2,000 pieces; the bundled checkpoint has 24 rows
  with pytest.raises(ValueError, match=r"model.hf_checkpoint='arith_tiny_sft' has vocab_size "
                                       r"24 but the tokenizer has 2000 pieces"):
    _run(c, tmp_path)
