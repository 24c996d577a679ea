"""Translate-R1 report: tables, the Pareto plot, results.json and report.md of a run, and the
seed table over several runs.

    python -m rl_jax.projects.translate_r1.report WORKDIR [WORKDIR ...]

The report "translate_r1" (`config.report`) runs at the end of the training command and writes
<workdir>/results.json, report.md and pareto.png from the evaluation records of every stage
(<workdir>/eval/*.json: the SFT policy, always- and never-translate, each RL policy) and
metrics.jsonl; the command above prints the seed table (mean +- std over runs and the paired
bootstrap of the Pareto share) for workdirs that differ only in seed.
"""
from __future__ import annotations

import json
import math
import os
import sys
from typing import Any, Mapping, Sequence

import numpy as np

from rl_jax.eval import pareto, run_results
from rl_jax.eval.hooks import register_report
from rl_jax.projects.translate_r1.evaluation import (GROUPS, TRAINED_TIERS, mean_or_nan,
                                                     bootstrap_pareto_share, summarize, sweep)

def plot(summaries: Mapping[str, Mapping[str, Any]], families: Mapping[str, str], path: str,
         title: str) -> str:
  points: dict[str, list] = {}
  for name, s in summaries.items():
    points.setdefault(families[name], []).append((s["C"], s["R"]))
  return pareto.plot_pareto(points, path, title=title)


def fmt(x: float) -> str:
  return "nan" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.3f}"


def markdown_tables(summaries: Mapping[str, Mapping[str, Any]], sweep_result: Mapping[str, Any]
                    ) -> str:
  """Reward and translate-rate tables per group, plus the sweep numbers."""
  lines = ["| policy | R | C | " + " | ".join(GROUPS) + " |",
           "|---|---|---|" + "---|" * len(GROUPS)]
  for name, s in summaries.items():
    lines.append(f"| {name} | {fmt(s['R'])} | {fmt(s['C'])} | "
                 + " | ".join(fmt(s[g]["reward"]) for g in GROUPS) + " |")
  lines += ["", "Translate rate per group:", "",
            "| policy | " + " | ".join(GROUPS) + " |", "|---|" + "---|" * len(GROUPS)]
  for name, s in summaries.items():
    lines.append(f"| {name} | " + " | ".join(fmt(s[g]["translated"]) for g in GROUPS) + " |")
  domains = sorted({d for s in summaries.values() for d in s.get("per_domain", {})})
  if domains:
    lines += ["", "Per domain over the trained tiers (reward / translate rate):", "",
              "| policy | " + " | ".join(domains) + " |", "|---|" + "---|" * len(domains)]
    for name, s in summaries.items():
      cells = [s["per_domain"].get(d, {}) for d in domains]
      lines.append(f"| {name} | " + " | ".join(
          f"{fmt(c.get('reward'))} / {fmt(c.get('translated'))}" for c in cells) + " |")
  lines += ["", "Pareto share (ties split) per family:", ""]
  for key, shares in sweep_result.items():
    if key.startswith("pareto_share/"):
      lines.append(f"- {key.split('/')[1]}: "
                   + ", ".join(f"{f} {fmt(v)}" for f, v in shares.items()))
  if "cost_to_match_always" in sweep_result:
    lines.append(f"- gated cost-to-match always-translate: "
                 f"{fmt(sweep_result['cost_to_match_always'])}")
  return "\n".join(lines) + "\n"


