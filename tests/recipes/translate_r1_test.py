"""The runlocal shrink of the Translate-R1 reproduction: every stage runs and writes coherent
outputs (pipeline check, not effect size)."""
import importlib.util
import json
import os
import pathlib

import numpy as np
import pytest

from rl_jax import metrics as metrics_lib
from rl_jax.recipes import translate_r1
from rl_jax.recipes import translate_r1_rl
from rl_jax.recipes import translate_r1_eval as ev

CONFIG = pathlib.Path(__file__).resolve().parents[2] / "configs" / "gated_gspo_tiny_cipher.py"


def _config(arg):
  spec = importlib.util.spec_from_file_location("gated_gspo_tiny_cipher", CONFIG)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(arg)


def _gated_rl_metrics(config, workdir, *, lam: float) -> list[dict]:
  """Gated RL from a fresh random init under `config`; returns the per-step metrics rows."""
  ctx = translate_r1.Context(config)
  params = translate_r1.qwen3.init_params(ctx.model_cfg, translate_r1.jax.random.key(0))
  writer = metrics_lib.MetricWriter(str(workdir), tensorboard=False)
  translate_r1.rl_train(ctx, params, gate="native_success", lam=lam,
                        key=translate_r1.jax.random.key(1), writer=writer, track_items=[])
  return metrics_lib.read_metrics(str(workdir / "metrics.jsonl"))


@pytest.fixture(scope="module")
def result(tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp("translate_r1"))
  config = _config("runlocal")
  config.rl.gates = ("native_success", "none")
  return workdir, config, translate_r1.run(config, workdir, log=lambda _: None)


def test_every_policy_is_evaluated_on_every_group(result):
  _, config, out = result
  names = {"sft", "always", "never"} | {f"{f}_lam{lam:g}" for f in ("gated", "ungated")
                                         for lam in config.rl.lams}
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
  assert out["alpha_max"] == max(config.rl.lams)
  assert set(out["sweep_alpha_0to1"]) == set(out["sweep"])
  for shares in out["sweep_alpha_0to1"].values():
    if isinstance(shares, dict):
      assert sum(shares.values()) == pytest.approx(1.0)


def test_eval_items_raise_small_groups_to_the_minimum():
  ctx = translate_r1.Context(_config("runlocal"))
  items = ev.eval_items(ctx.world, 2, 0, ("lookup", "counting"), min_per_group=12)
  per_group = {}
  for it in items:
    per_group[ev.group_of(it)] = per_group.get(ev.group_of(it), 0) + 1
  # base: 1 language -> 12 items; high: 6 languages x 2 = 12; unseen: 2 x 6; low/xlow: 8 x 2;
  # heldout: 9 x 2 (each item counted in its group, not its tier).
  assert per_group == {"base": 12, "high": 12, "low": 16, "xlow": 16, "unseen": 12, "heldout": 18}
  assert {it.domain for it in items} == {"lookup", "counting"}


def test_files_metrics_and_tracking(result):
  workdir, config, out = result
  assert json.load(open(os.path.join(workdir, "results.json")))["lams"] == out["lams"]
  assert "| policy |" in open(os.path.join(workdir, "report.md")).read()
  rl = metrics_lib.read_metrics(os.path.join(workdir, f"gated_lam{config.rl.lams[0]:g}",
                                             "metrics.jsonl"))
  assert [m["step"] for m in rl] == list(range(config.rl.steps))
  assert all(np.isfinite(m["loss/total"]) and 0 <= m["gate/mean"] <= 1 for m in rl)
  pre = metrics_lib.read_metrics(os.path.join(workdir, "pretrain", "metrics.jsonl"))
  assert len(pre) == config.pretrain.steps and all(np.isfinite(m["pretrain/nll"]) for m in pre)
  for track in out["tracking"].values():
    assert track[0]["step"] == 0 and track[-1]["step"] == config.rl.steps
    assert len(track[0]) == 1 + 34  # step + every language of the world


def test_unknown_config_argument_is_an_error():
  with pytest.raises(ValueError, match="runlocal"):
    _config("fast")


@pytest.mark.parametrize("field, value", [("gates", ("native_success", "gated")),
                                          ("lams", (0.1, -0.5)), ("gate_mode", "sigmoid"),
                                          ("decision_weight", 0.0)])
