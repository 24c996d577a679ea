"""The runlocal shrink of the Translate-R1 reproduction through the one loop (`rl_jax.main`):
every stage runs and writes coherent outputs (pipeline check, not effect size), and the
project's parts (task, scorer, evaluator, report) and the core's gated advantage behave."""
import importlib.util
import json
import os
import pathlib

import numpy as np
import pytest

from rl_jax import main as main_lib
from rl_jax import metrics as metrics_lib
from rl_jax.algorithms import gated_gspo
from rl_jax.projects.translate_r1 import evaluation as ev
from rl_jax.projects.translate_r1 import report
from rl_jax.projects.translate_r1 import task as task_lib
from rl_jax.projects.translate_r1 import tool as tools
from rl_jax.projects.translate_r1.tokenizer import build_tokenizer
from rl_jax.projects.translate_r1.world import CipherWorld
from rl_jax.stages import rl as rl_stage
from rl_jax.tools.scoring import episode_extras

CONFIG = pathlib.Path(__file__).resolve().parents[3] / "configs" / "gated_gspo_tiny_cipher.py"


def _config(arg):
  spec = importlib.util.spec_from_file_location("gated_gspo_tiny_cipher", CONFIG)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(arg)


def _rl_only(config, *, lam: float):
  """The config reduced to one gated RL stage from a fresh random init (no eval, no report)."""
  config.stages = ("rl",)
  config.rl.sweep = {}
  config.rl.advantage.lam = lam
  config.eval.at_stage_end = False
  config.eval.every = 0
  config.report = {}
  return config


def _gated_rl_metrics(config, workdir, *, lam: float) -> list[dict]:
  main_lib.run(_rl_only(config, lam=lam), str(workdir), show_progress=False)
  return [r for r in metrics_lib.read_metrics(str(workdir / "metrics.jsonl"))
          if r.get("stage") == "rl"]


@pytest.fixture(scope="module")
def result(tmp_path_factory):
  workdir = tmp_path_factory.mktemp("translate_r1")
  config = _config("runlocal")
  main_lib.run(config, str(workdir), show_progress=False)
  with open(workdir / "results.json") as f:
    return str(workdir), config, json.load(f)


def test_every_policy_is_evaluated_on_every_group(result):
  _, config, out = result
  names = {"sft", "always", "never"} | {f"{f}_lam{lam:g}" for f in ("gated", "ungated")
                                         for lam in config.rl.sweep.advantage.lam}
  assert set(out["summaries"]) == names
  for s in out["summaries"].values():
    for g in ev.GROUPS:
      assert 0.0 <= s[g]["reward"] <= 1.0 and 0.0 <= s[g]["translated"] <= 1.0


def test_forced_baselines_translate_always_and_never(result):
  _, _, out = result
  always, never = out["summaries"]["always"], out["summaries"]["never"]
  for g in ev.GROUPS:
    assert always[g]["translated"] == 1.0 and always[g]["cost"] == 1.0  # per_call, unit cost 1
    assert never[g]["translated"] == 0.0 and never[g]["cost"] == 0.0
  assert always["C"] == 1.0 and never["C"] == 0.0


def test_pareto_shares_partition_the_alpha_range(result):
  _, _, out = result
  for key, shares in out["sweep"].items():
    if key.startswith("pareto_share/"):
      assert set(shares) == {"sft", "always", "never", "gated", "ungated"}
      assert sum(shares.values()) == pytest.approx(1.0)


def test_sweep_covers_the_trained_lambda_range_and_the_unit_range(result):
  _, config, out = result
  assert out["alpha_max"] == max(config.rl.sweep.advantage.lam)
  assert set(out["sweep_alpha_0to1"]) == set(out["sweep"])
  for shares in out["sweep_alpha_0to1"].values():
    if isinstance(shares, dict):
      assert sum(shares.values()) == pytest.approx(1.0)


