"""The HeaPA study report: compute to a held-out accuracy target, zero-variance groups, the pool's
reward histogram over time and its wall-clock overhead, per arm (docs/heapa.md).

Each arm is one run of configs/heapa_tiny_arith.py in its own workdir; the report reads every
sibling workdir with a metrics.jsonl under `study_dir` and writes `heapa_results.json`,
`heapa_report.md`, `heapa_accuracy_vs_tokens.png`, `heapa_zero_var.png` and
`heapa_pool_hist_<arm>.png` there.

    python -m rl_jax.projects.heapa.report runs/heapa [--target=0.45] [--extra_targets 0.35 0.4]

Definitions:
  compute: cumulative generated tokens, rollout/tokens (every draw, dynamic sampling's rejected
    groups included) plus aug/aug_tokens (tokens the policy spent writing variants);
  tokens to target: compute at the first eval whose eval/accuracy >= target (None if never);
  zero-variance fraction: reward/frac_groups_zero_var of the trained batch (after dynamic
    sampling's filter, which keeps none by construction: for "dynamic" the rejected draws
    show in rollout/draws);
  overhead: sum of time/source_s over sum of time/rollout_s + time/update_s (run with
    timing=True for exact update times).
"""
from __future__ import annotations

import argparse
import json
import math
import os
from typing import Any, Mapping, Sequence

import numpy as np

from rl_jax.eval import figures, run_results
from rl_jax.eval.hooks import register_report

ARM_ORDER = ("uniform", "dynamic", "heap", "heap_aug", "heap_aug_path", "heap_aug_policy")


def tokens_to_target(eval_tokens: list[float], accuracy: list[float], target: float
                     ) -> float | None:
  """Cumulative tokens at the first eval whose accuracy reaches `target`; None if none does."""
  for tokens, acc in zip(eval_tokens, accuracy):
    if acc >= target:
      return float(tokens)
  return None


def summarize_arm(records: list[Mapping[str, Any]], target: float,
                  final_accuracy: float | None = None) -> dict[str, Any]:
  """One arm's curves and numbers from its metrics.jsonl records; final_accuracy: the stage-end
  eval (summary.json), which metrics.jsonl does not hold, counted after the last step."""
  rl = sorted((r for r in records if str(r.get("stage", "")).startswith("rl")
               and "rollout/tokens" in r), key=lambda r: r["step"])
  evals = sorted((r for r in records if str(r.get("stage", "")).startswith("rl")
                  and "eval/accuracy" in r), key=lambda r: r["step"])
  tokens = np.asarray([r["rollout/tokens"] for r in rl], np.float64)
  aug = np.asarray([r.get("aug/aug_tokens", 0.0) for r in rl], np.float64)  # cumulative counter
  cum = np.cumsum(tokens) + aug
  # The eval after RL step s (0-based; the hook's step s + 1) is logged in step s's record.
  eval_steps = [int(r["step"]) + 1 for r in evals]
  accuracy = [float(r["eval/accuracy"]) for r in evals]
  if final_accuracy is not None and rl and (not eval_steps or eval_steps[-1] < len(rl)):
    eval_steps.append(len(rl))
    accuracy.append(float(final_accuracy))
  eval_tokens = [float(cum[s - 1]) for s in eval_steps]
  source_s = sum(r.get("time/source_s", 0.0) for r in rl)
  step_s = sum(r.get("time/rollout_s", 0.0) + r.get("time/update_s", 0.0) for r in rl)
  hist_keys = sorted(k for k in (rl[0] if rl else {}) if k.startswith("pool/hist_"))
  last = rl[-1] if rl else {}
  return {
      "steps": len(rl), "tokens_total": float(cum[-1]) if len(cum) else 0.0,
      "tokens_to_target": tokens_to_target(eval_tokens, accuracy, target),
      "final_accuracy": accuracy[-1] if accuracy else None,
      "best_accuracy": max(accuracy) if accuracy else None,
      "eval_steps": eval_steps, "accuracy": accuracy,
      "eval_tokens": eval_tokens,
      "zero_var": [float(r["reward/frac_groups_zero_var"]) for r in rl],
      "zero_var_mean": float(np.mean([r["reward/frac_groups_zero_var"] for r in rl]))
                       if rl else None,
      "draws_mean": float(np.mean([r["rollout/draws"] for r in rl])) if rl else None,
      # Only sources that time themselves (the HeaPA pool) log time/source_s.
      "source_overhead": (source_s / step_s if step_s > 0 and any("time/source_s" in r for r in rl)
                          else None),
      "pool_hist": [[float(r.get(k, 0.0)) for k in hist_keys] for r in rl] if hist_keys else [],
      "aug": {k[4:]: float(v) for k, v in last.items() if k.startswith("aug/")},
      "pool_evicted": last.get("pool/evicted"), "pool_reinserted": last.get("pool/reinserted"),
  }