def seed_table(results: Sequence[Mapping[str, Any]]) -> str:
  """Mean +- std over seeds of R, C, per-group reward / translate rate, the gated family's Pareto
  share and cost-to-match (`results`: the results.json of runs that differ only in seed)."""
  def ms(values):
    v = np.asarray(values, np.float64)
    return f"{np.nanmean(v):.3f} ± {np.nanstd(v):.3f}" if v.size > 1 else f"{v[0]:.3f}"

  names = list(results[0]["summaries"])
  cols = ["R", "C"] + [f"{g} R" for g in GROUPS] + [f"{g} tr" for g in ("xlow", "unseen",
                                                                        "heldout")]
  lines = [f"{len(results)} seed(s): mean ± std", "", "| policy | " + " | ".join(cols) + " |",
           "|---|" + "---|" * len(cols)]
  for name in names:
    s = [r["summaries"][name] for r in results]
    row = [ms([x["R"] for x in s]), ms([x["C"] for x in s])]
    row += [ms([x[g]["reward"] for x in s]) for g in GROUPS]
    row += [ms([x[g]["translated"] for x in s]) for g in ("xlow", "unseen", "heldout")]
    lines.append(f"| {name} | " + " | ".join(row) + " |")
  lines.append("")
  for key in results[0]["sweep"]:
    if key.startswith("pareto_share/"):
      lines.append(f"- Pareto share of the gated family ({key.split('/')[1]}): "
                   + ms([r["sweep"][key].get("gated", np.nan) for r in results]))
  if "cost_to_match_always" in results[0]["sweep"]:
    lines.append("- gated cost-to-match always-translate (NaN: never reached): "
                 + ms([r["sweep"]["cost_to_match_always"] for r in results]))
  for k, r in enumerate(results):
    if "item_scores" in r:  # runs written before the per-item scores were kept have none
      # The run's own alpha grid, so the point share is the sweep's (1001: the config default,
      # for results.json files written before the grid size was recorded).
      b = bootstrap_pareto_share(r["item_scores"], r["families"], alpha_max=r["alpha_max"],
                                 n_alpha=r.get("n_alpha", 1001))
      lines.append(f"- run {k}: gated Pareto share {b['point']:.3f}, paired bootstrap over the "
                   f"items ({b['n_boot']} resamples): median {b['median']:.3f}, 90% interval "
                   f"[{b['lo']:.3f}, {b['hi']:.3f}], share >= {b['goal']:g} in "
                   f"{b['p_goal']:.0%} of resamples")
  return "\n".join(lines) + "\n"


def tracking_table(tracking: Mapping[str, Sequence[Mapping[str, float]]],
                   lang_group: Mapping[str, str]) -> str:
  """Greedy translate rate over RL steps, averaged per language group, for every policy."""
  lines = ["| policy | step | " + " | ".join(GROUPS) + " |", "|---|---|" + "---|" * len(GROUPS)]
  for name, rows in tracking.items():
    for row in rows:
      by_group = {g: [v for k, v in row.items() if k != "step" and lang_group.get(k) == g]
                  for g in GROUPS}
      lines.append(f"| {name} | {int(row['step'])} | "
                   + " | ".join(fmt(mean_or_nan(by_group[g])) for g in GROUPS) + " |")
  return "\n".join(lines) + "\n"


def training_rate_table(metrics_by_policy: Mapping[str, Sequence[Mapping[str, float]]], *,
                        first: int = 5, last: int = 20) -> str:
  """Sampled translate rate per trained tier in the RL rollouts (temperature 1), mean of the
  first `first` and of the last `last` steps, and the mean gate: the over-suppression view
  (`metrics_by_policy`: each policy's rows of its metrics.jsonl)."""
  tiers = ("base", "high", "low", "xlow")
  lines = ["| policy | " + " | ".join(f"{t} first→last" for t in tiers) + " | gate open |",
           "|---|" + "---|" * (len(tiers) + 1)]

  def window(rows, key, sl):
    return mean_or_nan([r[key] for r in rows[sl] if key in r])

  for name, rows in metrics_by_policy.items():
    head, tail = slice(0, first), slice(max(len(rows) - last, 0), None)
    cells = [f"{fmt(window(rows, f'tool/translate_rate_{t}', head))} → "
             f"{fmt(window(rows, f'tool/translate_rate_{t}', tail))}" for t in tiers]
    gate = f"{fmt(window(rows, 'gate/mean', head))} → {fmt(window(rows, 'gate/mean', tail))}"
    lines.append(f"| {name} | " + " | ".join(cells) + f" | {gate} |")
  return "\n".join(lines) + "\n"




def _policy_name(overrides: Mapping[str, Any]) -> tuple[str, str, float]:
  """(name, family, lam) of an RL stage from its swept values (gate "none" = ungated)."""
  gate = overrides.get("advantage.gate", "native_success")
  lam = float(overrides.get("advantage.lam", float("nan")))
  family = "ungated" if gate == "none" else "gated"
  return f"{family}_lam{lam:g}", family, lam


