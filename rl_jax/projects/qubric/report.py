"""The report of QUBRIC (docs/qubric.md): one row per policy (the SFT policy, then one per arm
of the RL sweep) with the held-out key-point recall and the arm's reward signal during
training, as report.md / results.json and recall.png in the workdir. Registered as report
"qubric".

    python -m rl_jax.projects.qubric.report WORKDIR [WORKDIR ...]

With several workdirs (runs of other seeds), `seeds` also prints held-out recall per arm and
seed and the paired differences of `COMPARE` pooled over every seed's held-out answers.

Signal columns (means over the arm's RL steps, from metrics.jsonl): reward_mean, reward_std
(within the step's batch), zero_var_groups (fraction of groups whose G rewards are equal: no
GRPO advantage), adv_nonzero (fraction of rows with a non-zero advantage), grad_norm,
reward_recall_corr (Pearson of the rubric reward and the true key-point recall over a step's
rows), train_recall_first / _last (training-batch recall, first and last quarter of steps).
"""
from __future__ import annotations

import json
import os
import sys
from typing import Any, Sequence

import numpy as np

from rl_jax.eval import figures, paired, run_results
from rl_jax.eval.hooks import register_report, report_main

EVAL_COLUMNS = ("recall", "precision", "wrong", "statements")
SIGNAL = {"reward_mean": "reward/mean", "reward_std": "reward/std",
          "zero_var_groups": "reward/frac_groups_zero_var", "adv_nonzero": "adv/nonzero_frac",
          "grad_norm": "grad/norm", "reward_recall_corr": "qubric/reward_recall_corr"}


def policy_name(stage: dict) -> str:
  arm = stage.get("section", {}).get("prompt_source", {}).get("arm")
  return f"{stage['name']}" if stage["kind"] != "rl" or not arm else f"rl ({arm})"


def load_rows(workdir: str) -> list[dict[str, Any]]:
  """Per stage with a final evaluation: its policy, final eval metrics and, for an RL stage, the
  means of its reward signal over its steps (module docstring) and its last step's counters."""
  rows = []
  for result in run_results.finished_stages(workdir):
    row = result.row(policy_name(result.stage), EVAL_COLUMNS)
    mine = result.training
    if mine:
      for col, key in SIGNAL.items():
        row[col] = float(np.mean([r[key] for r in mine if key in r]))
      row["train_recall_first"], row["train_recall_last"] = run_results.quarter_means(
          mine, "correct/mean")
      row["retired_pairs"] = mine[-1].get("qubric/retired_pairs")
      row["judge_calls"] = mine[-1].get("judge/calls")
      row["judge_cache_hits"] = mine[-1].get("judge/cache_hits")
    rows.append(row)
  return rows


def fmt(v) -> str:
  return "-" if v is None else f"{v:.3f}"


def table(rows) -> str:
  cols = ("recall", "precision", "wrong") + tuple(SIGNAL) + ("train_recall_first",
                                                             "train_recall_last")
  lines = ["| policy | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
  lines += ["| " + r["policy"] + " | " + " | ".join(fmt(r.get(c)) for c in cols) + " |"
            for r in rows]
  return "\n".join(lines)


def curves(workdir: str) -> dict[str, dict[str, list[float]]]:
  """Per RL stage: reward/std, zero-variance fraction and training recall per step."""
  records = run_results.metric_records(workdir)
  out: dict[str, dict[str, list[float]]] = {}
  for r in records:
    if "reward/mean" not in r:
      continue
    c = out.setdefault(r["stage"], {"reward_std": [], "zero_var": [], "recall": []})
    c["reward_std"].append(r["reward/std"])
    c["zero_var"].append(r["reward/frac_groups_zero_var"])
    c["recall"].append(r["correct/mean"])
  return out


def plot(rows, curve, path: str) -> None:
  fig, axes = figures.pyplot().subplots(1, 3, figsize=(13, 3.6))
  names = [r["policy"] for r in rows]
  axes[0].bar(range(len(rows)), [r["recall"] or 0.0 for r in rows], color="tab:blue")
  axes[0].set_xticks(range(len(rows)), names, rotation=20, ha="right", fontsize=8)
  axes[0].set_ylabel("held-out key-point recall")
  axes[0].set_ylim(0, 1)
  for stage, c in curve.items():
    axes[1].plot(c["reward_std"], label=stage)
    axes[2].plot(c["zero_var"], label=stage)
  axes[1].set_xlabel("RL step")
  axes[1].set_ylabel("reward std (batch)")
  axes[2].set_xlabel("RL step")
  axes[2].set_ylabel("zero-variance groups")
  axes[2].set_ylim(-0.05, 1.05)
  axes[2].legend(fontsize=7)
  figures.save(fig, path, dpi=110)


# (a, b) pairs `seeds` compares (policy names of `policy_name`).
COMPARE = (("rl (full)", "rl (original_generic)"), ("rl (full)", "sft"),
           ("rl (original_generic)", "sft"), ("rl (fabricated)", "sft"))


def seeds(workdirs: Sequence[str]) -> dict[str, Any]:
  """Held-out key-point recall per policy and workdir, and for each pair of `COMPARE` the mean
  per-answer recall difference a - b with its paired bootstrap interval, pooled over the
  workdirs' answers (pairs stay within a workdir: every policy of a run answers the same
  held-out entity x scenario prompts). Returns {"per_seed": {policy: [recall per workdir]},
  "pooled": {"a - b": [mean, lo, hi]}} and prints them."""
  per_seed: dict[str, list[float]] = {}
  pooled: dict[tuple[str, str], tuple[list[float], list[float]]] = {}
  for workdir in workdirs:
    plan = {st["name"]: st for st in run_results.stage_plan(workdir)}
    answers = {policy_name(plan[name]): [r["recall"] for r in saved["records"][name]]
               for name, saved in run_results.saved_evals(workdir).items()}
    for policy, recalls in answers.items():
      per_seed.setdefault(policy, []).append(float(np.mean(recalls)))
    for a, b in COMPARE:
      if a in answers and b in answers:
        xs, ys = pooled.setdefault((a, b), ([], []))
        xs.extend(answers[a])
        ys.extend(answers[b])
  out = {f"{a} - {b}": list(paired.paired_bootstrap(xs, ys, seed=i))
         for i, ((a, b), (xs, ys)) in enumerate(pooled.items())}
  print(paired.seeds_summary(
      f"Held-out recall over {len(list(workdirs))} runs:", per_seed, out,
      "Pooled paired differences of per-answer recall (95% bootstrap interval):", digits=4))
  return {"per_seed": per_seed, "pooled": out}


@register_report("qubric", __name__)
def qubric_report(workdir: str, plot_png: bool = True) -> list[dict[str, Any]]:
  """Writes report.md, results.json and (plot_png) recall.png into the workdir."""
  rows = load_rows(workdir)
  md = ("# QUBRIC: held-out key-point recall and reward signal per arm\n\n" + table(rows) + "\n")
  with open(os.path.join(workdir, "report.md"), "w", encoding="utf-8") as f:
    f.write(md)
  with open(os.path.join(workdir, "results.json"), "w", encoding="utf-8") as f:
    json.dump({"rows": rows}, f, indent=1)
  if plot_png:
    plot(rows, curves(workdir), os.path.join(workdir, "recall.png"))
  print(md)
  return rows


if __name__ == "__main__":
  report_main("qubric", sys.argv[1:])
  if len(sys.argv) > 2:
    from rl_jax.projects.qubric import report as registered  # pylint: disable=g-import-not-at-top
    registered.seeds(sys.argv[1:])