def _fmt(x, spec=".3f") -> str:
  if x is None or (isinstance(x, float) and math.isnan(x)):
    return "-"
  return format(x, spec)


def markdown(arms: Mapping[str, Mapping[str, Any]], target: float) -> str:
  base = arms.get("uniform", {}).get("tokens_to_target")
  lines = [f"Held-out greedy accuracy target: {target}", "",
           "| arm | tokens to target | vs uniform | final acc | best acc | zero-var groups "
           "| draws/step | pool overhead | variants ok / proposed |",
           "|---|---|---|---|---|---|---|---|---|"]
  for name, s in arms.items():
    t = s["tokens_to_target"]
    saved = 1 - t / base if t is not None and base else None
    rel = ("-" if saved is None else
           f"{100 * saved:.1f}% fewer" if saved >= 0 else f"{-100 * saved:.1f}% more")
    aug = s["aug"]
    variants = (f"{aug.get('ok', 0):.0f} / {aug.get('proposed', 0):.0f}"
                if aug.get("proposed") else "-")
    lines.append(f"| {name} | {_fmt(t, '.0f')} | {rel} | {_fmt(s['final_accuracy'])} | "
                 f"{_fmt(s['best_accuracy'])} | {_fmt(s['zero_var_mean'])} | "
                 f"{_fmt(s['draws_mean'], '.2f')} | "
                 f"{_fmt(None if s['source_overhead'] is None else 100 * s['source_overhead'], '.2f')}"
                 f"{'%' if s['source_overhead'] is not None else ''} | {variants} |")
  rejected = {n: {k: v for k, v in s["aug"].items()
                  if k in ("invalid", "unsolvable", "duplicate", "heldout", "skipped_full")}
              for n, s in arms.items() if s["aug"].get("proposed")}
  extra = sorted({t for s in arms.values() for t in s.get("tokens_to", {})} - {target})
  if extra:
    lines += ["", "Tokens to other accuracy targets (- = not reached):", "",
              "| arm | " + " | ".join(f"{t:g}" for t in extra) + " |",
              "|---|" + "---|" * len(extra)]
    lines += [f"| {n} | " + " | ".join(_fmt(s["tokens_to"].get(t), ".0f") for t in extra) + " |"
              for n, s in arms.items()]
  if rejected:
    lines += ["", "Variants the validator refused (never inserted), per arm:", ""]
    lines += [f"- {n}: " + ", ".join(f"{k} {v:.0f}" for k, v in r.items()) for n, r in
              rejected.items()]
  return "\n".join(lines) + "\n"


