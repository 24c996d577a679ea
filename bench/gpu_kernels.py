"""One-shot GPU check of the Pallas kernels: do they compile, are they correct, how fast are they.

Run once on a machine with a GPU (the package must be importable as `rl_jax.kernels`):

  ln -s ../kernels rl_jax/kernels        # only where the package is not pip-installed
  PYTHONPATH=. python bench/gpu_kernels.py --out gpu_kernels.json
  python bench/gpu_kernels.py --smoke    # CPU, interpret mode, tiny shapes (< 2 minutes)

Sections (every check is wrapped in try/except: a failure prints the last lines of its
traceback, is recorded in the JSON, and the script goes on; the JSON is rewritten after every
section, so a run killed by a time limit still leaves the finished sections):

  1. environment: jax / jaxlib versions, devices, default backend, `jax.print_environment_info`.
  2. fused_logprob correctness: log p(y), entropy and the gradients of sum(log p) w.r.t. (h, W)
     of "xla" and "pallas" (schedules "loop" and "grid", compiled; interpret mode with --smoke)
     against "naive" on the same (bf16-rounded) inputs in f32 at highest matmul precision, for
     two shapes (one V not a multiple of the block) in f32 and bf16, temperature 0.8, a mask with
     False entries (masked tokens must give exactly 0). Tolerance: max |err| <= tol * max |ref|
     per output, tol 1e-4 (f32) or 2e-2 (bf16). Pallas tries the API default blocks first and,
     if they fail to compile or run, smaller ones (recorded). Also the log-probs of
     implementation="auto" and what `resolve_implementation("auto")` picks.
  3. step_importance correctness: "xla" and "pallas" (compiled) against a float64 numpy loop
     (copied from tests/kernels/step_importance_test.py) for every normalization x weighting,
     plus a probe whose block shapes are all powers of two (K = 1), since Triton needs that.
  4. timing: step_penalties pallas vs xla at B=256, K+1=17, A=8, T=2048; then
     value_and_grad of sum(log p) w.r.t. (h, W) at N=4096, D=1024, V=151936 in bf16 for naive,
     xla, pallas loop and pallas grid (XLA temp bytes from `memory_analysis()`, min wall time
     over 5 reps after 1 warm-up, implementations interleaved per rep), then N=16384 for xla and
     pallas loop. Timing stops starting new work once 300 s have elapsed.
  5. --out FILE.json: everything above (default gpu_kernels.json).
"""
from __future__ import annotations

import argparse
import faulthandler
import json
import os
import platform
import sys
import time
import traceback

import jax
import jax.numpy as jnp
import numpy as np

from rl_jax.kernels.fused_logprob import api as flp
from rl_jax.kernels.fused_logprob import pallas as flp_pallas
from rl_jax.kernels.step_importance import api as sip
from rl_jax.kernels.step_importance import reference as sip_reference

T0 = time.perf_counter()
TIMING_BUDGET_S = 300.0     # no new timing work after this much elapsed time
HARD_BUDGET_S = 480.0       # no new section at all after this (the remote limit is 600 s)
WATCHDOG_S = 560.0          # dump every thread's Python stack if still running then

FULL = dict(
    check_shapes=((256, 128, 1000), (512, 256, 32768)),
    # None = the API defaults (pallas 256 x 512); the rest are tried only if those fail.
    block_candidates=(None, (128, 256), (64, 128), (32, 128), (16, 128)),
    time_shapes=((4096, 1024, 151936, ("naive", "xla", "pallas_loop", "pallas_grid")),
                 (16384, 1024, 151936, ("xla", "pallas_loop"))),
    reps=5,
    step_time=dict(b=256, k=16, a=8, t=2048),
)
SMOKE = dict(
    check_shapes=((40, 16, 300), (64, 32, 1000)),
    block_candidates=(None,),
    time_shapes=((128, 32, 1024, ("naive", "xla", "pallas_loop", "pallas_grid")),
                 (256, 32, 1024, ("xla", "pallas_loop"))),
    reps=2,
    step_time=dict(b=16, k=4, a=4, t=64),
)
TOL = {"float32": 1e-4, "bfloat16": 2e-2}
TEMPERATURE = 0.8
OUTPUTS = ("logp", "entropy", "dh", "dw")
STEP_FIELDS = ("importance_BxK", "norm_importance_BxK", "weights_BxK", "step_penalty_BxK",
               "step_len_BxK", "token_penalty_BxT")