def test_bad_rl_field_fails_before_pretraining(tmp_path, field, value):
  """run() validates config.rl first: the error names the field, and nothing is trained."""
  config = _config("runlocal")
  config.rl[field] = value
  with pytest.raises(ValueError, match=f"config.rl.{field}"):
    translate_r1.run(config, str(tmp_path), log=lambda _: None)
  assert not (tmp_path / "pretrain").exists()


@pytest.mark.parametrize("train_call_syntax", [True, False])
def test_demonstrations_mask_the_tool_response_and_context_calls(train_call_syntax):
  config = _config("runlocal")
  config.sft.train_call_syntax = train_call_syntax
  ctx = translate_r1.Context(config)
  items = ctx.world.sample_items(3, 0, langs=["xl1"], domains=["comparison"])
  kinds = [translate_r1.NATIVE, translate_r1.TOOL, translate_r1.TOOL_CONTEXT]
  data = translate_r1.demonstrations(ctx, items, kinds)
  p, tok = ctx.loop_cfg.prompt_len, ctx.tokenizer
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
  table = ev.seed_table([out, other])
  expected = f"{out['summaries']['sft']['R'] + 0.1:.3f} ± 0.100"
  assert f"| sft | {expected} |" in table


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
                                n_alpha=config.eval.n_alpha, n_boot=20)
  assert b["point"] == pytest.approx(out["sweep"]["pareto_share/all"]["gated"])
  assert 0.0 <= b["lo"] <= b["median"] <= b["hi"] <= 1.0 and 0.0 <= b["p_goal"] <= 1.0
  assert "paired bootstrap over the items" in ev.seed_table([out])


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
  table = ev.training_rate_table({"p": rows}, first=2, last=2)
  # xlow: mean(0, 0.2) = 0.1 -> mean(0.6, 1.0) = 0.8; gate 0.75 -> 0; tiers never logged: nan.
  assert "| p | nan → nan | nan → nan | nan → nan | 0.100 → 0.800 | 0.750 → 0.000 |" in table


def test_native_rows_give_every_group_native_evidence(tmp_path):
  config = _config("runlocal")
  config.rl.steps = 1
  config.rl.native_rows = 2  # of group_size 4
  ctx = translate_r1.Context(config)
  params = translate_r1.qwen3.init_params(ctx.model_cfg, translate_r1.jax.random.key(0))
  writer = metrics_lib.MetricWriter(str(tmp_path), tensorboard=False)
  translate_r1.rl_train(ctx, params, gate="native_success", lam=0.5,
                        key=translate_r1.jax.random.key(1), writer=writer, track_items=[])
  (row,) = metrics_lib.read_metrics(str(tmp_path / "metrics.jsonl"))
  assert row["gate/n_native_mean"] >= 2.0 and row["tool/translate_rate"] <= 0.5
  config.rl.native_rows = 4
  with pytest.raises(ValueError, match="native_rows"):
    translate_r1.rl_train(ctx, params, gate="native_success", lam=0.5,
                          key=translate_r1.jax.random.key(1), writer=writer, track_items=[])


def test_malformed_calls_are_not_native_evidence():
  """Constructed episodes: a translation, a malformed call, a correct and a wrong native answer.
  The gate's native count is 2 (the native answers), its native accuracy 1/2."""
  ctx = translate_r1.Context(_config("runlocal"))
  (item,) = ctx.world.sample_items(1, 0, langs=["xl1"], domains=["comparison"])
  env, episodes, texts = ctx.env, [], []
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
    texts.append(answer)
  out = type("ToolOut", (), dict(transcripts=texts, episodes=episodes))
  scores = ev.score_episodes(env, out)
  np.testing.assert_array_equal(scores["translated"], [1, 0, 0, 0])
  np.testing.assert_array_equal(ev.attempted_call(scores), [1, 1, 0, 0])
  p_native, n_native = translate_r1_rl.gated_gspo.native_stats(
      scores["correct"], ev.attempted_call(scores), group_size=4)
  assert float(n_native[0]) == 2.0 and float(p_native[0]) == 0.5


