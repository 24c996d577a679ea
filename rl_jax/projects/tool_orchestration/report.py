"""The report of seed S4: one row per policy (the SFT policy, then one per reward arm of the
RL sweep) on the held-out workflows, as report.md / results.json and success.png in the
workdir (docs/tool_orchestration.md). Registered as report "tool_orchestration".

    python -m rl_jax.projects.tool_orchestration.report WORKDIR
"""
from __future__ import annotations

import json
import os
import sys
from typing import Any

import numpy as np

from rl_jax.eval import figures, run_results
from rl_jax.eval.hooks import register_report, report_main

COLUMNS = ("success", "turn_accuracy", "graduated", "R_atomic", "R_orch", "calls_per_episode",
           "malformed", "err_name", "err_params", "err_values")


def policy_name(stage: dict) -> str:
  reward = stage.get("section", {}).get("scorer", {}).get("reward")
  return f"{stage['name']} ({reward})" if stage["kind"] == "rl" and reward else stage["name"]


def load_rows(workdir: str) -> list[dict[str, Any]]:
  """Per stage with a final evaluation: its name, kind, reward arm, final eval metrics and the
  mean RL training reward / success of its first and last quarter of steps."""
  rows = []
  for result in run_results.finished_stages(workdir):
    row = result.row(policy_name(result.stage), COLUMNS)
    mine = result.training
    if mine:
      row["train_reward_first"], row["train_reward_last"] = run_results.quarter_means(
          mine, "reward/mean")
      if "correct/mean" in mine[0]:
        row["train_success_first"], row["train_success_last"] = run_results.quarter_means(
            mine, "correct/mean")
    rows.append(row)
  return rows


def fmt(v) -> str:
  return "-" if v is None else f"{v:.3f}"


def markdown(rows) -> str:
  cols = COLUMNS + ("train_reward_first", "train_reward_last", "train_success_first",
                    "train_success_last")
  lines = ["| policy | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
  lines += ["| " + r["policy"] + " | " + " | ".join(fmt(r.get(c)) for c in cols) + " |"
            for r in rows]
  return "\n".join(lines) + "\n"


def plot(rows, path: str) -> None:
  fig, ax = figures.pyplot().subplots(figsize=(7, 3.5))
  x = np.arange(len(rows))
  for k, (key, label) in enumerate((("success", "workflow success"),
                                    ("turn_accuracy", "turn accuracy"),
                                    ("graduated", "graduated reward"))):
    ax.bar(x + (k - 1) * 0.27, [r[key] or 0.0 for r in rows], 0.27, label=label)
  ax.set_xticks(x, [r["policy"] for r in rows], rotation=20, ha="right", fontsize=8)
  ax.set_ylim(0, 1)
  ax.set_ylabel("held-out workflows")
  ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
  figures.save(fig, path, dpi=120)


@register_report("tool_orchestration", __name__)
def write_report(workdir: str, *, plot_png: bool = True) -> dict[str, Any]:
  """results.json, report.md and (plot_png) success.png of one run."""
  rows = load_rows(workdir)
  with open(os.path.join(workdir, "results.json"), "w", encoding="utf-8") as f:
    json.dump({"rows": rows}, f, indent=1)
  table = markdown(rows)
  with open(os.path.join(workdir, "report.md"), "w", encoding="utf-8") as f:
    f.write("Held-out workflows, greedy episodes (eval/*), and the RL training reward / success "
            "(first and last quarter of steps):\n\n" + table)
  if plot_png:
    plot(rows, os.path.join(workdir, "success.png"))
  print(table)
  return {"rows": rows}


if __name__ == "__main__":
  report_main("tool_orchestration", sys.argv[1:])
