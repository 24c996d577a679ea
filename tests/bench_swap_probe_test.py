"""bench/swap_probe.py runs end to end at `--quick` size and prints its table and ratio.

No timing assertion: only that the script runs, that the printed row is the returned numbers,
that the ratio is naive / one-pass, and that both computations agree (<= 1e-5), so the bench
compares equal work."""
import pytest


def test_quick_run_prints_table(load_bench, capsys):
  row = load_bench("swap_probe").main(["--quick"])
  out = capsys.readouterr().out.splitlines()
  lines = [l for l in out if l.startswith("|")]
  assert lines[0] == ("| steps | batch | resp tokens | one-pass ms | naive ms | ratio | "
                      "max |diff| |")
  cells = [c.strip() for c in lines[2].strip("|").split("|")]
  assert cells[:3] == ["8", "2", "24"]
  assert cells[3:6] == [f"{row['one_ms']:.1f}", f"{row['naive_ms']:.1f}", f"{row['ratio']:.2f}x"]
  assert row["ratio"] == pytest.approx(row["naive_ms"] / row["one_ms"], rel=1e-9)
  assert row["max_diff"] <= 1e-5
  assert out[-1].startswith(f"one-pass is {row['ratio']:.2f}x faster")


def test_rejects_non_positive_reps(load_bench):
  with pytest.raises(SystemExit):
    load_bench("swap_probe").main(["--quick", "--reps", "0"])
