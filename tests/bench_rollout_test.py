"""bench/rollout.py runs end to end at `--quick` size and prints the throughput table.

No timing assertions: only that the script executes, prints one well-formed row per case, that
the printed numbers are consistent with each other, and that the no-cache baseline decodes the
same tokens as the cached `generate` (so the benchmark compares equal work).
"""
import importlib.util
import pathlib
import sys

import pytest

_SCRIPT = pathlib.Path(__file__).resolve().parents[1] / "bench" / "rollout.py"


def _load_bench():
  # bench/ is not a package; register the module before executing it (dataclasses needs it).
  name = "bench_rollout_under_test"
  if name in sys.modules:
    return sys.modules[name]
  spec = importlib.util.spec_from_file_location(name, _SCRIPT)
  module = importlib.util.module_from_spec(spec)
  sys.modules[name] = module
  spec.loader.exec_module(module)
  return module


def test_quick_run_prints_table(capsys):
  rows = _load_bench().main(["--quick"])
  lines = [l for l in capsys.readouterr().out.splitlines() if l.startswith("|")]
  assert lines[0] == "| T | batch | cached tok/s | recompute tok/s | speedup | agree |"
  assert lines[1] == "|---:|---:|---:|---:|---:|---:|"
  body = lines[2:]
  assert len(body) == len(rows) == 1
  cells = [c.strip() for c in body[0].strip("|").split("|")]
  assert cells[0] == "8" and cells[1] == "2"  # QUICK: T=8 new tokens, batch 2
  row = rows[0]
  assert row["cached_tok_s"] > 0 and row["recompute_tok_s"] > 0
  # The printed cells are the row's numbers (rounded for print: the ratio is checked unrounded).
  assert cells[2:5] == [f"{row['cached_tok_s']:.0f}", f"{row['recompute_tok_s']:.0f}",
                        f"{row['speedup']:.1f}x"]
  # speedup = recompute time / cached time = cached tok/s / recompute tok/s (same token count).
  assert row["speedup"] == pytest.approx(row["cached_tok_s"] / row["recompute_tok_s"], rel=1e-9)
  # Same key, knobs and logits up to rounding: every generated token must match.
  assert float(cells[5]) == 1.0, f"recompute baseline disagrees with generate: {body[0]}"


def test_rejects_non_positive_reps():
  with pytest.raises(SystemExit):
    _load_bench().main(["--quick", "--reps", "0"])