# ----------------------------------------------------------------------------- plumbing


def elapsed() -> float:
  return time.perf_counter() - T0


def log(msg: str):
  print(f"[{elapsed():6.1f}s] {msg}", flush=True)


def error_tail(exc: BaseException, lines: int = 15, width: int = 300) -> str:
  """The last `lines` traceback lines, each cut to `width` characters (MLIR dumps are long);
  JAX's "removed its internal frames" footer and ^^^ markers are dropped to keep the message."""
  text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)).rstrip()
  kept = [l for l in text.splitlines()
          if l.strip() and l.strip() != "-" * 20 and set(l.strip()) - set("^~")
          and "JAX has removed its internal frames" not in l]
  return "\n".join(l if len(l) <= width else l[:width] + " ..." for l in kept[-lines:])


def attempt(what: str, fn):
  """(True, fn()) or (False, error text for the JSON); failures are printed, never raised."""
  try:
    return True, fn()
  except Exception as exc:  # pylint: disable=broad-except
    printed = error_tail(exc)
    log(f"FAILED {what}:\n    " + printed.replace("\n", "\n    "))
    return False, error_tail(exc, lines=40, width=2000)


def write_json(path: str, results: dict):
  try:
    with open(path + ".tmp", "w") as f:
      json.dump(results, f, indent=1, default=str)
    os.replace(path + ".tmp", path)
  except Exception as exc:  # pylint: disable=broad-except
    log(f"could not write {path}: {error_tail(exc, 3)}")


# ----------------------------------------------------------------------------- 1. environment


def environment() -> dict:
  env = dict(python=sys.version.split()[0], platform=platform.platform(),
             jax=jax.__version__, backend=jax.default_backend(),
             devices=[str(d) for d in jax.devices()],
             device_kind=jax.devices()[0].device_kind,
             env_vars={k: os.environ.get(k) for k in ("XLA_FLAGS", "XLA_PYTHON_CLIENT_MEM_FRACTION",
                                                      "XLA_PYTHON_CLIENT_PREALLOCATE")})
  try:
    import jaxlib  # pylint: disable=g-import-not-at-top
    env["jaxlib"] = jaxlib.__version__
  except Exception:  # pylint: disable=broad-except
    env["jaxlib"] = None
  env["pallas_use_mosaic_gpu"] = getattr(jax.config, "jax_pallas_use_mosaic_gpu", None)
  ok, info = attempt("print_environment_info",
                     lambda: jax.print_environment_info(return_string=True))
  env["environment_info"] = info if ok else None
  env["auto_fused_logprob"] = flp.resolve_implementation("auto")
  env["auto_step_penalties"] = sip.resolve_implementation("auto")
  return env


# ----------------------------------------------------------------------------- 2. fused_logprob


def impl_kwargs(name: str, interpret: bool, blocks=None) -> dict:
  """API keyword arguments of an implementation label ("pallas_loop" -> schedule "loop")."""
  if name.startswith("pallas_"):
    kw = dict(implementation="pallas", schedule=name.split("_", 1)[1], interpret=interpret)
    if blocks is not None:
      kw.update(block_n=blocks[0], block_v=blocks[1])
    return kw
  return dict(implementation=name)


def blocks_label(name: str, blocks) -> str:
  if not name.startswith("pallas_"):
    return "-"
  if blocks is None:
    return f"default {flp_pallas.DEFAULT_BLOCK_N}x{flp_pallas.DEFAULT_BLOCK_V}"
  return f"{blocks[0]}x{blocks[1]}"