def test_eval_items_raise_small_groups_to_the_minimum():
  items = ev.eval_items(CipherWorld(0), 2, 0, ("lookup", "counting"), min_per_group=12)
  per_group = {}
  for it in items:
    per_group[ev.group_of(it)] = per_group.get(ev.group_of(it), 0) + 1
  # base: 1 language -> 12 items; high: 6 languages x 2 = 12; unseen: 2 x 6; low/xlow: 8 x 2;
  # heldout: 9 x 2 (each item counted in its group, not its tier).
  assert per_group == {"base": 12, "high": 12, "low": 16, "xlow": 16, "unseen": 12, "heldout": 18}
  assert {it.domain for it in items} == {"lookup", "counting"}


def test_files_metrics_and_tracking(result):
  workdir, config, out = result
  assert "| policy |" in open(os.path.join(workdir, "report.md")).read()
  rows = metrics_lib.read_metrics(os.path.join(workdir, "metrics.jsonl"))
  lam = config.rl.sweep.advantage.lam[0]
  rl = [m for m in rows if m.get("stage") == f"rl_gate=native_success_lam={lam:g}"]
  assert [m["step"] for m in rl] == list(range(config.rl.steps))
  assert all(np.isfinite(m["loss/total"]) and 0 <= m["gate/mean"] <= 1 for m in rl)
  pre = [m for m in rows if m.get("stage") == "pretrain"]
  assert len(pre) == config.pretrain.steps and all(np.isfinite(m["pretrain/nll"]) for m in pre)
  for track in out["tracking"].values():
    assert track[0]["step"] == 0 and track[-1]["step"] == config.rl.steps
    assert len(track[0]) == 1 + 34  # step + every language of the world
  plan = json.load(open(os.path.join(workdir, "config.json")))["stage_plan"]
  assert [s["start_from"] for s in plan if s["kind"] == "rl"] == ["sft", "sft"]


def test_unknown_config_argument_is_an_error():
  with pytest.raises(ValueError, match="runlocal"):
    _config("fast")


@pytest.mark.parametrize("path, value, match", [
    (("sweep", "advantage", "gate"), ("native_success", "gated"), "unknown gate 'gated'"),
    (("sweep", "advantage", "lam"), (-0.5,), "lam"), (("advantage", "mode"), "sigmoid", "mode"),
    (("advantage", "decision_weight"), 0.0, "decision_weight"),
    (("advantage", "history_decay"), 1.0, "history_decay"),
    (("advantage", "cost_free_until_rate"), 0.0, "cost_free_until_rate"),
    (("rollout", "native_rows"), 4, "native_rows")])
def test_bad_rl_field_fails_before_pretraining(tmp_path, path, value, match):
  """The config is checked first: the error names the field, and nothing is trained."""
  config = _config("runlocal")
  section = config.rl
  for key in path[:-1]:
    section = section[key]
  section[path[-1]] = value
  with pytest.raises(ValueError, match=match):
    main_lib.run(config, str(tmp_path), show_progress=False)
  assert not (tmp_path / "metrics.jsonl").exists()


@pytest.mark.parametrize("train_call_syntax", [True, False])
def test_demonstrations_mask_the_tool_response_and_context_calls(train_call_syntax):
  world = CipherWorld(0)
  tok = build_tokenizer(world)
  env = tools.TranslateToolEnv(tools.OracleCipherTranslator(world))
  items = world.sample_items(3, 0, langs=["xl1"], domains=["comparison"])
  kinds = [task_lib.NATIVE, task_lib.TOOL, task_lib.TOOL_CONTEXT]
  p = 20
  data = task_lib.demonstrations(world, env, tok, items, kinds, prompt_len=p, total_len=48,
                                 train_call_syntax=train_call_syntax)
  english = [tok.encode(f"<tool_response> {it.text_en} </tool_response>") for it in items]
  answer = [tok.encode(f"<answer> {it.answer} </answer>") + [tok.eos_id] for it in items]
  call = tok.encode("<tool_call> translate </tool_call>")
  expect_mask = [[1.0] * 4,
                 [1.0] * 3 + [0.0] * len(english[1]) + [1.0] * 4,
                 # context call: only the syntax after "<tool_call>" is trained, or nothing
                 [0.0] + [float(train_call_syntax)] * 2 + [0.0] * len(english[2]) + [1.0] * 4]
  expect_ids = [answer[0], call + english[1] + answer[1], call + english[2] + answer[2]]
  for i in range(3):
    n = len(expect_ids[i])
    np.testing.assert_array_equal(data["tokens_BxL"][i, p:p + n], expect_ids[i])
    np.testing.assert_array_equal(data["loss_mask_BxL"][i, p:p + n], expect_mask[i])
    assert data["loss_mask_BxL"][i, p + n:].sum() == 0 and not data["valid_BxL"][i, p + n:].any()
    assert data["loss_mask_BxL"][i, :p].sum() == 0


