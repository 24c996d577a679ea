"""bench/packing.py runs at `--quick` size and prints its packed-vs-unpacked table.

No timing assertions: the script executes, prints one well-formed row per layout whose cells are
the returned numbers, the ratio is tokens/s packed over unpacked, and both layouts compute the
same loss (so the benchmark compares equal work)."""
import pytest


def test_quick_run_prints_table(load_bench, capsys):
  result = load_bench("packing").main(["--quick"])
  out = capsys.readouterr().out
  lines = [l for l in out.splitlines() if l.startswith("|")]
  assert lines[0] == "| layout | rows x slots | s/update | tokens/s |"
  body = [[c.strip() for c in l.strip("|").split("|")] for l in lines[2:]]
  assert [r[0] for r in body] == ["unpacked", "packed"]
  for name, shape, seconds, tps in body:
    assert result["seconds"][name] > 0
    assert shape == " x ".join(str(x) for x in result["shapes"][name])
    assert [seconds, tps] == [f"{result['seconds'][name]:.4f}",
                              f"{result['tokens_per_s'][name]:.0f}"]
    assert result["tokens_per_s"][name] == pytest.approx(
        result["real_tokens"] / result["seconds"][name], rel=1e-12)
  assert result["ratio"] == pytest.approx(
      result["tokens_per_s"]["packed"] / result["tokens_per_s"]["unpacked"], rel=1e-12)
  assert f"packed / unpacked tokens/s: {result['ratio']:.3f}" in out
  assert result["loss"]["packed"] == pytest.approx(result["loss"]["unpacked"], abs=1e-5)


def test_rejects_non_positive_sizes(load_bench):
  with pytest.raises(SystemExit):
    load_bench("packing").main(["--quick", "--rows", "0"])