def check_inputs(n: int, d: int, v: int, dtype, seed: int = 0):
  """h, W (scaled so logits are O(1)), ids, a mask with ~15% False (token 0: id -100), T."""
  k_h, k_w, k_y, k_m = jax.random.split(jax.random.key(seed), 4)
  h = jax.random.normal(k_h, (n, d), jnp.float32).astype(dtype)
  w = (jax.random.normal(k_w, (d, v), jnp.float32) * d ** -0.5).astype(dtype)
  mask = jax.random.bernoulli(k_m, 0.85, (n,)).at[0].set(False)
  y = jax.random.randint(k_y, (n,), 0, v).at[0].set(-100)
  return h, w, y, mask, jnp.float32(TEMPERATURE)


def value_and_grads(kw: dict, inputs) -> dict:
  """log p, entropy and d sum(log p) / d(h, W), as f32 numpy arrays."""
  def loss(h, w, y, mask, t):
    logp, ent = flp.fused_logprob(h, w, y, mask, temperature=t, return_entropy=True, **kw)
    return jnp.sum(logp), (logp, ent)
  fn = jax.jit(jax.value_and_grad(loss, argnums=(0, 1), has_aux=True))
  (_, (logp, ent)), (dh, dw) = jax.block_until_ready(fn(*inputs))
  return {k: np.asarray(jnp.asarray(x, jnp.float32))
          for k, x in zip(OUTPUTS, (logp, ent, dh, dw))}


def reference(inputs) -> dict:
  """The naive path on f32 copies of the inputs at highest matmul precision."""
  h, w, y, mask, t = inputs
  with jax.default_matmul_precision("highest"):
    return value_and_grads(dict(implementation="naive"),
                           (h.astype(jnp.float32), w.astype(jnp.float32), y, mask, t))


def compare(got: dict, want: dict, tol: float, mask) -> dict:
  """Max abs error per output, its ratio to max |ref|, and PASS (also: masked tokens exactly 0)."""
  errs, ok = {}, True
  for name in got:
    a, b = got[name].astype(np.float64), want[name].astype(np.float64)
    abs_err = float(np.max(np.abs(a - b))) if a.size else 0.0
    rel = abs_err / max(float(np.max(np.abs(b))) if b.size else 0.0, 1e-30)
    finite = bool(np.isfinite(a).all())
    errs[name] = dict(max_abs=abs_err, rel_to_max=rel, finite=finite)
    ok = ok and finite and rel <= tol
  masked = ~np.asarray(mask)
  masked_zero = all(bool(np.all(got[k][masked] == 0)) for k in got if k != "dw")
  return dict(errors=errs, masked_zero=masked_zero, passed=bool(ok and masked_zero))


def format_errors(res: dict) -> str:
  errs = " ".join(f"{k} {v['max_abs']:.1e}" for k, v in res["errors"].items())
  worst = max(v["rel_to_max"] for v in res["errors"].values())
  verdict = "PASS" if res["passed"] else "FAIL"
  zero = "" if res["masked_zero"] else " masked!=0"
  return f"max|err|: {errs} | worst rel {worst:.1e}{zero} {verdict}"


def check_impl(name: str, inputs, want: dict, tol: float, cfg: dict) -> dict:
  """One implementation on one case; pallas walks the block candidates until one runs."""
  candidates = cfg["block_candidates"] if name.startswith("pallas_") else (None,)
  rec = dict(impl=name, attempts=[])
  for blocks in candidates:
    kw = impl_kwargs(name, cfg["interpret"], blocks)
    start = time.perf_counter()
    label = blocks_label(name, blocks)
    ok, out = attempt(f"{name} [{label}]", lambda: value_and_grads(kw, inputs))
    rec["attempts"].append(dict(blocks=label, ok=ok, error=None if ok else out,
                                seconds=round(time.perf_counter() - start, 2)))
    if ok:
      rec.update(compare(out, want, tol, inputs[3]), blocks=label)
      return rec
  rec.update(passed=False, error=rec["attempts"][-1]["error"])
  return rec


