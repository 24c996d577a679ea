"""Fused log-prob benchmark: forward+backward peak temporary memory and wall time vs naive.

For each vocabulary size it compiles `jax.value_and_grad` of sum(log p(y)) w.r.t. (h, W) for
every implementation of `rl_jax.kernels.fused_logprob` and prints

  - temp bytes: `jax.jit(f).lower(...).compile().memory_analysis().temp_size_in_bytes` (the
    peak scratch XLA plans for; arguments and outputs are the same for every implementation);
  - wall time: min over --reps runs of the compiled function (compile excluded), with the
    implementations interleaved in each repetition so load on the machine hits them alike.

The naive path at N = 4096, V = 151,936 needs ~10 GiB of temporaries and minutes per step on a
2-core CPU, so by default its wall time (and the XLA path's, for the ratio) is measured at
--time_n tokens when V > --full_time_max_v; its memory is always reported at the full N.
Pallas runs in interpret mode off TPU/GPU: its CPU numbers are an emulation, timed only at the
smallest vocabulary and --time_n tokens.

  python bench/logprob.py                       # N=4096, D=1024, V in {151936, 32768}
  python bench/logprob.py --vocabs 32768 --reps 3
"""
from __future__ import annotations

import argparse
import os
import platform
import subprocess
import time

import jax
import jax.numpy as jnp

from rl_jax.kernels.fused_logprob import api


def _loss_and_grad(implementation: str, block_n, block_v):
  def loss(h_NxD, w_DxV, y_N, mask_N, temperature):
    logp_N = api.fused_logprob(h_NxD, w_DxV, y_N, mask_N, temperature=temperature,
                               implementation=implementation, block_n=block_n, block_v=block_v)
    return jnp.sum(logp_N)
  return jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))


def _inputs(key, n: int, d: int, v: int, dtype):
  k_h, k_w, k_y = jax.random.split(key, 3)
  h = jax.random.normal(k_h, (n, d), jnp.float32).astype(dtype)
  w = (jax.random.normal(k_w, (d, v), jnp.float32) * d ** -0.5).astype(dtype)
  y = jax.random.randint(k_y, (n,), 0, v)
  return h, w, y, jnp.ones((n,), jnp.bool_), jnp.float32(0.8)


def _shapes(n: int, d: int, v: int, dtype):
  s = jax.ShapeDtypeStruct
  return (s((n, d), dtype), s((d, v), dtype), s((n,), jnp.int32), s((n,), jnp.bool_),
          s((), jnp.float32))


def _temp_bytes(fn, args) -> int:
  return fn.lower(*args).compile().memory_analysis().temp_size_in_bytes


def _time(compiled_by_impl, args, reps: int):
  times = {name: [] for name in compiled_by_impl}
  for _ in range(reps):
    for name, compiled in compiled_by_impl.items():
      start = time.perf_counter()
      jax.block_until_ready(compiled(*args))
      times[name].append(time.perf_counter() - start)
  return {name: min(ts) for name, ts in times.items()}


def _machine() -> str:
  try:
    lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
    model = next((l.split(":", 1)[1].strip() for l in lscpu.splitlines()
                  if l.startswith("Model name")), platform.processor())
  except OSError:
    model = platform.processor()
  return (f"{model}, nproc={os.cpu_count()}, backend={jax.default_backend()}, "
          f"devices={jax.devices()[0].device_kind}, jax {jax.__version__}")


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--n", type=int, default=4096)
  parser.add_argument("--d", type=int, default=1024)
  parser.add_argument("--vocabs", default="151936,32768")
  parser.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"))
  parser.add_argument("--reps", type=int, default=2)
  parser.add_argument("--time_n", type=int, default=1024,
                      help="tokens for timing naive (and xla, for the ratio) at large V")
  parser.add_argument("--full_time_max_v", type=int, default=32768,
                      help="largest V at which naive is timed at the full --n")
  parser.add_argument("--block_n", type=int, default=None)
  parser.add_argument("--block_v", type=int, default=None)
  parser.add_argument("--skip_pallas", action="store_true")
  args = parser.parse_args()
  dtype = jnp.dtype(args.dtype)
  vocabs = [int(v) for v in args.vocabs.split(",")]
  print(f"# machine: {_machine()}")
  print(f"# N={args.n} D={args.d} dtype={dtype.name} reps={args.reps} (min reported)\n")
  print("| V | impl | temp MiB (N=%d) | vs naive | timed N | time s | vs naive |" % args.n)
  print("|---|---|---|---|---|---|---|")
  impls = ["naive", "xla"] + ([] if args.skip_pallas else ["pallas"])
  key = jax.random.key(0)
  for v in vocabs:
    blocks = dict(naive=(None, None), xla=(args.block_n, args.block_v),
                  pallas=(args.block_n, args.block_v))
    fns = {name: _loss_and_grad(name, *blocks[name]) for name in impls}
    temp = {name: _temp_bytes(fn, _shapes(args.n, args.d, v, dtype)) for name, fn in fns.items()}
    # Timing groups {tokens: implementations}; naive is in every group, as the baseline.
    groups = {args.n if v <= args.full_time_max_v else min(args.time_n, args.n): ["naive", "xla"]}
    if "pallas" in impls and v == min(vocabs):
      groups.setdefault(min(args.time_n, args.n), ["naive"]).append("pallas")
    rows = {name: "- | - | -" for name in impls}
    for time_n, timed in groups.items():
      inputs = _inputs(key, time_n, args.d, v, dtype)
      compiled = {name: fns[name].lower(*inputs).compile() for name in timed}
      secs = _time(compiled, inputs, args.reps)
      for name in timed:
        if name != "naive" or time_n == max(groups):
          rows[name] = f"{time_n} | {secs[name]:.3f} | {secs[name] / secs['naive']:.2f}x"
        if name != "naive" and time_n != max(groups):
          rows[name] += f" (naive {secs['naive']:.3f} s at N={time_n})"
    for name in impls:
      label = name + (" (interpret)" if name == "pallas" and jax.default_backend() == "cpu"
                      else "")
      print(f"| {v} | {label} | {temp[name] / 2**20:.0f} | {temp[name] / temp['naive']:.3f}x "
            f"| {rows[name]} |", flush=True)

if __name__ == "__main__":
  main()