def test_seed_table_means_over_runs(result):
  _, _, out = result
  other = json.loads(json.dumps(out))
  other["summaries"]["sft"]["R"] = out["summaries"]["sft"]["R"] + 0.2
  table = report.seed_table([out, other])
  expected = f"{out['summaries']['sft']['R'] + 0.1:.3f} ± 0.100"
  assert f"| sft | {expected} |" in table


def test_report_command_prints_the_seed_table(result, capsys):
  workdir, _, _ = result
  assert report.main([workdir, workdir]) == 0
  assert "2 seed(s): mean ± std" in capsys.readouterr().out


def test_item_scores_reproduce_the_summaries_and_the_point_share(result):
  _, config, out = result
  scores = out["item_scores"]
  group = np.asarray(scores["group"])
  assert set(scores["policies"]) == set(out["summaries"])
  for name, s in out["summaries"].items():
    reward = np.asarray(scores["policies"][name]["reward"])
    tier_means = [reward[group == t].mean() for t in ev.TRAINED_TIERS]
    assert s["R"] == pytest.approx(np.mean(tier_means))
  b = ev.bootstrap_pareto_share(scores, out["families"], alpha_max=out["alpha_max"],
                                n_alpha=config.report.n_alpha, n_boot=20)
  assert b["point"] == pytest.approx(out["sweep"]["pareto_share/all"]["gated"])
  assert 0.0 <= b["lo"] <= b["median"] <= b["hi"] <= 1.0 and 0.0 <= b["p_goal"] <= 1.0
  assert "paired bootstrap over the items" in report.seed_table([out])


def _scores(policies, n_per_tier=20):
  group = [t for t in ev.TRAINED_TIERS for _ in range(n_per_tier)]
  return {"group": group, "policies": {
      n: {"reward": list(np.broadcast_to(r, len(group)).astype(float)),
          "cost": list(np.broadcast_to(c, len(group)).astype(float))}
      for n, (r, c) in policies.items()}}


def test_bootstrap_pareto_share_against_hand_built_items():
  families = {"always": "always", "g": "gated", "u": "ungated"}
  # Gated better on every item: the share is 1 in every resample.
  clear = _scores({"always": (0.9, 1.0), "g": (1.0, 0.5), "u": (0.5, 0.5)})
  b = ev.bootstrap_pareto_share(clear, families, alpha_max=0.5, n_boot=50)
  assert (b["point"], b["lo"], b["hi"], b["p_goal"]) == (1.0, 1.0, 1.0, 1.0)
  # Gated and ungated equal but for 4 items: gated scores 0.5 more on one base and one High
  # item (R +0.0125), ungated saves 0.5 on one High and one Low call (C -0.0125) -> they cross
  # at alpha = 1 and gated wins all of [0, 0.5]; resamples that draw those items unevenly move
  # the crossing, so the interval is wide.
  n = 20 * len(ev.TRAINED_TIERS)
  g_reward, u_reward = np.full(n, 0.5), np.full(n, 0.5)
  g_reward[[0, 25]] = 1.0
  g_cost, u_cost = np.full(n, 0.5), np.full(n, 0.5)
  u_cost[[45, 70]] = 0.0
  close = _scores({"always": (0.5, 1.0), "g": (g_reward, g_cost), "u": (u_reward, u_cost)})
  b = ev.bootstrap_pareto_share(close, families, alpha_max=0.5, n_boot=200, seed=1)
  assert b["point"] == 1.0
  assert b["lo"] < 0.5 and b["hi"] == 1.0 and 0.0 < b["p_goal"] < 1.0
  with pytest.raises(ValueError, match="baseline 'always'"):
    ev.bootstrap_pareto_share(close, {"g": "gated", "u": "ungated"}, alpha_max=0.5)
  bad = json.loads(json.dumps(close))
  bad["policies"]["u"]["cost"] = bad["policies"]["u"]["cost"][:-1]
  with pytest.raises(ValueError, match="one reward and one cost per item"):
    ev.bootstrap_pareto_share(bad, families, alpha_max=0.5)


