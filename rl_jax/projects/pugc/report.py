"""The PUGC results table and plot from the eval records of every stage (docs/pugc.md).

Report "pugc" (config `report`, kwargs `n_boot`, `boot_seed`), or on finished workdirs:

    python -m rl_jax.projects.pugc.report W

writes into W: pugc_report.md (per arm: oracle accuracy, mean oracle score, mean words, and
against the SFT model: win rate and length-controlled win rate (`winrate`), each with a 95%
percentile interval over `n_boot` bootstrap resamples of the questions; also the two DPO arms
head to head, and the pair statistics of each judge), pugc_results.json (the same numbers) and
pugc_winrates.png (win rate and LC win rate against SFT per arm).
"""
from __future__ import annotations

import json
import os
import sys
from typing import Any

import numpy as np

from rl_jax.eval import figures, run_results
from rl_jax.eval.hooks import register_report, report_main
from rl_jax.projects.pugc import evaluation, winrate

ARM_NAMES = {"sft": "SFT", "preference_judge=reference": "DPO-ref",
             "preference_judge=none": "DPO-noref", "preference": "DPO"}


def load_arms(workdir: str) -> dict[str, list[dict[str, Any]]]:
  """Arm label -> eval records, in the order of config.json's stage plan."""
  arms = {ARM_NAMES.get(name, name): saved["records"]
          for name, saved in run_results.saved_evals(workdir).items()}
  if "SFT" not in arms:
    raise ValueError(f"PUGC report: no SFT eval records under {workdir}/eval (run with "
                     "eval.evaluator={'name': 'pugc'} and eval.at_stage_end=True)")
  return arms


def compare(model, base, *, n_boot: int, seed: int) -> dict[str, Any]:
  """Win rate and LC win rate of `model` against `base` (same questions, same order), with
  bootstrap 95% intervals over the questions."""
  if [r["question"] for r in model] != [r["question"] for r in base]:
    raise ValueError("PUGC report: the two arms answered different questions")
  s_m, s_b = [r["score"] for r in model], [r["score"] for r in base]
  l_m, l_b = [r["words"] for r in model], [r["words"] for r in base]
  out = winrate.win_rates(s_m, s_b, l_m, l_b)
  rng = np.random.default_rng(seed)
  boot = {"win_rate": [], "lc_win_rate": []}
  arrays = [np.asarray(x, float) for x in (s_m, s_b, l_m, l_b)]
  for _ in range(n_boot):
    i = rng.integers(0, len(s_m), len(s_m))
    b = winrate.win_rates(*(a[i] for a in arrays))
    for k in boot:
      boot[k].append(b[k])
  for k, values in boot.items():
    if values:
      out[f"{k}_ci95"] = [float(np.percentile(values, 2.5)), float(np.percentile(values, 97.5))]
  return out


def pair_stats(workdir: str) -> dict[str, dict[str, float]]:
  """pairs/<judge>/<stat> metrics from summary.json's stage evals (the latest value wins)."""
  out: dict[str, dict[str, float]] = {}
  for metrics in run_results.final_evals(workdir, required=False).values():
    for key, value in metrics.items():
      if key.startswith("pairs/"):
        _, judge, stat = key.split("/", 2)
        out.setdefault(judge, {})[stat] = value
  return out


