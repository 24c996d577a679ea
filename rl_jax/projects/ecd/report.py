"""The ECD results table and plot, from the eval records of every stage of a run (docs/ecd.md).

Report "ecd" (config `report`), or on finished workdirs:

    python -m rl_jax.projects.ecd.report W [W2 ...]

writes into W: ecd_report.md (the table: prompt-level strict and instruction-level accuracy,
strict accuracy by level, and paired bootstrap 95% intervals of DPO-ECD minus DPO-random and
minus SFT per level), ecd_results.json (the same numbers) and ecd_levels.png (strict accuracy by
number of constraints, one line per arm). Given several workdirs (runs that differ in seed) it
then prints `seeds`: each arm's strict accuracy at levels >= 3 per seed, and the paired
differences pooled over the seeds' instructions.
"""
from __future__ import annotations

import json
import os
import sys
from typing import Any

import numpy as np

from rl_jax.eval import figures, run_results
from rl_jax.eval.hooks import register_report, report_main
from rl_jax.eval.paired import paired_bootstrap, seeds_summary
from rl_jax.projects.ecd import evaluation

ARM_NAMES = {"sft": "SFT", "preference_negatives=random": "DPO-random",
             "preference_negatives=ecd": "DPO-ECD", "preference_negatives=both": "DPO-both",
             "preference": "DPO"}


def load_arms(workdir: str) -> dict[str, list[dict[str, Any]]]:
  """Arm label -> eval records, in the order of config.json's stage plan."""
  arms = {ARM_NAMES.get(name, name): saved["records"]
          for name, saved in run_results.saved_evals(workdir).items()}
  if not arms:
    raise ValueError(f"ECD report: no eval records under {workdir}/eval (run with "
                     "eval.evaluator={'name': 'ecd'} and eval.at_stage_end=True)")
  return arms


def compare(arms, a: str, b: str, levels) -> dict[str, list[float]]:
  """Per level k, and pooled over levels >= 3 (key ">=3"): strict-accuracy difference a - b
  with its paired bootstrap interval."""
  out = {}
  groups = [(str(k), (k,)) for k in levels] + [(">=3", tuple(k for k in levels if k >= 3))]
  for i, (key, ks) in enumerate(groups):
    sa = [all(r["satisfied"]) for r in arms[a] if r["level"] in ks]
    sb = [all(r["satisfied"]) for r in arms[b] if r["level"] in ks]
    if sa:
      out[key] = list(paired_bootstrap(sa, sb, seed=i))
  return out


@register_report("ecd", __name__)
def report(workdir: str) -> dict[str, Any]:
  arms = load_arms(workdir)
  table = {arm: evaluation.summarize(records) for arm, records in arms.items()}
  levels = sorted({r["level"] for rs in arms.values() for r in rs})
  comparisons = {}
  for a, b in (("DPO-ECD", "DPO-random"), ("DPO-ECD", "SFT"), ("DPO-both", "DPO-random"),
               ("DPO-random", "SFT")):
    if a in arms and b in arms:
      comparisons[f"{a} - {b}"] = compare(arms, a, b, levels)
  results = {"table": table, "levels": levels, "strict_difference_ci95": comparisons,
             "num_instructions": {arm: len(rs) for arm, rs in arms.items()}}
  with open(os.path.join(workdir, "ecd_results.json"), "w", encoding="utf-8") as f:
    json.dump(results, f, indent=1)

  head = ["arm", "strict", "instr"] + [f"L{k} strict" for k in levels] + ["L>=3 strict"] + \
         [f"L{k} instr" for k in levels]
  lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
  for arm, m in table.items():
    cells = [arm, f"{m['eval/accuracy']:.3f}", f"{m['eval/instruction_acc']:.3f}"]
    cells += [f"{m[f'eval/strict_level{k}']:.3f}" for k in levels]
    high = [all(r["satisfied"]) for r in arms[arm] if r["level"] >= 3]
    cells.append(f"{np.mean(high):.3f}" if high else "-")
    cells += [f"{m[f'eval/instruction_level{k}']:.3f}" for k in levels]
    lines.append("| " + " | ".join(cells) + " |")
  lines += ["", "Strict-accuracy differences by level, paired bootstrap 95% interval:", ""]
  for name, by_level in comparisons.items():
    lines.append(f"- {name}: " + "; ".join(f"L{k} {d:+.3f} [{lo:+.3f}, {hi:+.3f}]"
                                          for k, (d, lo, hi) in by_level.items()))
  with open(os.path.join(workdir, "ecd_report.md"), "w", encoding="utf-8") as f:
    f.write("# ECD: strict and instruction-level accuracy by arm\n\n" + "\n".join(lines) + "\n")

  fig, ax = figures.pyplot().subplots(figsize=(5.5, 3.8))
  for arm, m in table.items():
    ax.plot(levels, [m[f"eval/strict_level{k}"] for k in levels], marker="o", label=arm)
  ax.set_xlabel("number of constraints (level)")
  ax.set_ylabel("prompt-level strict accuracy")
  ax.set_xticks(levels)
  ax.set_ylim(0, 1.02)
  ax.grid(alpha=0.3)
  ax.legend()
  figures.save(fig, os.path.join(workdir, "ecd_levels.png"), dpi=120)
  print("\n".join(lines))
  return results


def seeds(workdirs) -> dict[str, Any]:
  """Strict accuracy at levels >= 3 per arm and seed, and the paired differences of `compare`'s
  pairs pooled over every seed's instructions (pairs stay within a seed: both arms of a run
  answer the same instructions). Returns {"per_seed": {arm: [acc per workdir]}, "pooled":
  {"a - b": [mean, lo, hi]}} and prints them."""
  per_seed: dict[str, list[float]] = {}
  pooled_strict: dict[str, list[bool]] = {}
  for workdir in workdirs:
    for arm, records in load_arms(workdir).items():
      high = [all(r["satisfied"]) for r in records if r["level"] >= 3]
      per_seed.setdefault(arm, []).append(float(np.mean(high)) if high else float("nan"))
      pooled_strict.setdefault(arm, []).extend(high)
  pooled = {}
  for i, (a, b) in enumerate((("DPO-ECD", "DPO-random"), ("DPO-ECD", "SFT"),
                              ("DPO-both", "DPO-random"), ("DPO-random", "SFT"))):
    if a in pooled_strict and b in pooled_strict and pooled_strict[a]:
      if len(per_seed[a]) != len(per_seed[b]):
        raise ValueError(f"ECD seeds: arm {a!r} is in {len(per_seed[a])} workdirs, {b!r} in "
                         f"{len(per_seed[b])}; every workdir needs both")
      pooled[f"{a} - {b}"] = list(paired_bootstrap(pooled_strict[a], pooled_strict[b], seed=i))
  print(seeds_summary(f"Strict accuracy at levels >= 3 over {len(list(workdirs))} seeds:",
                      per_seed, pooled, "Pooled paired differences (95% bootstrap interval):"))
  return {"per_seed": per_seed, "pooled": pooled}


if __name__ == "__main__":
  report_main("ecd", sys.argv[1:])
  if len(sys.argv) > 2:
    from rl_jax.projects.ecd import report as registered  # pylint: disable=g-import-not-at-top
    registered.seeds(sys.argv[1:])
