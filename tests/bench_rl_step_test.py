"""bench/rl_step.py runs end to end at `--quick` size and prints the old-vs-new RL step table.

No timing assertions: only that the script executes, prints one well-formed row per part, that
the printed numbers are the returned ones (the ratio checked unrounded), and that the old and
the new RL step sample the same first rollout (so the benchmark compares equal work).
"""
import pytest


def test_quick_run_prints_table(load_bench, capsys):
  result = load_bench("rl_step").main(["--quick"])
  out = capsys.readouterr().out
  lines = [l for l in out.splitlines() if l.startswith("|")]
  assert lines[0] == "| part | old s/step | new s/step | new/old |"
  assert lines[1] == "|---|---:|---:|---:|"
  body = lines[2:]
  assert [l.strip("|").split("|")[0].strip() for l in body] == ["rollout", "update", "total"]
  assert result["steps"] == 2
  assert "4 prompts x G=4" in out and "median of 2 interleaved steps" in out
  for line in body:
    part, old, new, ratio = [c.strip() for c in line.strip("|").split("|")]
    assert result["old"][part] > 0 and result["new"][part] > 0
    # The printed cells are the returned numbers (rounded for print: the ratio checked unrounded).
    assert [old, new, ratio] == [f"{result['old'][part]:.4f}", f"{result['new'][part]:.4f}",
                                 f"{result['ratio'][part]:.3f}"]
    assert result["ratio"][part] == pytest.approx(result["new"][part] / result["old"][part],
                                                  rel=1e-12)
  # The parts are pieces of the step: neither exceeds the step's wall time.
  for name in ("old", "new"):
    m = result[name]
    assert m["rollout"] <= m["total"] and m["update"] <= m["total"]
  # Same params, prompts and keys: the two first rollouts are the same tokens.
  assert result["same_first_rollout"] is True
  assert out.rstrip().endswith("first rollout identical (same params, prompts, keys): yes")


@pytest.mark.parametrize("flag", ["--steps", "--prompts", "--group"])
def test_rejects_non_positive_sizes(load_bench, flag):
  with pytest.raises(SystemExit):
    load_bench("rl_step").main(["--quick", flag, "0"])


def test_update_flop_count_matches_a_hand_count(load_bench):
  """The quick model: d=64, F=192, V=256, 2 layers, 4 query / 2 KV heads of 16; 8 rows x 16.
  Matmul weights per layer: q 64x64 + k, v 2 x 64x32 + o 64x64 + gate, up, down 3 x 64x192 =
  49,152; x2 layers + unembedding 64x256 = 114,688; x 6 x 128 tokens = 88,080,384. Attention:
  2 layers x 4 x 16^2 x 64 = 131,072 per row forward, x3 x 8 rows = 3,145,728."""
  bench = load_bench("rl_step")
  from rl_jax.models.config import get_model_config
  cfg = get_model_config("tiny", **bench.FLOPS_QUICK_MODEL)
  assert bench.update_flop_count(cfg, rows=8, seq_len=16) == 88_080_384 + 3_145_728


def test_update_flops_quick_run_prints_shares_of_the_matmul(load_bench, capsys):
  result = load_bench("rl_step").main(["--update-flops", "--quick", "--reps", "1"])
  out = capsys.readouterr().out
  lines = [l for l in out.splitlines() if l.startswith("|")]
  assert lines[0] == "| update | micro-batches | s/update | GFLOP/s | % of matmul |"
  body = [[c.strip() for c in l.strip("|").split("|")] for l in lines[2:]]
  assert [r[0] for r in body] == ["defaults (auto log-prob, by memory)", "naive log-prob"]
  assert result["matmul_gflops"] > 0 and f"matmul reference {result['matmul_gflops']:.0f}" in out
  for label, m, seconds, gflops, share in body:
    row = result["rows"][label]
    assert row["seconds"] > 0 and int(m) == row["microbatches"] >= 1
    assert row["gflops"] == pytest.approx(result["flops"] / row["seconds"] / 1e9, rel=1e-12)
    assert row["share"] == pytest.approx(row["gflops"] / result["matmul_gflops"], rel=1e-12)
    assert [seconds, gflops, share] == [f"{row['seconds']:.3f}", f"{row['gflops']:.1f}",
                                        f"{100 * row['share']:.1f}%"]
