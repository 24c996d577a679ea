"""bench/sampler_filter.py runs at `--quick` size: a well-formed table, and the skipped filter
draws the same tokens as the always-on one (so the two compare equal work). No timing asserts."""

import pytest


def test_quick_run_prints_table(load_bench, capsys):
  rows = load_bench("sampler_filter").main(["--quick"])
  lines = [l for l in capsys.readouterr().out.splitlines() if l.startswith("|")]
  assert lines[0] == ("| batch | vocab | top_p | sample_token ms | always-filter ms | speedup "
                      "| agree |")
  body = lines[2:]
  assert len(body) == len(rows) == 2
  for line, row in zip(body, rows):
    cells = [c.strip() for c in line.strip("|").split("|")]
    assert cells[:3] == [str(row["batch"]), str(row["vocab"]), f"{row['top_p']:g}"]
    assert row["fast_ms"] > 0 and row["slow_ms"] > 0
    # The printed cells are the row's numbers; the ratio is checked on the unrounded times
    # (at --quick size both are ~0.1 ms, so the 2-decimal cells carry ~5% rounding).
    assert cells[3:6] == [f"{row['fast_ms']:.2f}", f"{row['slow_ms']:.2f}",
                          f"{row['speedup']:.2f}x"]
    assert row["speedup"] == pytest.approx(row["slow_ms"] / row["fast_ms"], rel=1e-12)
    # top_p = 1: nothing is filtered at this size; top_p = 0.9: both run the same filter.
    assert row["agree"] == 1.0
