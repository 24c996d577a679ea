"""The SWAP study's report: results table (markdown + JSON) and PNG plots of the arms.

    python -m rl_jax.projects.swap.report WORKDIR [WORKDIR ...]     # the seed table

Report "swap" (`config.report`) runs at the end of the training command and writes, from
summary.json (final held-out metrics of the SFT policy and of every RL arm) and metrics.jsonl
(the per-step training records):

  results.json / results.md  per policy: held-out accuracy, mean length, length change vs the
                             outcome-only arm, necessary steps kept, redundant steps, importance
                             AUROC; the uniform penalty's accuracy cost (vs outcome-only)
  curves.png                 training length and accuracy (correct/mean) per RL step and arm
  final.png                  held-out length and accuracy per policy

Arms are the RL stages of the sweep (`rl_penalty=none` = outcome-only GRPO, `rl_penalty=uniform`
= GRPO + a trajectory-level length penalty, `rl_penalty=swap` = SWAP; docs/swap.md).
"""
from __future__ import annotations

import json
import math
import os
import sys
from typing import Any, Sequence

import numpy as np

from rl_jax.eval import figures, run_results
from rl_jax.eval.hooks import register_report

ARMS = {"rl_penalty=none": "outcome-only GRPO", "rl_penalty=uniform": "GRPO + uniform penalty",
        "rl_penalty=swap": "SWAP"}
COLUMNS = (("accuracy", "eval/accuracy"), ("len_mean", "eval/len_mean"),
           ("necessary_kept", "eval/necessary_kept"), ("redundant_mean", "eval/redundant_mean"),
           ("importance_auroc", "eval/importance_auroc"))


def _fmt(x) -> str:
  return "nan" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.3f}"


def summarize(workdir: str) -> dict[str, Any]:
  """Per-policy final metrics and the study's headline comparisons of one workdir."""
  evals = run_results.final_evals(workdir)
  rows = {name: {col: float(m.get(key, float("nan"))) for col, key in COLUMNS}
          for name, m in evals.items()}
  base = rows.get("rl_penalty=none")
  out: dict[str, Any] = {"policies": rows}
  if base:
    for name, r in rows.items():
      r["len_change_vs_outcome"] = r["len_mean"] / base["len_mean"] - 1.0
      r["acc_change_vs_outcome"] = r["accuracy"] - base["accuracy"]
    for arm in ("rl_penalty=uniform", "rl_penalty=swap"):
      if arm in rows:
        out[f"{arm.split('=')[1]}/shorter_than_outcome"] = -rows[arm]["len_change_vs_outcome"]
        out[f"{arm.split('=')[1]}/accuracy_cost"] = -rows[arm]["acc_change_vs_outcome"]
  return out


def curves(workdir: str) -> dict[str, dict[str, list[float]]]:
  """Per RL stage: step, rollout/len_mean and correct/mean of every training record."""
  records = run_results.metric_records(workdir)
  out: dict[str, dict[str, list[float]]] = {}
  for r in records:
    stage = r.get("stage", "")
    if not str(stage).startswith("rl") or "rollout/len_mean" not in r:
      continue
    c = out.setdefault(stage, {"step": [], "len": [], "correct": []})
    c["step"].append(float(r.get("step", len(c["step"]))))
    c["len"].append(float(r["rollout/len_mean"]))
    c["correct"].append(float(r.get("correct/mean", float("nan"))))
  return out


def markdown(summary: dict[str, Any]) -> str:
  cols = [c for c, _ in COLUMNS] + ["len_change_vs_outcome", "acc_change_vs_outcome"]
  lines = ["| policy | " + " | ".join(cols) + " |", "|---|" + "---:|" * len(cols)]
  for name, r in summary["policies"].items():
    label = ARMS.get(name, name)
    lines.append(f"| {label} | " + " | ".join(_fmt(r.get(c)) for c in cols) + " |")
  lines.append("")
  for key, value in summary.items():
    if key != "policies":
      lines.append(f"- {key}: {_fmt(value)}")
  return "\n".join(lines) + "\n"


def plot(summary: dict[str, Any], curve: dict[str, dict[str, list[float]]], workdir: str
         ) -> list[str]:
  plt = figures.pyplot()
  paths = []
  fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
  for stage, c in curve.items():
    axes[0].plot(c["step"], c["len"], label=ARMS.get(stage, stage))
    axes[1].plot(c["step"], c["correct"], label=ARMS.get(stage, stage))
  axes[0].set(xlabel="RL step", ylabel="mean response tokens (training)")
  axes[1].set(xlabel="RL step", ylabel="training accuracy")
  axes[0].legend(fontsize=8)
  paths.append(figures.save(fig, os.path.join(workdir, "curves.png"), dpi=100))
  names = list(summary["policies"])
  fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
  labels = [ARMS.get(n, n) for n in names]
  axes[0].bar(labels, [summary["policies"][n]["len_mean"] for n in names])
  axes[1].bar(labels, [summary["policies"][n]["accuracy"] for n in names])
  axes[0].set(ylabel="held-out mean length (tokens)")
  axes[1].set(ylabel="held-out accuracy", ylim=(0, 1))
  for ax in axes:
    ax.tick_params(axis="x", labelrotation=20, labelsize=8)
  paths.append(figures.save(fig, os.path.join(workdir, "final.png"), dpi=100))
  return paths


@register_report("swap", __name__)
def swap_report(workdir: str, *, plots: bool = True) -> dict[str, Any]:
  """Writes results.json, results.md and (plots=True) curves.png and final.png."""
  summary = summarize(workdir)
  curve = curves(workdir)
  summary["curves"] = curve
  with open(os.path.join(workdir, "results.json"), "w", encoding="utf-8") as f:
    json.dump(summary, f, indent=1)
  with open(os.path.join(workdir, "results.md"), "w", encoding="utf-8") as f:
    f.write(markdown({k: v for k, v in summary.items() if k != "curves"}))
  if plots:
    plot(summary, curve, workdir)
  return summary


def seed_table(workdirs: Sequence[str]) -> str:
  """Mean +- std over workdirs (seeds) of each policy's columns."""
  summaries = [summarize(w) for w in workdirs]
  # Policies every workdir has (a run that starts RL from a saved SFT checkpoint has no "sft").
  names = [n for n in summaries[0]["policies"] if all(n in s["policies"] for s in summaries)]
  cols = [c for c, _ in COLUMNS] + ["len_change_vs_outcome"]
  lines = [f"| policy (n={len(workdirs)}) | " + " | ".join(cols) + " |",
           "|---|" + "---:|" * len(cols)]
  for n in names:
    cells = []
    for c in cols:
      v = np.asarray([s["policies"][n].get(c, float("nan")) for s in summaries], np.float64)
      cells.append(f"{np.nanmean(v):.3f} ± {np.nanstd(v):.3f}")
    lines.append(f"| {ARMS.get(n, n)} | " + " | ".join(cells) + " |")
  return "\n".join(lines) + "\n"


if __name__ == "__main__":
  if len(sys.argv) < 2:
    raise SystemExit("usage: python -m rl_jax.projects.swap.report WORKDIR [WORKDIR ...]")
  print(seed_table(sys.argv[1:]))
