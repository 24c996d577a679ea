"""SWAP's step-prefix probe: one forward pass for every prefix against one forward per prefix.

    python bench/swap_probe.py            # B = 16 responses of 192 tokens, 8 steps each
    python bench/swap_probe.py --quick    # tiny sizes, seconds; what the test runs

Both compute the [B, K+1, A] log-probs of the answer after each of the K + 1 step prefixes
(k = 0: the prompt alone) of every response, with the same params and layout
(`rl_jax.algorithms.swap`): "one-pass" appends the K + 1 probes (trigger + answer) after the
response and masks each to its own prefix (`probe_answer_logp`, one forward of P + N + (K+1) Q
tokens); "naive" runs K + 1 plain causal forwards of P + N + Q tokens, the response after the
prefix marked padding (`naive_probe_answer_logp`). The table prints both times, the ratio
naive / one-pass and the largest difference of their outputs. Compile time is excluded (one
warm-up call each); the best of `reps` timed calls is reported.
"""
from __future__ import annotations

import argparse
import dataclasses
import time

import jax
import jax.numpy as jnp
import numpy as np

from rl_jax.algorithms import swap_probe
from rl_jax.models import qwen3
from rl_jax.models.config import get_model_config

HEADER = ("steps", "batch", "resp tokens", "one-pass ms", "naive ms", "ratio", "max |diff|")


@dataclasses.dataclass(frozen=True)
class Sizes:
  batch: int
  prompt_len: int
  resp_len: int
  steps: int
  trigger_len: int
  answer_len: int
  reps: int
  model: dict


FULL = Sizes(batch=16, prompt_len=32, resp_len=192, steps=8, trigger_len=2, answer_len=4,
             reps=5, model=dict(num_layers=4, hidden_size=256, num_heads=4, num_kv_heads=2,
                                head_dim=64, intermediate_size=768))
QUICK = Sizes(batch=2, prompt_len=4, resp_len=24, steps=8, trigger_len=1, answer_len=2, reps=2,
              model=dict(num_layers=1, hidden_size=32, num_heads=2, num_kv_heads=1,
                         head_dim=16, intermediate_size=64))


def synthetic_inputs(s: Sizes, vocab: int, seed: int):
  """Random prompt + response ids with `steps` steps of random lengths ending before the
  answer, and the probe (trigger + answer) of each row: the arrays `probe_answer_logp` takes."""
  rng = np.random.default_rng(seed)
  length = s.prompt_len + s.resp_len
  tokens = rng.integers(4, vocab, (s.batch, length)).astype(np.int32)
  valid = np.ones((s.batch, length), bool)
  cut = np.zeros((s.batch, s.steps + 1), np.int32)
  for i in range(s.batch):
    ends = np.sort(rng.choice(np.arange(1, s.resp_len - 4), s.steps, replace=False))
    cut[i] = np.concatenate([[s.prompt_len], s.prompt_len + ends])
  q = s.trigger_len + s.answer_len
  probe = rng.integers(4, vocab, (s.batch, q)).astype(np.int32)
  return (tokens, valid, cut, probe, np.ones((s.batch, q), bool), probe[:, s.trigger_len:])


def best_ms(fn, reps: int) -> float:
  jax.block_until_ready(fn())  # compile + warm-up
  times = []
  for _ in range(reps):
    t0 = time.perf_counter()
    jax.block_until_ready(fn())
    times.append(time.perf_counter() - t0)
  return 1e3 * min(times)


def run(s: Sizes, seed: int = 0) -> dict:
  vocab = 64
  cfg = get_model_config("tiny", vocab_size=vocab, max_seq_len=512, **s.model)
  params = qwen3.init_params(cfg, jax.random.key(seed))
  args = (params,) + tuple(jnp.asarray(x) for x in synthetic_inputs(s, vocab, seed))
  kw = dict(model_cfg=cfg, trigger_len=s.trigger_len)
  one = lambda: swap_probe.probe_answer_logp(*args, **kw)
  naive = lambda: swap_probe.naive_probe_answer_logp(*args, **kw)
  diff = float(np.abs(np.asarray(one()) - np.asarray(naive())).max())
  one_ms, naive_ms = best_ms(one, s.reps), best_ms(naive, s.reps)
  return {"steps": s.steps, "batch": s.batch, "resp_tokens": s.resp_len, "one_ms": one_ms,
          "naive_ms": naive_ms, "ratio": naive_ms / one_ms, "max_diff": diff}


def table_row(r: dict) -> str:
  return (f"| {r['steps']} | {r['batch']} | {r['resp_tokens']} | {r['one_ms']:.1f} | "
          f"{r['naive_ms']:.1f} | {r['ratio']:.2f}x | {r['max_diff']:.1e} |")


def _positive(text: str) -> int:
  value = int(text)
  if value < 1:
    raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
  return value


def main(argv: list[str] | None = None) -> dict:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--quick", action="store_true", help="tiny sizes (seconds), for the test")
  parser.add_argument("--reps", type=_positive, default=None, help="timed calls of each")
  parser.add_argument("--seed", type=int, default=0)
  args = parser.parse_args(argv)
  sizes = QUICK if args.quick else FULL
  if args.reps is not None:
    sizes = dataclasses.replace(sizes, reps=args.reps)
  print(f"model={sizes.model} backend={jax.default_backend()} jax={jax.__version__}")
  print("| " + " | ".join(HEADER) + " |")
  print("|" + "---:|" * len(HEADER))
  row = run(sizes, args.seed)
  print(table_row(row), flush=True)
  print(f"one-pass is {row['ratio']:.2f}x faster than one forward per prefix "
        f"({sizes.steps} steps per response)")
  return row


if __name__ == "__main__":
  main()
