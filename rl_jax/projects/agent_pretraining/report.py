"""Report "agent_pretraining": the mixing-study table and law fit, and the stage comparison.

Over a study directory (rl_jax.projects.agent_pretraining.study) or a single run's workdir:

  grid.json (if present)   per point: agent / general held-out loss; the law
                           L(N, p) = c + k exp(t p) + A / (N/N0)^alpha fitted to every ratio but
                           the held-out one, its prediction there (relative error per width),
                           and p* at the target width;
  summary.json of the run  (the workdir's own, or <workdir>/stages/): per stage held-out losses
                           and docs-only call accuracy (stage II arm vs stage I alone).

Writes report.md, results.json, mixing_law.png (loss vs p per width, fit curves, held-out points)
and stages.png (call accuracy per stage) into the workdir.
"""
from __future__ import annotations

import json
import os
from typing import Any, Mapping, Sequence

import numpy as np

from rl_jax.eval import figures
from rl_jax.eval.hooks import REPORTS
from rl_jax.projects.agent_pretraining import mixing_law

LOSSES = ("agent_loss", "general_loss")


def _get(m, key, default=None):
  return m[key] if isinstance(m, Mapping) else getattr(m, key, default)


def analyse_grid(points: Sequence[Mapping[str, Any]], mixing) -> dict[str, Any]:
  """Fits the law per loss on the points whose ratio is not `mixing.heldout_ratio`; predicts the
  held-out points; p* at `target_width` (its N read from the grid's points)."""
  held = float(_get(mixing, "heldout_ratio"))
  is_held = lambda r: abs(r["ratio"] - held) < 1e-9
  lowest = float(_get(mixing, "min_fit_ratio", 0.0) if not isinstance(mixing, Mapping)
                 else mixing.get("min_fit_ratio", 0.0))
  fit_pts = [r for r in points if not is_held(r) and r["ratio"] >= lowest]
  out: dict[str, Any] = {"heldout_ratio": held, "min_fit_ratio": lowest, "fits": {},
                         "heldout": []}
  for loss in LOSSES:
    fit = mixing_law.fit_law([r["n_params"] for r in fit_pts], [r["ratio"] for r in fit_pts],
                             [r[loss] for r in fit_pts])
    out["fits"][loss] = fit.as_dict()
  fits = {loss: mixing_law.LawFit(tuple(out["fits"][loss][k] for k in mixing_law.PARAM_NAMES),
                                  out["fits"][loss]["n0"], out["fits"][loss]["rms"])
          for loss in LOSSES}
  for r in points:
    if is_held(r):
      row = {"ratio": r["ratio"], "width": r["width"]}
      for loss in LOSSES:
        pred = float(fits[loss].predict(r["n_params"], r["ratio"]))
        row[loss] = r[loss]
        row[loss + "_predicted"] = pred
        row[loss + "_rel_error"] = abs(pred - r[loss]) / abs(r[loss])
      out["heldout"].append(row)
  errs = [row[loss + "_rel_error"] for row in out["heldout"] for loss in LOSSES]
  out["max_heldout_rel_error"] = max(errs) if errs else float("nan")
  target = int(_get(mixing, "target_width"))
  n_target = [r["n_params"] for r in points if r["width"] == target]
  if not n_target:
    raise ValueError(f"config mixing.target_width={target} is not one of the grid's widths")
  out["p_star"], out["objective_at_p_star"] = mixing_law.best_ratio(
      fits["agent_loss"], fits["general_loss"], n_target[0], float(_get(mixing, "agent_weight")))
  out["target_width"], out["target_n_params"] = target, n_target[0]
  return out


def _plot_grid(points, analysis, path: str) -> None:
  fig, axes = figures.pyplot().subplots(1, 2, figsize=(10, 4))
  ps = np.linspace(0, 1, 101)
  for ax, loss in zip(axes, LOSSES):
    f = analysis["fits"][loss]
    fit = mixing_law.LawFit(tuple(f[k] for k in mixing_law.PARAM_NAMES), f["n0"], f["rms"])
    for width in sorted({r["width"] for r in points}):
      rows = sorted((r for r in points if r["width"] == width), key=lambda r: r["ratio"])
      line = ax.plot(ps, fit.predict(rows[0]["n_params"], ps), lw=1)[0]
      fitted = [r for r in rows if abs(r["ratio"] - analysis["heldout_ratio"]) > 1e-9]
      held = [r for r in rows if abs(r["ratio"] - analysis["heldout_ratio"]) <= 1e-9]
      ax.plot([r["ratio"] for r in fitted], [r[loss] for r in fitted], "o",
              color=line.get_color(), label=f"d={width}")
      ax.plot([r["ratio"] for r in held], [r[loss] for r in held], "*", ms=12,
              color=line.get_color())
    ax.axvline(analysis["p_star"], color="gray", ls="--", lw=1)
    ax.set_xlabel("agent share p")
    ax.set_ylabel(f"held-out {loss.replace('_', ' ')} (nats/token)")
    ax.legend(fontsize=8)
  fig.suptitle("L(N,p) = c + k exp(tp) + A/(N/N0)^alpha; stars: held-out ratio; dashed: p*")
  figures.save(fig, path, dpi=100)


