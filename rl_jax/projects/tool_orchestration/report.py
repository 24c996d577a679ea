"""The report of seed S4: one row per policy (the SFT policy, then one per reward arm of the
RL sweep) on the held-out workflows, as report.md / results.json and success.png in the
workdir (docs/tool_orchestration.md). Registered as report "tool_orchestration".

    python -m rl_jax.projects.tool_orchestration.report WORKDIR [WORKDIR ...]

With several workdirs (runs of other seeds, or other arms of the same seed), `seeds` also prints
every policy's success per seed and the pooled paired comparisons of `COMPARE`.
"""
from __future__ import annotations

import json
import os
import sys
from typing import Any, Sequence

import numpy as np

from rl_jax.eval import figures, paired, run_results
from rl_jax.eval.hooks import register_report, report_main
from rl_jax.projects.tool_orchestration import reward as rw

COLUMNS = ("success", "turn_accuracy", "graduated", "R_atomic", "R_orch", "calls_per_episode",
           "malformed", "err_name", "err_params", "err_values")


def _rl_arm(stage: dict) -> tuple[str, str] | None:
  """(reward, atomic_match) of an RL stage with a scorer reward; None for any other stage."""
  scorer = stage.get("section", {}).get("scorer", {})
  if stage["kind"] != "rl" or not scorer.get("reward"):
    return None
  return scorer["reward"], scorer.get("atomic_match", "first")


def policy_name(stage: dict) -> str:
  """The stage name, with the reward arm of an RL stage and its atomic_match where it is not
  the paper's ("first")."""
  arm = _rl_arm(stage)
  if arm is None:
    return stage["name"]
  reward, match = arm
  return f"{stage['name']} ({reward}" + ("" if match == "first" else f", {match}") + ")"


def arm_name(stage: dict) -> str:
  """A policy's name across runs: "sft", or the reward arm ("graduated", "binary", ...) with
  ":occurrence" where the atomic match is not the paper's and the reward reads it (binary and
  R_orch alone never do, so their runs pool whatever the config's lookup)."""
  arm = _rl_arm(stage)
  if arm is None:
    return stage["name"]
  reward, match = arm
  if match == "first" or not rw.reads_atomic_match(reward):
    return reward
  return f"{reward}:{match}"


# (a, b) pairs `seeds` compares per held-out workflow (where both arms ran).
COMPARE = (("graduated", "binary"), ("graduated:occurrence", "binary"),
           ("graduated:occurrence", "graduated"), ("graduated", "sft"), ("binary", "sft"),
           ("graduated:occurrence", "sft"))


def seeds(workdirs: Sequence[str]) -> dict[str, Any]:
  """Workflow success per arm (`arm_name`) and seed, and paired comparisons pooled over seeds.

  Workdirs of the same seed share their held-out workflows (the task is drawn from the seed),
  so arms of one seed may come from separate runs; an arm found twice for a seed (the SFT of
  two runs of the same seed) must give the same records. A pair (a, b) of `COMPARE` counts, on
  the workflows of every seed where both ran, those only a solves and those only b solves, with
  a two-sided sign test on them. Returns {"per_seed": {arm: {seed: success}}, "pairs":
  {"a vs b": {"a_only", "b_only", "n", "p"}}} and prints them."""
  solved: dict[str, dict[int, list[bool]]] = {}
  for workdir in workdirs:
    with open(os.path.join(workdir, "config.json"), encoding="utf-8") as f:
      seed = int(json.load(f)["seed"])
    plan = {st["name"]: st for st in run_results.stage_plan(workdir)}
    for name, saved in run_results.saved_evals(workdir).items():
      arm = arm_name(plan[name])
      rows = [bool(r["success"]) for r in saved["records"][name]]
      if seed in solved.get(arm, {}) and solved[arm][seed] != rows:
        raise ValueError(f"tool_orchestration seeds: arm {arm!r} of seed {seed} differs between "
                         f"workdirs ({workdir}); expected one result per arm and seed")
      solved.setdefault(arm, {})[seed] = rows
  per_seed = {arm: {s: float(np.mean(r)) for s, r in sorted(by.items())}
              for arm, by in solved.items()}
  pairs = {}
  for a, b in COMPARE:
    common = sorted(set(solved.get(a, {})) & set(solved.get(b, {})))
    if not common:
      continue
    pairs[f"{a} vs {b}"] = dict(paired.sign_comparison(
        [x for s in common for x in solved[a][s]], [y for s in common for y in solved[b][s]]),
        seeds=common)
  all_seeds = sorted({s for by in per_seed.values() for s in by})
  lines = ["| arm | " + " | ".join(f"seed {s}" for s in all_seeds) + " | mean |",
           "|---" * (len(all_seeds) + 2) + "|"]
  for arm, by in per_seed.items():
    lines.append(f"| {arm} | " + " | ".join(fmt(by.get(s)) for s in all_seeds)
                 + f" | {np.mean(list(by.values())):.3f} |")
  lines += ["", "| pair (a vs b) | seeds | solved a / b | only a / only b | sign test p |",
            "|---|---|---|---|---|"]
  lines += [f"| {k} | {len(v['seeds'])} | {v['a']} / {v['b']} of {v['n']} | {v['a_only']} / "
            f"{v['b_only']} | {v['p']:.3f} |" for k, v in pairs.items()]
  print("\n".join(lines))
  return {"per_seed": per_seed, "pairs": pairs}


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
  if len(sys.argv) > 2:
    from rl_jax.projects.tool_orchestration import report as registered  # pylint: disable=g-import-not-at-top
    registered.seeds(sys.argv[1:])