@register_report("pugc", __name__)
def report(workdir: str, n_boot: int = 200, boot_seed: int = 0) -> dict[str, Any]:
  arms = load_arms(workdir)
  table = {arm: evaluation.summarize(records) for arm, records in arms.items()}
  vs_sft = {arm: compare(records, arms["SFT"], n_boot=n_boot, seed=boot_seed)
            for arm, records in arms.items() if arm != "SFT"}
  vs_sft_ugc = {}
  for arm, records in arms.items():
    keep = [i for i, r in enumerate(arms["SFT"]) if r["ugc"]]
    if arm != "SFT" and keep:
      vs_sft_ugc[arm] = compare([records[i] for i in keep], [arms["SFT"][i] for i in keep],
                                n_boot=n_boot, seed=boot_seed)
  head_to_head = {}
  if "DPO-ref" in arms and "DPO-noref" in arms:
    head_to_head["DPO-ref vs DPO-noref"] = compare(arms["DPO-ref"], arms["DPO-noref"],
                                                   n_boot=n_boot, seed=boot_seed)
  pairs = pair_stats(workdir)
  results = {"table": table, "vs_sft": vs_sft, "vs_sft_ugc_places": vs_sft_ugc,
             "head_to_head": head_to_head, "pairs": pairs,
             "num_questions": len(arms["SFT"])}
  with open(os.path.join(workdir, "pugc_results.json"), "w", encoding="utf-8") as f:
    json.dump(results, f, indent=1)

  def ci(m, k):
    lo_hi = m.get(f"{k}_ci95")
    return f"{m[k]:.3f}" + (f" [{lo_hi[0]:.2f}, {lo_hi[1]:.2f}]" if lo_hi else "")

  lines = ["| arm | accuracy | accuracy (UGC places) | oracle score | words | WR vs SFT | "
           "LC WR vs SFT | LC WR vs SFT (UGC places) |", "|" + "---|" * 8]
  for arm, m in table.items():
    w, u = vs_sft.get(arm), vs_sft_ugc.get(arm)
    lines.append(f"| {arm} | {m['eval/accuracy']:.3f} | {m.get('eval/ugc_accuracy', 0):.3f} | "
                 f"{m['eval/oracle_score']:.3f} | {m['eval/words']:.2f} | "
                 f"{ci(w, 'win_rate') if w else '-'} | {ci(w, 'lc_win_rate') if w else '-'} | "
                 f"{ci(u, 'lc_win_rate') if u else '-'} |")
  for name, m in head_to_head.items():
    lines += ["", f"{name}: WR {ci(m, 'win_rate')}, LC WR {ci(m, 'lc_win_rate')}"]
  if pairs:
    keys = ["instructions", "pairs", "ties", "sample_correct", "chosen_correct",
            "rejected_correct", "chosen_words", "rejected_words"]
    lines += ["", "Pairs by judge (oracle's view; `correct`: states the asked fact's true value):",
              "", "| judge | " + " | ".join(keys) + " |", "|" + "---|" * (len(keys) + 1)]
    for judge, stats in pairs.items():
      if judge != "instructions":
        lines.append(f"| {judge} | " + " | ".join(f"{stats.get(k, float('nan')):.3g}"
                                                  for k in keys) + " |")
  with open(os.path.join(workdir, "pugc_report.md"), "w", encoding="utf-8") as f:
    f.write(f"# PUGC: win rates against the SFT model ({len(arms['SFT'])} questions, oracle "
            "judge)\n\n" + "\n".join(lines) + "\n")

  fig, ax = figures.pyplot().subplots(figsize=(5.5, 3.8))
  names = list(vs_sft)
  x = np.arange(len(names))
  for offset, key, label in ((-0.2, "win_rate", "win rate"),
                             (0.2, "lc_win_rate", "LC win rate")):
    values = [vs_sft[n][key] for n in names]
    errs = np.array([[v - vs_sft[n].get(f"{key}_ci95", [v, v])[0],
                      vs_sft[n].get(f"{key}_ci95", [v, v])[1] - v]
                     for n, v in zip(names, values)]).T
    ax.bar(x + offset, values, 0.4, yerr=errs if len(names) else None, capsize=3, label=label)
  ax.axhline(0.5, color="gray", lw=1, ls="--")
  ax.set_xticks(x, names)
  ax.set_ylabel("against SFT (oracle judge)")
  ax.set_ylim(0, 1)
  ax.legend()
  figures.save(fig, os.path.join(workdir, "pugc_winrates.png"), dpi=120)
  print("\n".join(lines))
  return results


if __name__ == "__main__":
  report_main("pugc", sys.argv[1:])