def _stage_table(summary) -> list[dict[str, Any]]:
  return [{"stage": name, **{k.split("eval/", 1)[1]: v for k, v in m.items()
                              if k.startswith("eval/")}}
          for name, m in summary.get("eval", {}).items()]


def _plot_stages(rows, path: str) -> None:
  names = [r["stage"] for r in rows]
  fig, ax = figures.pyplot().subplots(figsize=(6, 3.5))
  x = np.arange(len(rows))
  ax.bar(x - 0.2, [r.get("call_accuracy", np.nan) for r in rows], 0.4, label="call (docs-only)")
  ax.bar(x + 0.2, [r.get("name_accuracy", np.nan) for r in rows], 0.4, label="name (docs-only)")
  ax.set_xticks(x, names, rotation=20, fontsize=8)
  ax.set_ylabel("held-out accuracy")
  ax.legend(fontsize=8)
  figures.save(fig, path, dpi=100)


def _fmt(v) -> str:
  return f"{v:.4f}" if isinstance(v, float) else str(v)


@REPORTS.register("agent_pretraining")
def agent_pretraining_report(workdir: str) -> dict[str, Any]:
  """Writes report.md, results.json and the plots (module docstring); returns the results."""
  results: dict[str, Any] = {}
  lines = ["# Hephaestus agent pretraining (seed S8, arXiv 2502.06589)", ""]
  grid_path = os.path.join(workdir, "grid.json")
  if os.path.exists(grid_path):
    with open(grid_path) as f:
      grid = json.load(f)
    points = grid["points"]
    analysis = analyse_grid(points, grid["mixing"])
    results.update(points=points, **analysis)
    lines += ["## Mixing grid (held-out loss, nats/token)", "",
              "| p | width | N (non-emb.) | agent loss | general loss | wall s |", "|" + "---|" * 6]
    lines += [f"| {r['ratio']:g} | {r['width']} | {r['n_params']} | {r['agent_loss']:.4f} | "
              f"{r['general_loss']:.4f} | {r['wall_s']:.0f} |" for r in points]
    lines += ["", f"## Law fit (ratios >= {analysis['min_fit_ratio']:g} but the held-out one)", "",
              "| loss | " + " | ".join(mixing_law.PARAM_NAMES) + " | rms |", "|" + "---|" * 7]
    for loss, f in analysis["fits"].items():
      lines.append(f"| {loss} | " + " | ".join(f"{f[k]:.4g}" for k in mixing_law.PARAM_NAMES)
                   + f" | {f['rms']:.4f} |")
    lines += ["", f"## Held-out ratio p = {analysis['heldout_ratio']:g}: measured vs predicted",
              "", "| width | agent | predicted | rel. err | general | predicted | rel. err |",
              "|" + "---|" * 7]
    for r in analysis["heldout"]:
      lines.append(f"| {r['width']} | {r['agent_loss']:.4f} | {r['agent_loss_predicted']:.4f} | "
                   f"{r['agent_loss_rel_error']:.2%} | {r['general_loss']:.4f} | "
                   f"{r['general_loss_predicted']:.4f} | {r['general_loss_rel_error']:.2%} |")
    lines += ["", f"Largest relative error at the held-out ratio: "
              f"{analysis['max_heldout_rel_error']:.2%} (goal: < 5%).", "",
              f"p* at width {analysis['target_width']}: {analysis['p_star']:.3f}", "",
              "![mixing law](mixing_law.png)", ""]
    _plot_grid(points, analysis, os.path.join(workdir, "mixing_law.png"))
  for candidate in (os.path.join(workdir, "summary.json"),
                    os.path.join(workdir, "stages", "summary.json")):
    if os.path.exists(candidate):
      with open(candidate) as f:
        rows = _stage_table(json.load(f))
      if rows:
        results["stages"] = rows
        keys = [k for k in ("agent_loss", "general_loss", "call_accuracy", "schema_accuracy",
                            "name_accuracy",
                            "call_accuracy_seen") if any(k in r for r in rows)]
        lines += ["## Stages (held-out, after each stage)", "",
                  "| stage | " + " | ".join(keys) + " |", "|" + "---|" * (len(keys) + 1)]
        lines += ["| " + " | ".join([r["stage"]] + [_fmt(r.get(k, "")) for k in keys]) + " |"
                  for r in rows]
        lines += ["", "![stages](stages.png)", ""]
        _plot_stages(rows, os.path.join(workdir, "stages.png"))
      break
  with open(os.path.join(workdir, "report.md"), "w") as f:
    f.write("\n".join(lines) + "\n")
  with open(os.path.join(workdir, "results.json"), "w") as f:
    json.dump(results, f, indent=1)
  return results