def check_auto(inputs, want: dict, tol: float) -> dict:
  h, w, y, mask, t = inputs
  fn = jax.jit(lambda h, w, y, mask, t: flp.fused_logprob(h, w, y, mask, temperature=t,
                                                          implementation="auto"))
  ok, out = attempt("auto forward", lambda: np.asarray(jax.block_until_ready(fn(*inputs))))
  rec = dict(impl="auto", resolves_to=flp.resolve_implementation("auto"))
  if not ok:
    return dict(rec, passed=False, error=out)
  return dict(rec, **compare({"logp": out}, {"logp": want["logp"]}, tol, mask))


def inputs_and_reference(n: int, d: int, v: int, dtype: str):
  inputs = check_inputs(n, d, v, jnp.dtype(dtype))
  return inputs, reference(inputs)


def fused_logprob_correctness(cfg: dict, sink) -> None:
  for n, d, v in cfg["check_shapes"]:
    for dtype in ("float32", "bfloat16"):
      case = f"N={n} D={d} V={v} {dtype}"
      ok, out = attempt(f"{case} naive reference", lambda: inputs_and_reference(n, d, v, dtype))
      if not ok:
        sink(dict(case=case, impl="naive_reference", passed=False, error=out))
        continue
      inputs, want = out
      for name in ("xla", "pallas_loop", "pallas_grid"):
        rec = dict(case=case, **check_impl(name, inputs, want, TOL[dtype], cfg))
        line = format_errors(rec) if "errors" in rec else "ERROR (no blocks worked) FAIL"
        log(f"{case:32s} {name:12s} [{rec.get('blocks', '-')}] {line}")
        sink(rec)
      rec = dict(case=case, **check_auto(inputs, want, TOL[dtype]))
      line = format_errors(rec) if "errors" in rec else "ERROR FAIL"
      log(f"{case:32s} auto->{rec['resolves_to']:6s} {line}")
      sink(rec)


# ----------------------------------------------------------------------------- 3. step_importance


def step_reference(batch, alpha, tau, normalization, weighting):
  """`kernels/step_importance/reference.py` (vmapped per response, written from the SWAP
  formulas and
  itself tested against numpy loops) on the host CPU: fields in STEP_FIELDS order."""
  with jax.default_device(jax.devices("cpu")[0]):
    outs = sip_reference.step_penalties(*batch, alpha, tau, normalization=normalization,
                                        weighting=weighting)
  return {f: np.asarray(o, np.float64) for f, o in zip(STEP_FIELDS, outs)}


def step_fn(impl: str, normalization: str, weighting: str, interpret: bool, alpha=0.7, tau=0.6):
  kw = dict(implementation=impl, normalization=normalization, weighting=weighting)
  if impl == "pallas":
    kw.update(block_b=8, interpret=interpret)
  return jax.jit(lambda *a: sip.step_penalties(*a, alpha=alpha, tau=tau, **kw))


def check_step(impl: str, normalization: str, weighting: str, batch, interpret: bool) -> dict:
  got = jax.block_until_ready(step_fn(impl, normalization, weighting, interpret)(*batch))
  want = step_reference(batch, 0.7, 0.6, normalization, weighting)
  errs, ok = {}, True
  for field in STEP_FIELDS:
    a = np.asarray(getattr(got, field), np.float64)
    errs[field] = float(np.max(np.abs(a - want[field]))) if a.size else 0.0
    ok = ok and bool(np.allclose(a, want[field], rtol=1e-5, atol=1e-6))
  return dict(max_abs_errors=errs, passed=ok)


def step_importance_correctness(cfg: dict, sink) -> None:
  batches = {"test batch B=11 K=4 T=40 A=5": sip_reference.random_inputs(),
             "pow2 probe B=16 K=1 T=32 A=4": sip_reference.random_inputs(b=16, k=1, t=32, a=4)}
  for case, batch in batches.items():
    combos = [(n, w) for n in sip.NORMALIZATIONS for w in sip.WEIGHTINGS]
    if case.startswith("pow2"):
      combos = [("softmax", "linear"), ("minmax", "exp")]
    for normalization, weighting in combos:
      for impl in ("xla", "pallas"):
        what = f"{case} {normalization}/{weighting} {impl}"
        ok, out = attempt(what, lambda: check_step(impl, normalization, weighting, batch,
                                                   cfg["interpret"]))
        rec = dict(case=case, normalization=normalization, weighting=weighting, impl=impl)
        rec.update(out if ok else dict(passed=False, error=out))
        if ok:
          worst = max(out["max_abs_errors"].values())
          log(f"{what:60s} max|err| {worst:.1e} {'PASS' if out['passed'] else 'FAIL'}")
        sink(rec)