def plot(arms: Mapping[str, Mapping[str, Any]], out_dir: str, target: float) -> list[str]:
  plt = figures.pyplot()
  paths = []
  fig, ax = plt.subplots(figsize=(6, 4))
  for name, s in arms.items():
    ax.plot(s["eval_tokens"], s["accuracy"], marker="o", ms=3, label=name)
  ax.axhline(target, color="grey", ls="--", lw=1)
  ax.set_xlabel("cumulative generated tokens")
  ax.set_ylabel("held-out greedy accuracy")
  ax.legend(fontsize=8)
  paths.append(figures.save(fig, os.path.join(out_dir, "heapa_accuracy_vs_tokens.png"), dpi=120))
  fig, ax = plt.subplots(figsize=(6, 4))
  for name, s in arms.items():
    ax.plot(np.arange(1, len(s["zero_var"]) + 1), s["zero_var"], label=name, lw=1)
  ax.set_xlabel("RL step")
  ax.set_ylabel("fraction of zero-variance groups")
  ax.legend(fontsize=8)
  paths.append(figures.save(fig, os.path.join(out_dir, "heapa_zero_var.png"), dpi=120))
  for name, s in arms.items():
    if not s["pool_hist"]:
      continue
    hist = np.asarray(s["pool_hist"]).T  # bins x steps
    fig, ax = plt.subplots(figsize=(6, 3))
    im = ax.imshow(hist, aspect="auto", origin="lower", extent=(0.5, hist.shape[1] + 0.5, 0, 1),
                   cmap="viridis")
    ax.set_xlabel("RL step")
    ax.set_ylabel("pool record reward")
    ax.set_title(f"{name}: fraction of scored pool records per reward bin", fontsize=9)
    fig.colorbar(im, ax=ax)
    paths.append(figures.save(fig, os.path.join(out_dir, f"heapa_pool_hist_{name}.png"),
                              dpi=120))
  return paths


def _final_accuracy(workdir: str) -> float | None:
  """The RL stage-end eval/accuracy of a run's summary.json (None if absent)."""
  evals = run_results.final_evals(workdir, required=False)
  values = [v["eval/accuracy"] for k, v in evals.items()
            if k.startswith("rl") and "eval/accuracy" in v]
  return float(values[-1]) if values else None


def study(study_dir: str, target: float, plots: bool = True, extra_targets: Sequence[float] = ()
          ) -> dict[str, Any]:
  """Reads every arm under study_dir and writes the study's table, JSON and plots there."""
  found = {d: os.path.join(study_dir, d) for d in sorted(os.listdir(study_dir))
           if os.path.isfile(os.path.join(study_dir, d, "metrics.jsonl"))}
  order = [a for a in ARM_ORDER if a in found] + [a for a in found if a not in ARM_ORDER]
  arms = {a: summarize_arm(run_results.metric_records(found[a]), target,
                           _final_accuracy(found[a])) for a in order}
  arms = {a: s for a, s in arms.items() if s["steps"]}  # e.g. the shared SFT run: no RL steps
  for s in arms.values():
    s["tokens_to"] = {t: tokens_to_target(s["eval_tokens"], s["accuracy"], t)
                      for t in (target, *extra_targets)}
  out = {"target": target, "arms": arms}
  with open(os.path.join(study_dir, "heapa_results.json"), "w", encoding="utf-8") as f:
    json.dump(out, f, indent=1)
  with open(os.path.join(study_dir, "heapa_report.md"), "w", encoding="utf-8") as f:
    f.write(markdown(arms, target))
  if plots:
    out["plots"] = plot(arms, study_dir, target)
  return out


@register_report("heapa", __name__)
def write_report(workdir: str, *, target: float = 0.75, study_dir: str = "..",
                 plots: bool = True, extra_targets: Sequence[float] = ()) -> dict[str, Any]:
  """The study report over `study_dir` (relative to this run's workdir; ".." = the arms'
  parent directory). target: held-out accuracy of the compute-to-target metric; extra_targets:
  more targets reported beside it."""
  return study(os.path.normpath(os.path.join(workdir, study_dir)), target, plots,
               tuple(extra_targets))


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("study_dir")
  parser.add_argument("--target", type=float, default=0.45)
  parser.add_argument("--extra_targets", type=float, nargs="*", default=(0.35, 0.4, 0.5))
  args = parser.parse_args(argv)
  print(markdown(study(args.study_dir, args.target, extra_targets=args.extra_targets)["arms"],
                 args.target))


if __name__ == "__main__":
  main()
