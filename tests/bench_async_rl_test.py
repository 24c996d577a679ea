"""bench/async_rl.py runs at `--quick` size (3 RL steps per run, 8 fake devices split 4 / 4) and
prints its table: sequential, interleaved and overlapped runs, ratios to sequential.

No timing assertions: the script executes through the one loop, prints one well-formed row per
run with the returned numbers, the asynchronous runs trained on stale batches, and the runs on
the whole mesh train on the same first (on-policy) batch."""
import pytest


def test_quick_run_prints_table(load_bench, capsys):
  result = load_bench("async_rl").main(["--quick", "--steps", "3", "--rollout-devices", "4"])
  out = capsys.readouterr().out
  lines = [l for l in out.splitlines() if l.startswith("|")]
  assert lines[0] == "| run | devices (rollout / update) | s/step | ratio to sequential |"
  body = [[c.strip() for c in l.strip("|").split("|")] for l in lines[2:]]
  assert [r[0] for r in body] == ["sequential", "interleaved", "overlapped"]
  assert [r[1] for r in body] == ["8 shared", "8 shared", "4 / 4"]
  for name, _, seconds, ratio in body:
    assert result["seconds"][name] > 0
    assert [seconds, ratio] == [f"{result['seconds'][name]:.4f}", f"{result['ratio'][name]:.3f}"]
    assert result["ratio"][name] == pytest.approx(
        result["seconds"][name] / result["seconds"]["sequential"], rel=1e-12)
  assert 0.5 <= result["overlap_bound"] < 1.0
  assert f"a perfect overlap would reach ratio {result['overlap_bound']:.3f}" in out
  records = result["records"]
  for name in ("interleaved", "overlapped"):
    assert [r["offpolicy/staleness"] for r in records[name]] == [0.0, 1.0, 1.0]
  # Step 0 is on-policy in both runs on the whole mesh: the same prompts, keys and params give
  # the same rollout, so the same rewards.
  assert records["sequential"][0]["reward/mean"] == records["interleaved"][0]["reward/mean"]


def test_step_seconds_reads_the_right_metrics(load_bench):
  bench = load_bench("async_rl")
  recs = [{"time/rollout_s": 1.0, "time/update_s": 2.0, "time/step_s": 2.5}]
  assert bench.step_seconds(recs, asynchronous=False) == [3.0]
  assert bench.step_seconds(recs, asynchronous=True) == [2.5]