def test_price_is_zero_until_the_cost_free_phase_ends(tmp_path):
  config = _config("runlocal")
  config.rl.steps = 3
  config.rl.cost_free_steps = 2
  config.rl.gate_history_decay = 0.5
  rows = _gated_rl_metrics(config, tmp_path, lam=0.25)
  assert [row["gate/lam"] for row in rows] == [0.0, 0.0, 0.25]
  # history pooled in: every group sees at least its own 2 forced native answers
  assert all(row["gate/n_native_mean"] >= 2.0 for row in rows)
  for field, bad in (("cost_free_until_rate", 0.0), ("gate_history_decay", 1.0),
                     ("cost_free_steps", -1)):
    broken = _config("runlocal")
    broken.rl[field] = bad
    with pytest.raises(ValueError, match=field):
      _gated_rl_metrics(broken, tmp_path / field, lam=0.25)


@pytest.mark.parametrize("scope", ["all", "native"])
def test_kl_reference_is_the_starting_policy(tmp_path, scope):
  """kl_beta > 0: by default the KL reference is the policy RL starts from, so the logged KL is
  0 at every step while nothing moves the policy (the tiny random policy earns no reward), up to
  float rounding: the reference and the update compute the same log-probs in different programs,
  whose last bits depend on the CPU's codegen (exactly 0 on one machine, 4e-15 then 8e-8 on an
  AVX-512 one); a different reference gives a positive KL and KL loss (> 1e-3). Bad KL settings
  are refused."""
  config = _config("runlocal")
  config.rl.steps = 2
  config.rl.kl_beta = 1.0
  config.rl.kl_scope = scope
  ctx = translate_r1.Context(config)
  params = translate_r1.qwen3.init_params(ctx.model_cfg, translate_r1.jax.random.key(0))
  other = translate_r1.qwen3.init_params(ctx.model_cfg, translate_r1.jax.random.key(7))
  runs = {}
  for name, ref in (("other", other), ("self", None)):
    writer = metrics_lib.MetricWriter(str(tmp_path / name), tensorboard=False)
    translate_r1.rl_train(ctx, params, gate="native_success", lam=0.25,
                          key=translate_r1.jax.random.key(1), writer=writer, track_items=[],
                          ref_params=ref)
    runs[name] = metrics_lib.read_metrics(str(tmp_path / name / "metrics.jsonl"))
  assert all(row["reward/base_mean"] == 0 for row in runs["self"])
  assert all(abs(row["kl/k3"]) < 1e-6 and abs(row["loss/kl"]) < 1e-6 for row in runs["self"])
  assert all(row["kl/k3"] > 1e-3 and row["loss/kl"] > 1e-3 for row in runs["other"])
  writer = metrics_lib.MetricWriter(str(tmp_path / "broken"), tensorboard=False)
  for field, bad in (("kl_beta", -0.1), ("kl_scope", "answers"), ("temperature", 0.7)):
    broken = _config("runlocal")
    broken.rl.kl_beta = 0.1
    broken.rl[field] = bad
    with pytest.raises(ValueError, match=field):
      _gated_rl_metrics(broken, tmp_path / field, lam=0.25)


def test_lr_drop_lowers_the_peak_learning_rate_from_its_step(tmp_path):
  """The logged learning rate (schedule included) equals the run without a drop before
  `lr_drop_step` and `lr_drop_factor` times it from then on."""
  logged = {}
  for name, drop_step in (("plain", -1), ("drop", 2)):
    config = _config("runlocal")
    config.rl.steps = 4
    config.rl.lr_drop_step = drop_step
    config.rl.lr_drop_factor = 0.25
    logged[name] = np.array([row["optim/lr"] for row in
                             _gated_rl_metrics(config, tmp_path / name, lam=0.25)])
  assert np.all(logged["plain"] > 0)
  np.testing.assert_allclose(logged["drop"], logged["plain"] * np.array([1, 1, 0.25, 0.25]),
                             rtol=1e-6)
  broken = _config("runlocal")
  broken.rl.lr_drop_step = 1
  broken.rl.lr_drop_factor = 1.5
  with pytest.raises(ValueError, match="lr_drop_factor"):
    _gated_rl_metrics(broken, tmp_path / "bad", lam=0.25)