def test_training_rate_table_means_first_and_last_steps():
  rows = [{"tool/translate_rate_xlow": x, "gate/mean": g}
          for x, g in ((0.0, 1.0), (0.2, 0.5), (0.6, 0.0), (1.0, 0.0))]
  table = report.training_rate_table({"p": rows}, first=2, last=2)
  # xlow: mean(0, 0.2) = 0.1 -> mean(0.6, 1.0) = 0.8; gate 0.75 -> 0; tiers never logged: nan.
  assert "| p | nan → nan | nan → nan | nan → nan | 0.100 → 0.800 | 0.750 → 0.000 |" in table


def test_native_rows_give_every_group_native_evidence(tmp_path):
  config = _config("runlocal")
  config.rl.steps = 1
  config.rl.rollout.native_rows = 2  # of group_size 4
  (row,) = _gated_rl_metrics(config, tmp_path, lam=0.5)
  assert row["gate/n_native_mean"] >= 2.0 and row["tool/translate_rate"] <= 0.5


def test_malformed_calls_are_not_native_evidence():
  """Constructed episodes: a translation, a malformed call, a correct and a wrong native answer.
  The gate's native count is 2 (the native answers), its native accuracy 1/2."""
  world = CipherWorld(0)
  env = tools.TranslateToolEnv(tools.OracleCipherTranslator(world))
  (item,) = world.sample_items(1, 0, langs=["xl1"], domains=["comparison"])
  episodes, correct = [], []
  for kind in ("translate", "malformed", "right", "wrong"):
    ep = env.new_episode(item)
    answer = f"<answer> {item.answer} </answer>"
    if kind == "translate":
      call = env.parse_call("<tool_call> translate </tool_call>", ep)
      answer = env.execute(call, ep).text + answer
    elif kind == "malformed":
      env.execute(env.parse_call("<tool_call> nope </tool_call>", ep), ep)
    elif kind == "wrong":
      answer = f"<answer> {int(item.answer) + 1} </answer>"
    episodes.append(ep)
    correct.append(kind != "malformed" and tools.is_correct(answer, item))
  extras = episode_extras(episodes)
  np.testing.assert_array_equal(extras["tool/used"], [1, 0, 0, 0])
  np.testing.assert_array_equal(extras["tool/attempted"], [1, 1, 0, 0])
  p_native, n_native = gated_gspo.native_stats(np.asarray(correct, np.float32),
                                               extras["tool/attempted"], group_size=4)
  assert float(n_native[0]) == 2.0 and float(p_native[0]) == 0.5


def test_price_is_zero_until_the_cost_free_phase_ends(tmp_path):
  config = _config("runlocal")
  config.rl.steps = 3
  config.rl.advantage.cost_free_steps = 2
  config.rl.advantage.history_decay = 0.5
  rows = _gated_rl_metrics(config, tmp_path, lam=0.25)
  assert [row["gate/lam"] for row in rows] == [0.0, 0.0, 0.25]
  # history pooled in: every group sees at least its own 2 forced native answers
  assert all(row["gate/n_native_mean"] >= 2.0 for row in rows)


