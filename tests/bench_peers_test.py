"""bench/peers.py: the quick run prints well-formed tables, and rl_jax equals HF on its checkpoint.

No timing assertions: the quick run (a subprocess, as a user runs it) must print the machine
lines, one sampling row per dtype and one GRPO row per side, with finite positive rl_jax
numbers; peer cells are numbers when torch / transformers / trl are installed and
"not installed" otherwise. With transformers + torch importable, a separate test checks that
rl_jax's logits, next tokens and greedy tokens on the saved checkpoint equal HF's (an
independent implementation of the same model), i.e. the benchmark compares equal work.
"""
import importlib.util
import math
import os
import pathlib
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
SCRIPT = REPO / "bench" / "peers.py"
HF_PEERS = all(importlib.util.find_spec(p) is not None for p in ("torch", "transformers"))
TRL_PEERS = HF_PEERS and all(importlib.util.find_spec(p) is not None
                             for p in ("trl", "accelerate", "datasets"))


@pytest.fixture(scope="module")
def quick_output() -> str:
  env = dict(os.environ)
  # conftest.py forces 8 fake CPU devices for this process; the bench runs as a user runs it.
  env["XLA_FLAGS"] = " ".join(f for f in env.get("XLA_FLAGS", "").split()
                              if not f.startswith("--xla_force_host_platform_device_count"))
  env["JAX_PLATFORMS"] = "cpu"
  env["PYTHONPATH"] = os.pathsep.join([str(REPO)] + [p for p in [env.get("PYTHONPATH")] if p])
  proc = subprocess.run([sys.executable, str(SCRIPT), "--quick"], cwd=REPO, env=env,
                        capture_output=True, text=True, timeout=900)
  assert proc.returncode == 0, f"stdout:\n{proc.stdout[-3000:]}\nstderr:\n{proc.stderr[-5000:]}"
  return proc.stdout


def _table(out: str, header: str) -> list[list[str]]:
  """The body rows (cells) of every markdown table whose header line is `header`, in order."""
  lines = out.splitlines()
  starts = [i for i, line in enumerate(lines) if line == header]
  assert starts, f"no table {header!r} in:\n{out}"
  rows = []
  for start in starts:
    assert set(lines[start + 1].replace("|", "")) <= set("-:"), lines[start + 1]
    for line in lines[start + 2:]:
      if not line.startswith("|"):
        break
      cells = [c.strip() for c in line.strip("|").split("|")]
      assert len(cells) == header.count("|") - 1, line
      rows.append(cells)
  return rows


def _positive(cell: str) -> float:
  value = float(cell.rstrip("%"))
  assert math.isfinite(value) and value > 0, cell
  return value


def _peer(cell: str, installed: bool) -> float | None:
  if not installed:
    assert cell == "not installed", cell
    return None
  return _positive(cell)


def _check_sampling(out: str, hf: bool) -> None:
  lines = out.splitlines()
  assert lines[0].startswith("machine: ") and "nproc" in lines[0] and "load average" in lines[0]
  assert lines[1].startswith("versions: jax ") and "torch" in lines[1] and "trl" in lines[1]
  rows = _table(out, "| params | N new | batch | rl_jax tok/s | HF tok/s | rl_jax/HF | "
                     "stream-bound tok/s | rl_jax % of bound | dots-only tok/s |")
  assert [r[:3] for r in rows] == [["float32", "8", "2"], ["bfloat16", "8", "2"]]
  for dtype, _, _, ours, theirs, ratio, bound, share, dots in rows:
    ours_v, bound_v = _positive(ours), _positive(bound)
    _positive(dots)
    assert float(share.rstrip("%")) == pytest.approx(100 * ours_v / bound_v, rel=0.02, abs=0.1)
    theirs_v = _peer(theirs, hf)
    if theirs_v is None:
      assert ratio == "n/a"
    else:
      # Both rates are printed rounded to whole tok/s: bound the ratio by that rounding (a
      # loaded machine can print HF's bf16 rate as "1", where the rounding is half the value).
      low, high = (ours_v - 0.5) / (theirs_v + 0.5), (ours_v + 0.5) / max(theirs_v - 0.5, 1e-9)
      assert low * 0.98 - 0.01 <= float(ratio) <= high * 1.02 + 0.01, (dtype, ratio, low, high)
  checks = [l for l in lines if l.startswith("same model check")]
  if hf:  # the two frameworks run the same model
    assert "argmax equal: yes" in checks[0] and "greedy tokens equal: yes" in checks[0], checks
  else:
    assert not checks