# ----------------------------------------------------------------------------- 4. timing


def time_interleaved(fns: dict, args, reps: int) -> dict:
  """Min wall time per function over `reps`, interleaved; a function that fails is dropped."""
  times = {name: [] for name in fns}
  errors = {}
  for _ in range(reps):
    for name, fn in fns.items():
      if name in errors or elapsed() > TIMING_BUDGET_S + 60:
        continue
      start = time.perf_counter()
      ok, out = attempt(f"timing {name}", lambda: jax.block_until_ready(fn(*args)))
      if not ok:
        errors[name] = out
        continue
      del out
      times[name].append(time.perf_counter() - start)
  return {name: dict(min_s=min(ts) if ts else None, reps=len(ts), error=errors.get(name))
          for name, ts in times.items()}


def step_timing(cfg: dict) -> dict:
  shape = cfg["step_time"]
  batch = sip_reference.random_inputs(b=shape["b"], k=shape["k"], t=shape["t"], a=shape["a"],
                                      max_len=max(2, (shape["t"] - 4) // shape["k"]))
  batch = tuple(jnp.asarray(x) for x in batch)
  fns, res = {}, dict(shape=shape, impls={})
  for impl in ("xla", "pallas"):
    fn = step_fn(impl, "softmax", "linear", cfg["interpret"])
    start = time.perf_counter()
    ok, out = attempt(f"step_penalties {impl} compile", lambda: fn.lower(*batch).compile())
    if not ok:
      res["impls"][impl] = dict(error=out)
      continue
    ok, err = attempt(f"step_penalties {impl} warm-up", lambda: jax.block_until_ready(out(*batch)))
    res["impls"][impl] = dict(compile_s=round(time.perf_counter() - start, 2),
                              error=None if ok else err)
    if ok:
      fns[impl] = out
  for impl, t in time_interleaved(fns, batch, cfg["reps"]).items():
    res["impls"][impl].update(t)
  for impl, r in res["impls"].items():
    ms = f"{r['min_s'] * 1e3:.3f} ms" if r.get("min_s") else "ERROR"
    log(f"step_penalties B={shape['b']} K+1={shape['k'] + 1} A={shape['a']} T={shape['t']} "
        f"{impl:6s} {ms}")
  return res


def bench_inputs(n: int, d: int, v: int, dtype):
  k_h, k_w, k_y = jax.random.split(jax.random.key(1), 3)
  h = jax.random.normal(k_h, (n, d), jnp.float32).astype(dtype)
  w = (jax.random.normal(k_w, (d, v), jnp.float32) * d ** -0.5).astype(dtype)
  y = jax.random.randint(k_y, (n,), 0, v)
  return h, w, y, jnp.ones((n,), jnp.bool_), jnp.float32(TEMPERATURE)


def loss_grad_fn(kw: dict):
  def loss(h, w, y, mask, t):
    return jnp.sum(flp.fused_logprob(h, w, y, mask, temperature=t, **kw))
  return jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))


