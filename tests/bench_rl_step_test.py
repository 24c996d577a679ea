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