def _check_grpo(out: str, trl_installed: bool) -> None:
  rows = _table(out, "| side | s/step | rollout s | update s | peak RSS GiB | time vs TRL | "
                     "RSS vs TRL | resp len |")
  ours = [r for r in rows if r[0].startswith("rl_jax (")]
  assert ours and rows[0][0].startswith("rl_jax (defaults")
  assert rows[-1][0] == "TRL GRPOTrainer" and len(rows) == len(ours) + 1
  for side, total, rollout, update, rss, vs_time, vs_rss, length in ours:
    total_v, rollout_v, update_v = _positive(total), _positive(rollout), _positive(update)
    assert rollout_v <= total_v * 1.01 and update_v <= total_v * 1.01, side
    assert 0 < _positive(rss) < 64
    assert 0 < float(length) <= 8  # QUICK: 8 new tokens
    if trl_installed:
      assert _positive(vs_time) and _positive(vs_rss)
    else:
      assert vs_time == vs_rss == "n/a"
  trl = rows[-1]
  if trl_installed:
    assert [_positive(c) for c in trl[1:5]] and trl[5:7] == ["1.00", "1.00"]
    assert 0 < float(trl[7]) <= 8
  else:
    assert trl[1:5] == ["not installed"] * 4
  info = next(l for l in out.splitlines() if l.startswith("model ") and "tokens per prompt" in l)
  assert "rl_jax 8" in info
  assert ("TRL 8" in info) if trl_installed else ("TRL: not installed" in info)
  assert "WARNING" not in out  # neither child loaded the other framework
  assert out.rstrip().splitlines()[-1].startswith("wall time of this run:")


def test_quick_run_prints_machine_and_sampling_table(quick_output):
  _check_sampling(quick_output, HF_PEERS)


def test_quick_run_prints_grpo_table(quick_output):
  _check_grpo(quick_output, TRL_PEERS)


def test_quick_run_without_peers(load_bench, monkeypatch, capsys):
  """As CI runs it (no torch): the rl_jax side runs, the peer cells read "not installed"."""
  bench = load_bench("peers")
  monkeypatch.setattr(bench, "import_peers", lambda: None)
  monkeypatch.setattr(bench, "trl_available", lambda: False)
  # The rl_jax child inherits the environment: one CPU device, not conftest's 8 fake ones.
  monkeypatch.setenv("XLA_FLAGS", " ".join(
      f for f in os.environ.get("XLA_FLAGS", "").split()
      if not f.startswith("--xla_force_host_platform_device_count")))
  bench.main(["--quick"])
  out = capsys.readouterr().out
  _check_sampling(out, hf=False)
  _check_grpo(out, trl_installed=False)


def test_checkpoint_tokenizer_and_reward(load_bench, tmp_path):
  """The checkpoint folder loads in rl_jax with the tokenizer: one token per prompt word."""
  from rl_jax import tokenizers
  from rl_jax.models import weights
  import numpy as np
  bench = load_bench("peers")
  sizes = bench.QUICK
  cfg = bench.write_checkpoint(str(tmp_path), sizes)
  loaded_cfg, _ = weights.load_hf_checkpoint(str(tmp_path))
  assert loaded_cfg == cfg and cfg.num_params() > 0
  tok = tokenizers.load_tokenizer(str(tmp_path))
  assert tok.vocab_size == cfg.vocab_size and (tok.pad_id, tok.eos_id) == (0, 3)
  ids = bench.prompt_ids(np.random.default_rng(0), 3, sizes.prompt_len, cfg.vocab_size)
  for row in ids:
    assert tok.encode(bench.ids_to_text(row)) == [int(i) for i in row]
  assert bench.reward_of_text("w5 w6 w7 </s>") == pytest.approx(0.5)
  assert bench.reward_of_text("") == 0.0


def test_full_model_is_the_29m_qwen3(load_bench):
  cfg = load_bench("peers").model_config(load_bench("peers").FULL)
  assert round(cfg.num_params() / 1e6, 1) == 29.4 and cfg.tie_embeddings
  assert (cfg.vocab_size, cfg.num_heads, cfg.num_kv_heads, cfg.head_dim) == (8192, 8, 4, 64)


def test_rejects_non_positive_reps(load_bench):
  with pytest.raises(SystemExit):
    load_bench("peers").main(["--quick", "--reps", "0"])


def test_rljax_matches_transformers_on_saved_checkpoint(load_bench, tmp_path):
  """rl_jax's f32 logits, next tokens and greedy decode equal transformers' on the checkpoint."""
  bench = load_bench("peers")
  pytest.importorskip("torch")
  peers = bench.import_peers()  # imports HF's `kernels` first (the repo's kernels/ shadows it)
  pytest.importorskip("transformers")
  assert peers is not None
  bench.write_checkpoint(str(tmp_path), bench.QUICK)
  a = bench.hf_agreement(peers, str(tmp_path), bench.QUICK)
  assert a["max_abs_logit_diff"] <= 1e-4 * max(1.0, a["logit_scale"]), a
  assert a["next_token_equal"], a
  assert a["greedy_equal"], (a["rljax_greedy"], a["hf_greedy"])
  assert a["greedy_tokens"] == 2 * bench.QUICK.check_new_tokens