def compile_for_timing(name: str, args, cfg: dict, known_blocks: dict) -> dict:
  """Compiles and warms up one implementation, walking the pallas block candidates."""
  if name.startswith("pallas_"):
    candidates = (known_blocks[name],) if name in known_blocks else cfg["block_candidates"]
  else:
    candidates = (None,)
  rec = dict(attempts=[])
  for blocks in candidates:
    if elapsed() > TIMING_BUDGET_S:
      rec["skipped"] = "time budget"
      break
    fn = loss_grad_fn(impl_kwargs(name, cfg["interpret"], blocks))
    label = blocks_label(name, blocks)
    start = time.perf_counter()
    ok, compiled = attempt(f"{name} [{label}] compile", lambda: fn.lower(*args).compile())
    if ok:
      compile_s = time.perf_counter() - start
      ok, err = attempt(f"{name} [{label}] warm-up",
                        lambda: jax.block_until_ready(compiled(*args)))
    else:
      err = compiled
    rec["attempts"].append(dict(blocks=label, ok=ok, error=None if ok else err))
    if ok:
      mem = attempt(f"{name} memory_analysis",
                    lambda: compiled.memory_analysis().temp_size_in_bytes)
      rec.update(blocks=label, compile_s=round(compile_s, 2),
                 temp_bytes=mem[1] if mem[0] else None, compiled=compiled)
      if name.startswith("pallas_"):
        known_blocks[name] = blocks
      return rec
  rec["error"] = rec["attempts"][-1]["error"] if rec["attempts"] else rec.get("skipped")
  return rec


def print_table(n: int, d: int, v: int, rows: dict):
  base = rows.get("naive", {})
  print(f"\n| N={n} D={d} V={v} bf16 | blocks | temp MiB | vs naive | time ms | vs naive "
        f"| TFLOP/s (6NDV/t) |", flush=True)
  print("|---|---|---|---|---|---|---|", flush=True)
  for name, r in rows.items():
    mem, t = r.get("temp_bytes"), r.get("min_s")
    mem_s = f"{mem / 2**20:.0f}" if mem is not None else "-"
    mem_r = f"{mem / base['temp_bytes']:.3f}x" if mem is not None and base.get("temp_bytes") \
        else "-"
    t_s = f"{t * 1e3:.2f}" if t else "ERROR" if r.get("error") else "-"
    t_r = f"{t / base['min_s']:.2f}x" if t and base.get("min_s") else "-"
    tflops = f"{6 * n * d * v / t / 1e12:.1f}" if t else "-"
    print(f"| {name} | {r.get('blocks', '-')} | {mem_s} | {mem_r} | {t_s} | {t_r} | {tflops} |",
          flush=True)
  print(flush=True)


def fused_timing(cfg: dict, sink) -> None:
  known_blocks = {}
  for n, d, v, impls in cfg["time_shapes"]:
    if elapsed() > TIMING_BUDGET_S:
      log(f"skipping timing N={n}: {elapsed():.0f} s elapsed > {TIMING_BUDGET_S:.0f} s")
      sink(dict(n=n, d=d, v=v, skipped="time budget"))
      continue
    log(f"timing N={n} D={d} V={v} bf16: {', '.join(impls)}")
    ok, args = attempt(f"inputs N={n}", lambda: bench_inputs(n, d, v, jnp.bfloat16))
    if not ok:
      sink(dict(n=n, d=d, v=v, error=args))
      continue
    rows = {name: compile_for_timing(name, args, cfg, known_blocks) for name in impls}
    compiled = {name: r.pop("compiled") for name, r in rows.items() if "compiled" in r}
    for name, t in time_interleaved(compiled, args, cfg["reps"]).items():
      rows[name].update(t)
    del compiled, args
    print_table(n, d, v, rows)
    sink(dict(n=n, d=d, v=v, dtype="bfloat16", rows=rows))


# ----------------------------------------------------------------------------- main


def make_sink(records: list, results: dict, path: str):
  def sink(rec: dict):
    records.append(rec)
    write_json(path, results)
  return sink


def summary(results: dict) -> dict:
  checks = [c for name in ("fused_logprob_correctness", "step_importance_correctness")
            if isinstance(results.get(name), list) for c in results[name]]
  failed = [" ".join(str(c.get(k, "")) for k in ("case", "impl", "normalization", "weighting"))
            .strip() for c in checks if not c.get("passed")]
  return dict(checks=len(checks), passed=len(checks) - len(failed), failed=failed,
              elapsed_s=round(elapsed(), 1))