def test_decision_weight_marks_the_first_policy_token_of_sampled_rows(tmp_path, monkeypatch):
  """rl.decision_weight: the update gets per-token advantages A_i * w on the first policy token
  (slot P) of the sampled rows only, A_i elsewhere, and nothing before P is a policy token."""
  config = _config("runlocal")
  config.rl.steps = 1
  config.rl.native_rows = 1  # of group_size 4: rows 3, 7 are forced native
  config.rl.decision_weight = 10.0
  ctx = translate_r1.Context(config)
  params = translate_r1.qwen3.init_params(ctx.model_cfg, translate_r1.jax.random.key(0))
  writer = metrics_lib.MetricWriter(str(tmp_path), tensorboard=False)
  seen = []
  real = translate_r1_rl.train_on_rollout

  def spy(state, batch, *args, **kwargs):
    seen.append(batch)
    return real(state, batch, *args, **kwargs)

  monkeypatch.setattr(translate_r1_rl, "train_on_rollout", spy)
  translate_r1.rl_train(ctx, params, gate="native_success", lam=0.5,
                        key=translate_r1.jax.random.key(1), writer=writer, track_items=[])
  (batch,) = seen
  p = ctx.loop_cfg.prompt_len
  mask = np.asarray(batch.loss_mask_BxL)
  assert not mask[:, :p].any() and mask[:, p].all()
  adv_B = np.asarray(batch.advantages_B)
  sampled_B = np.arange(len(adv_B)) % config.rl.group_size < config.rl.group_size - 1
  expected = np.repeat(adv_B[:, None], mask.shape[1], axis=1)
  expected[sampled_B, p] *= 10.0
  np.testing.assert_allclose(np.asarray(batch.advantages_BxL), expected, rtol=1e-6)
  broken = _config("runlocal")
  broken.rl.decision_weight = 0.0
  with pytest.raises(ValueError, match="decision_weight"):
    _gated_rl_metrics(broken, tmp_path / "bad", lam=0.5)


def test_history_cells_pool_by_language_or_by_language_and_domain(tmp_path):
  langs, domains = ("en", "a", "b"), ("x", "y")
  assert translate_r1_rl.history_cells(langs, domains, "language") == {
      ("en", "x"): 0, ("en", "y"): 0, ("a", "x"): 1, ("a", "y"): 1, ("b", "x"): 2, ("b", "y"): 2}
  assert translate_r1_rl.history_cells(langs, domains, "language_domain") == {
      ("en", "x"): 0, ("en", "y"): 1, ("a", "x"): 2, ("a", "y"): 3, ("b", "x"): 4, ("b", "y"): 5}
  config = _config("runlocal")
  config.rl.steps = 2
  config.rl.gate_history_key = "language_domain"
  rows = _gated_rl_metrics(config, tmp_path / "pairs", lam=0.5)
  assert len(rows) == 2 and all(0.0 <= row["gate/mean"] <= 1.0 for row in rows)
  config.rl.gate_history_key = "domain"
  with pytest.raises(ValueError, match="gate_history_key"):
    _gated_rl_metrics(config, tmp_path / "bad", lam=0.5)


@pytest.mark.parametrize("threshold", ["tool_gain", "tool_gain_floor"])
def test_tool_gain_threshold_gets_the_calls_that_ran_and_their_history(tmp_path, monkeypatch,
                                                                        threshold):
  """rl.gate_threshold="tool_gain" / "tool_gain_floor": the advantages get the rows whose call
  ran (tool_B) and a per-language history of calls (prior_tool_*); "fixed" gets neither."""
  seen = []
  real = translate_r1_rl.gated_gspo.gated_gspo_advantages

  def spy(*args, **kwargs):
    seen.append(sorted(k for k, v in kwargs.items() if v is not None and k != "cfg"))
    return real(*args, **kwargs)

  monkeypatch.setattr(translate_r1_rl.gated_gspo, "gated_gspo_advantages", spy)
  config = _config("runlocal")
  config.rl.steps = 2
  config.rl.gate_threshold = threshold
  rows = _gated_rl_metrics(config, tmp_path / "gain", lam=0.5)
  assert len(rows) == 2 and all(0.0 <= row["gate/mean"] <= 1.0 for row in rows)
  assert seen[-1] == ["prior_hits_Q", "prior_n_Q", "prior_tool_hits_Q", "prior_tool_n_Q",
                      "tool_B"]
  seen.clear()
  config.rl.gate_threshold = "fixed"
  _gated_rl_metrics(config, tmp_path / "fixed", lam=0.5)
  assert seen[-1] == ["prior_hits_Q", "prior_n_Q"]
  config.rl.gate_threshold = "gain"
  with pytest.raises(ValueError, match="config.rl.gate_threshold"):
    _gated_rl_metrics(config, tmp_path / "bad", lam=0.5)