def load_run(workdir: str) -> dict[str, Any]:
  """Records, families, lambdas and tracking of a run, from its eval/, summary and metrics."""
  finals = run_results.final_evals(workdir)
  rows = run_results.metric_records(workdir)
  saved_by_stage = run_results.saved_evals(workdir)
  records, families, lams, tracking, training = {}, {}, {}, {}, {}
  track = lambda m: {k.split("/", 1)[1]: v for k, v in m.items() if k.startswith("track/")}
  base_track = None
  for stage in run_results.stage_plan(workdir):
    saved = saved_by_stage.get(stage["name"])
    if saved is None:
      continue
    if stage["kind"] != "rl":
      for name, recs in saved["records"].items():
        records[name] = recs
        families[name] = name if name in ("always", "never") else "sft"
      base_track = track(finals.get(stage["name"], {}))
      continue
    name, family, lam = _policy_name(saved["overrides"])
    records[name], families[name], lams[name] = saved["records"][stage["name"]], family, lam
    mine = [r for r in rows if r.get("stage") == stage["name"]]
    training[name] = mine
    tracking[name] = ([{"step": 0, **base_track}] if base_track else []) + [
        {"step": r["step"] + 1, **track(r)} for r in mine if track(r)] + [
        {"step": stage["section"]["steps"], **track(finals.get(stage["name"], {}))}]
  if "always" not in records:
    raise ValueError(f"{workdir}: no always-translate records (eval/<sft stage>.json); the "
                     "report needs the SFT stage's evaluation")
  return dict(records=records, families=families, lams=lams, tracking=tracking,
              training=training)


@register_report("translate_r1", __name__)
def write_report(workdir: str, *, alpha_max: float | None = None, n_alpha: int = 1001,
                 plot_pareto: bool = True, title: str = "Translate-R1 cipher world"
                 ) -> dict[str, Any]:
  """results.json, report.md and (plot_pareto) pareto.png of one run. alpha_max: top of the
  Pareto sweep; None = the largest trained lambda (docs/translate_r1.md: the sweep covers the
  trained
  range); the share over [0, 1] is reported as well."""
  run = load_run(workdir)
  records, families, lams = run["records"], run["families"], run["lams"]
  always_cost = summarize(records["always"], 1.0)["C"]
  summaries = {n: summarize(r, always_cost) for n, r in records.items()}
  alpha_max = alpha_max if alpha_max is not None else max(lams.values(), default=1.0)
  result = sweep(summaries, families, lams, alpha_max=alpha_max, n_alpha=n_alpha)
  result_unit = sweep(summaries, families, lams, alpha_max=1.0, n_alpha=n_alpha)
  # Per-item scores (every policy ran on the same items, in the same order) for the paired
  # bootstrap of the Pareto share (`bootstrap_pareto_share`).
  item_scores = {"group": [rec["group"] for rec in records["always"]],
                 "policies": {n: {k: [rec[k] for rec in recs] for k in ("reward", "cost")}
                              for n, recs in records.items()}}
  out = {"summaries": summaries, "sweep": result, "alpha_max": alpha_max, "n_alpha": n_alpha,
         "sweep_alpha_0to1": result_unit, "families": families, "lams": lams,
         "tracking": run["tracking"], "item_scores": item_scores}
  with open(os.path.join(workdir, "results.json"), "w", encoding="utf-8") as f:
    json.dump(out, f, indent=1)
  world_groups = {k: v for recs in records.values() for k, v in
                  ((r["lang"], r["group"]) for r in recs)}
  with open(os.path.join(workdir, "report.md"), "w", encoding="utf-8") as f:
    f.write(markdown_tables(summaries, result))
    f.write(f"\n(alpha in [0, {alpha_max:g}]; over alpha in [0, 1]: "
            + ", ".join(f"{k.split('/')[1]} gated {fmt(v.get('gated'))}"
                        for k, v in result_unit.items() if k.startswith("pareto_share/"))
            + ")\n")
    f.write("\nSampled translate rate in the RL rollouts (first 5 → last 20 steps):\n\n")
    f.write(training_rate_table(run["training"]))
    f.write("\nGreedy translate rate over RL steps (tracking set):\n\n")
    f.write(tracking_table(run["tracking"], world_groups))
  if plot_pareto:
    plot(summaries, families, os.path.join(workdir, "pareto.png"), title)
  print(markdown_tables(summaries, result))
  return out


def main(argv: Sequence[str] | None = None) -> int:
  """`python -m rl_jax.projects.translate_r1.report WORKDIR [WORKDIR ...]`: writes each run's
  report (if it has none yet) and prints the seed table over the runs."""
  paths = list(sys.argv[1:] if argv is None else argv)
  if not paths:
    raise SystemExit("usage: python -m rl_jax.projects.translate_r1.report WORKDIR [WORKDIR ...]")
  results = []
  for p in paths:
    path = os.path.join(p, "results.json")
    if not os.path.exists(path):
      write_report(p, plot_pareto=False)
    with open(path, encoding="utf-8") as f:
      results.append(json.load(f))
  print(seed_table(results))
  return 0


if __name__ == "__main__":
  raise SystemExit(main())