def triton_tile_bytes(d: int, blocks, itemsize: int) -> int:
  """A lower bound on the shared memory of the loop schedule's Triton kernel: the whole
  [block_n, D] hidden tile and [D, block_v] weight tile (no D tiling). Triton asks for more
  (pipelining, accumulators): 257 KiB measured on an H100 for 64 x 128 at D=256 in bf16, where
  this gives 96 KiB; so it only rules shapes out (D=1024: 288 KiB even at 16 x 128)."""
  block_n, block_v = blocks
  return (block_n * d + d * block_v) * itemsize


def gpu_plan(cfg: dict) -> dict:
  """What a GPU run can usefully attempt within one ~10-minute call.

  Measured on an H200 (docs/benchmarks.md "Pallas on GPU"): the API default tiles overflow the
  227 KiB of shared memory and their failing compile alone took 229 s, and 128 x 256 failed at
  D=128 in f32. So Pallas starts from 64 x 128, and the loop schedule is timed only where its
  tiles fit (D=256); at D=1024 every allowed tile overflows, so those shapes time naive vs xla.
  The grid schedule has no GPU lowering (a clear error, checked in the correctness section)."""
  smem = 227 * 1024
  cfg = dict(cfg, block_candidates=((64, 128), (32, 128), (16, 128)))
  shapes = []
  for n, d, v, impls in ((4096, 1024, 151936, ("naive", "xla", "pallas_loop")),
                         (4096, 256, 151936, ("naive", "xla", "pallas_loop")),
                         (16384, 1024, 151936, ("xla", "pallas_loop"))):
    fits = any(triton_tile_bytes(d, b, 2) <= smem for b in cfg["block_candidates"])
    shapes.append((n, d, v, tuple(i for i in impls if fits or not i.startswith("pallas_"))))
  cfg["time_shapes"] = tuple(shapes)
  return cfg


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--out", default="gpu_kernels.json")
  parser.add_argument("--smoke", action="store_true",
                      help="tiny shapes, Pallas in interpret mode (for CPU)")
  args = parser.parse_args()
  faulthandler.enable()                            # a crash in a compiler still prints a stack
  faulthandler.dump_traceback_later(WATCHDOG_S)    # and a hang shows where, before the kill
  cfg = dict(SMOKE if args.smoke else FULL, interpret=args.smoke)
  if not args.smoke and jax.default_backend() == "gpu":
    cfg = gpu_plan(cfg)
  results = dict(mode="smoke" if args.smoke else "full", config=cfg)

  # Sections returning a dict; sections streaming records to a sink (JSON rewritten each time).
  sections = (
      ("environment", environment, False),
      ("fused_logprob_correctness", lambda sink: fused_logprob_correctness(cfg, sink), True),
      ("step_importance_correctness", lambda sink: step_importance_correctness(cfg, sink), True),
      ("step_timing", lambda: step_timing(cfg), False),
      ("fused_timing", lambda sink: fused_timing(cfg, sink), True),
  )
  for name, fn, streams in sections:
    if elapsed() > HARD_BUDGET_S:
      log(f"== {name}: skipped ({elapsed():.0f} s elapsed)")
      results[name] = dict(skipped="time budget")
      continue
    log(f"== {name}")
    if streams:
      records = results[name] = []
      ok, out = attempt(name, lambda: fn(make_sink(records, results, args.out)))
      if not ok:
        records.append(dict(section_error=out, passed=False))
    else:
      ok, out = attempt(name, fn)
      results[name] = out if ok else dict(error=out)
    if name == "environment" and ok:
      print(out["environment_info"] or "", flush=True)
      log(f"jax {out['jax']} jaxlib {out['jaxlib']} backend={out['backend']} "
          f"devices={out['devices']} auto: fused_logprob->{out['auto_fused_logprob']} "
          f"step_penalties->{out['auto_step_penalties']}")
    write_json(args.out, results)

  results["summary"] = summary(results)
  write_json(args.out, results)
  s = results["summary"]
  faulthandler.cancel_dump_traceback_later()
  log(f"== summary: {s['passed']}/{s['checks']} checks passed; wrote {args.out}")
  for f in s["failed"]:
    print(f"  FAILED: {f}", flush=True)


if __name__ == "__main__":
  main()
