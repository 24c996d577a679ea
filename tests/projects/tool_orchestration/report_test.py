"""The S4 multi-seed summary (`report.seeds`) on hand-made workdirs: per-seed success and the
paired counts and sign test, computed by hand."""
import json

import pytest

from rl_jax.projects.tool_orchestration import report


def _workdir(path, seed, arms):
  """A finished run's files as the loop writes them: config.json (seed, stage plan) and
  eval/<stage>.json per stage. arms: {stage name: (kind, reward, atomic_match, successes)}."""
  path.mkdir()
  (path / "eval").mkdir()
  plan = []
  for name, (kind, reward, match, successes) in arms.items():
    section = {"scorer": {"reward": reward, "atomic_match": match}} if kind == "rl" else {}
    plan.append({"name": name, "kind": kind, "section": section})
    records = [{"success": float(s)} for s in successes]
    (path / "eval" / f"{name}.json").write_text(json.dumps({"records": {name: records}}))
  (path / "config.json").write_text(json.dumps({"seed": seed, "stage_plan": plan}))
  return str(path)


def test_seeds_pairs_arms_of_the_same_seed_across_runs(tmp_path):
  sft0 = ("sft", None, None, [1, 0, 0, 1])
  a = _workdir(tmp_path / "s0", 0, {
      "sft": sft0,
      "rl_reward=graduated": ("rl", "graduated", "first", [1, 0, 0, 0]),
      "rl_reward=binary": ("rl", "binary", "first", [1, 1, 1, 1])})
  # The occurrence arm of seed 0 from another run (same SFT records).
  b = _workdir(tmp_path / "s0_occ", 0, {
      "sft": sft0, "rl_reward=graduated": ("rl", "graduated", "occurrence", [1, 1, 0, 1])})
  c = _workdir(tmp_path / "s1", 1, {
      "sft": ("sft", None, None, [0, 0, 1, 1]),
      "rl_reward=graduated": ("rl", "graduated", "first", [0, 1, 1, 1]),
      "rl_reward=binary": ("rl", "binary", "first", [0, 0, 1, 1])})
  out = report.seeds([a, b, c])
  assert out["per_seed"] == {"sft": {0: 0.5, 1: 0.5}, "graduated": {0: 0.25, 1: 0.75},
                             "binary": {0: 1.0, 1: 0.5}, "graduated:occurrence": {0: 0.75}}
  # graduated vs binary: seed 0 only binary solves 3 workflows, seed 1 only graduated one:
  # 1 vs 3 of 8; two-sided sign test on 4 discordant pairs: P(X <= 1 or X >= 3) = 10/16.
  gb = out["pairs"]["graduated vs binary"]
  assert (gb["a_only"], gb["b_only"], gb["n"], gb["a"], gb["b"]) == (1, 3, 8, 4, 6)
  assert gb["p"] == pytest.approx(10 / 16)
  # The occurrence arm ran in seed 0 only: 3 vs 4 solved, only-a 0, only-b 1: p = 1.
  ob = out["pairs"]["graduated:occurrence vs binary"]
  assert (ob["seeds"], ob["a_only"], ob["b_only"], ob["p"]) == ([0], 0, 1, 1.0)
  og = out["pairs"]["graduated:occurrence vs graduated"]
  assert (og["a_only"], og["b_only"]) == (2, 0) and og["p"] == pytest.approx(0.5)


def test_seeds_refuses_two_different_results_for_one_arm_and_seed(tmp_path):
  a = _workdir(tmp_path / "a", 3, {"sft": ("sft", None, None, [1, 0])})
  b = _workdir(tmp_path / "b", 3, {"sft": ("sft", None, None, [0, 0])})
  with pytest.raises(ValueError, match="arm 'sft' of seed 3 differs between workdirs"):
    report.seeds([a, b])


def test_seeds_pools_binary_runs_whatever_their_lookup(tmp_path):
  # The binary reward never reads atomic_match: a run configured with "occurrence" is the
  # "binary" arm, compared with the occurrence graduated arm of the same seed.
  a = _workdir(tmp_path / "s2", 2, {
      "sft": ("sft", None, None, [0, 1, 0]),
      "rl_reward=graduated": ("rl", "graduated", "occurrence", [0, 0, 0]),
      "rl_reward=binary": ("rl", "binary", "occurrence", [1, 1, 0])})
  out = report.seeds([a])
  assert set(out["per_seed"]) == {"sft", "graduated:occurrence", "binary"}
  ob = out["pairs"]["graduated:occurrence vs binary"]
  assert (ob["a_only"], ob["b_only"], ob["n"]) == (0, 2, 3)
  assert ob["p"] == pytest.approx(0.5)