def test_kl_reference_is_the_starting_policy(tmp_path):
  """use_kl_loss: the KL reference is the policy the stage starts from, so the logged KL is 0
  at every step while nothing moves the policy (the tiny random policy earns no reward), up to
  float rounding (the reference and the update compute the same log-probs in different
  programs, whose last bits depend on the CPU's codegen)."""
  config = _config("runlocal")
  config.rl.steps = 2
  config.rl.use_kl_loss = True
  config.rl.beta = 1.0
  config.rl.drop_zero_advantage = 0  # every row has a KL gradient
  rows = _gated_rl_metrics(config, tmp_path, lam=0.25)
  assert all(row["reward/base_mean"] == 0 for row in rows)
  assert all(abs(row["kl/k3"]) < 1e-6 and abs(row["loss/kl"]) < 1e-6 for row in rows)


def test_decision_weight_marks_the_first_policy_token_of_sampled_rows(tmp_path, monkeypatch):
  """rl.advantage.decision_weight: the update gets per-token advantages A_i * w on the first
  policy token (slot P) of the sampled rows only, A_i elsewhere, and nothing before P is a
  policy token."""
  config = _config("runlocal")
  config.rl.steps = 1
  config.rl.rollout.native_rows = 1  # of group_size 4: rows 3, 7 are forced native
  config.rl.advantage.decision_weight = 10.0
  config.rl.drop_zero_advantage = 0
  seen = []
  real = rl_stage.train_on_rollout

  def spy(state, batch, *args, **kwargs):
    seen.append(batch)
    return real(state, batch, *args, **kwargs)

  monkeypatch.setattr(rl_stage, "train_on_rollout", spy)
  _gated_rl_metrics(config, tmp_path, lam=0.5)
  (batch,) = seen
  p = config.prompt_len
  mask = np.asarray(batch.loss_mask_BxL)
  assert not mask[:, :p].any() and mask[:, p].all()
  adv_B = np.asarray(batch.advantages_B)
  sampled_B = np.arange(len(adv_B)) % config.rl.group_size < config.rl.group_size - 1
  expected = np.repeat(adv_B[:, None], mask.shape[1], axis=1)
  expected[sampled_B, p] *= 10.0
  np.testing.assert_allclose(np.asarray(batch.advantages_BxL), expected, rtol=1e-6)


def test_history_cells_by_language_and_domain_and_a_bad_attribute(tmp_path):
  config = _config("runlocal")
  config.rl.steps = 2
  config.rl.advantage.cell_attrs = ("lang", "domain")
  rows = _gated_rl_metrics(config, tmp_path / "pairs", lam=0.5)
  assert len(rows) == 2 and all(0.0 <= row["gate/mean"] <= 1.0 for row in rows)
  config = _config("runlocal")
  config.rl.advantage.cell_attrs = ("language",)
  with pytest.raises(ValueError, match="cell_attrs"):
    _gated_rl_metrics(config, tmp_path / "bad", lam=0.5)


@pytest.mark.parametrize("threshold", ["tool_gain", "tool_gain_floor"])
def test_tool_gain_threshold_gets_the_calls_that_ran_and_their_history(tmp_path, monkeypatch,
                                                                        threshold):
  """advantage.threshold "tool_gain" / "tool_gain_floor": the advantages get the rows whose
  call ran (tool_B) and a per-cell history of calls (prior_tool_*); "fixed" gets neither."""
  seen = []
  real = gated_gspo.gated_gspo_advantages

  def spy(*args, **kwargs):
    seen.append(sorted(k for k, v in kwargs.items() if v is not None and k != "cfg"))
    return real(*args, **kwargs)

  monkeypatch.setattr(gated_gspo, "gated_gspo_advantages", spy)
  config = _config("runlocal")
  config.rl.steps = 2
  config.rl.advantage.threshold = threshold
  rows = _gated_rl_metrics(config, tmp_path / "gain", lam=0.5)
  assert len(rows) == 2 and all(0.0 <= row["gate/mean"] <= 1.0 for row in rows)
  assert seen[-1] == ["prior_hits_Q", "prior_n_Q", "prior_tool_hits_Q", "prior_tool_n_Q",
                      "tool_B"]
  seen.clear()
  config = _config("runlocal")
  config.rl.steps = 2
  _gated_rl_metrics(config, tmp_path / "fixed", lam=0.5)
  assert seen[-1] == ["prior_hits_Q", "prior_n_Q"]
