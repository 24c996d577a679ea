"""Wall time of asynchronous (overlapped) vs synchronous RL steps, same run, 8 fake CPU devices.

    python bench/async_rl.py [--steps 6] [--prompts 8] [--group 8] [--rollout-devices 4]
    python bench/async_rl.py --quick      # 4 steps of 4 prompts x G=4 (the test)

Three runs of the RL stage of `rl_jax.main` on configs/grpo_async_tiny_arith.py (the bundled
SFT checkpoint of the arithmetic task, RL stage only, `timing=True` so each step blocks on its
update, no checkpoints or evals):
  sequential   off_policy_steps=0: rollout, then update, on the whole 8-device mesh;
  interleaved  off_policy_steps=1, one mesh: update t is dispatched, then the host generates
               rollout t + 1 on the same devices (async dispatch queues them);
  overlapped   off_policy_steps=1, rollout_devices=R: the first R devices generate rollout
               t + 1 while the other 8 - R run update t.
Per run the median wall time of an RL step over the steps after the first two (they compile:
the update, and the proximal log-prob pass of the first stale batch); a synchronous step is
its rollout + update time, an asynchronous step its whole iteration (update dispatched, next
rollout generated, update blocked on). Printed: s/step per run and the ratio to sequential.
Asynchronous steps do more work per step (one extra forward pass for pi_prox on stale
batches, docs/async_rl.md), which the ratio includes. The last line gives the bound a perfect
overlap could reach, max(rollout, update) / (rollout + update) of the sequential steps. Fake CPU
devices share the host's cores, so overlap only helps where cores are idle. Without 2+ devices
the overlapped run is skipped. XLA_FLAGS gets --xla_force_host_platform_device_count=8 when
it names no count.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

if "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
  os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                             " --xla_force_host_platform_device_count=8").strip()

import jax  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from configs import grpo_async_tiny_arith  # noqa: E402
from rl_jax import main as main_lib  # noqa: E402
from rl_jax import metrics  # noqa: E402

RUNS = ("sequential", "interleaved", "overlapped")
HEADER = ("run", "devices (rollout / update)", "s/step", "ratio to sequential")


def step_seconds(records, asynchronous: bool) -> list[float]:
  """Wall seconds per RL step from metrics.jsonl records (see the module docstring)."""
  if asynchronous:
    return [r["time/step_s"] for r in records]
  return [r["time/rollout_s"] + r["time/update_s"] for r in records]


def run_one(name: str, steps: int, prompts: int, group: int, rollout_devices: int, workdir: str):
  c = grpo_async_tiny_arith.get_config("runlocal")
  c.stages = ("rl",)
  c.timing = True
  c.checkpoint.every = 0
  c.eval.every = 0
  c.rl.steps, c.rl.prompts_per_step, c.rl.group_size = steps, prompts, group
  c.rl.pack_sequences = False  # the comparison is about overlap, not packing
  c.rl.off_policy_steps = 0 if name == "sequential" else 1
  c.rl.rollout_devices = rollout_devices if name == "overlapped" else 0
  t0 = time.perf_counter()
  main_lib.run(c, workdir, show_progress=False)
  wall = time.perf_counter() - t0
  records = [r for r in metrics.read_metrics(os.path.join(workdir, "metrics.jsonl"))
             if r["stage"] == "rl"]
  return step_seconds(records, name != "sequential"), wall, records


def _default(value, fallback):
  """The flag's value when given (0 included, so it is refused), else the size's default."""
  return fallback if value is None else value


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--steps", type=int, default=None, help="RL steps per run (6; quick 4)")
  parser.add_argument("--prompts", type=int, default=None, help="prompts per step (8; quick 4)")
  parser.add_argument("--group", type=int, default=None, help="samples per prompt (8; quick 4)")
  parser.add_argument("--rollout-devices", type=int, default=None,
                      help="devices of the rollout group (default half of them)")
  parser.add_argument("--quick", action="store_true", help="tiny sizes (the test)")
  args = parser.parse_args(argv)
  steps = _default(args.steps, 4 if args.quick else 6)
  prompts = _default(args.prompts, 4 if args.quick else 8)
  group = _default(args.group, 4 if args.quick else 8)
  n = jax.device_count()
  rollout_devices = args.rollout_devices if args.rollout_devices is not None else n // 2
  if steps < 3 or prompts < 1 or group < 2:
    parser.error("need --steps >= 3 (two compile steps), --prompts >= 1, --group >= 2")
  if not 0 <= rollout_devices < n:
    parser.error(f"--rollout-devices must be in [0, {n}) on {n} devices")
  runs = RUNS if rollout_devices >= 1 else RUNS[:2]
  seconds, walls, records = {}, {}, {}
  with tempfile.TemporaryDirectory() as tmp:
    for name in runs:
      per_step, walls[name], records[name] = run_one(name, steps, prompts, group,
                                                     rollout_devices, os.path.join(tmp, name))
      seconds[name] = statistics.median(per_step[2:])
  ratio = {name: seconds[name] / seconds["sequential"] for name in runs}
  devices = {"sequential": f"{n} shared", "interleaved": f"{n} shared",
             "overlapped": f"{rollout_devices} / {n - rollout_devices}"}
  print(f"RL steps of {prompts} prompts x G={group} (tiny Qwen3, arithmetic task), "
        f"{n} {jax.devices()[0].platform} devices, median over steps 2..{steps - 1}")
  print("| " + " | ".join(HEADER) + " |")
  print("|---|---|---:|---:|")
  for name in runs:
    print(f"| {name} | {devices[name]} | {seconds[name]:.4f} | {ratio[name]:.3f} |")
  # What a perfect overlap could give: a step as long as the longer of its two halves.
  seq = records["sequential"][2:]
  rollout_s = statistics.median(r["time/rollout_s"] for r in seq)
  update_s = statistics.median(r["time/update_s"] for r in seq)
  bound = max(rollout_s, update_s) / (rollout_s + update_s)
  print(f"sequential step = rollout {rollout_s:.4f} s + update {update_s:.4f} s (medians): a "
        f"perfect overlap would reach ratio {bound:.3f}")
  return {"seconds": seconds, "ratio": ratio, "walls": walls, "records": records,
          "steps": steps, "rollout_devices": rollout_devices, "overlap_bound": bound}


if __name__ == "__main__":
  main()
