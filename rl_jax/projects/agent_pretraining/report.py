"""Report "agent_pretraining": the mixing-study table and law fit, and the stage comparison.

Over a study directory (rl_jax.projects.agent_pretraining.study) or a single run's workdir:

  grid.json (if present)   per point (mean +- std over its seeds): agent / general held-out
                           loss; the law L(N, p) = c + k exp(t p) + A / (N/N0)^alpha fitted to
                           the means of every ratio but the held-out one, its prediction there
                           (relative error per width), and p* at the target width;
  summary.json of the run  (the workdir's own, or <workdir>/stages/): per stage held-out losses
                           and docs-only call accuracy (stage II arm vs stage I alone).

Writes report.md, results.json, mixing_law.png (loss vs p per width, fit curves, held-out points)
and stages.png (call accuracy per stage) into the workdir.

`python -m rl_jax.projects.agent_pretraining.report W0 W1 ...` (several runs, one per seed) then
prints `seeds`: docs-only call accuracy per stage and seed, and the paired per-call comparisons
of `COMPARE` pooled over the seeds with a sign test.
"""
from __future__ import annotations

import json
import os
import sys
from typing import Any, Mapping, Sequence

import numpy as np

from rl_jax.eval import figures, paired, run_results
from rl_jax.eval.hooks import register_report, report_main
from rl_jax.projects.agent_pretraining import mixing_law

LOSSES = ("agent_loss", "general_loss")


def _get(m, key, default=None):
  return m.get(key, default) if isinstance(m, Mapping) else getattr(m, key, default)


def mean_over_seeds(points: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
  """One record per (ratio, width): the mean of each loss over the point's seeds, with its
  sample standard deviation (`<loss>_std`, 0 for one seed) and `n_seeds`; first-seen order."""
  groups: dict[tuple[float, int], list[Mapping[str, Any]]] = {}
  for r in points:
    groups.setdefault((float(r["ratio"]), int(r["width"])), []).append(r)
  out = []
  for (ratio, width), rows in groups.items():
    rec: dict[str, Any] = {"ratio": ratio, "width": width, "n_params": rows[0]["n_params"],
                           "n_seeds": len(rows),
                           "wall_s": float(np.mean([r.get("wall_s", np.nan) for r in rows]))}
    for loss in LOSSES:
      values = np.asarray([r[loss] for r in rows], float)
      rec[loss] = float(values.mean())
      rec[loss + "_std"] = float(values.std(ddof=1)) if len(values) > 1 else 0.0
    out.append(rec)
  return out


def fit_grid(points: Sequence[Mapping[str, Any]], mixing, law: str | None = None):
  """{loss: fitted law} on the seed means whose ratio is neither `mixing.heldout_ratio` nor
  below `mixing.min_fit_ratio`; `law` (default `mixing.law`): mixing_law.fit's kind."""
  held = float(_get(mixing, "heldout_ratio"))
  lowest = float(_get(mixing, "min_fit_ratio", 0.0))
  fit_pts = [r for r in mean_over_seeds(points)
             if abs(r["ratio"] - held) >= 1e-9 and r["ratio"] >= lowest]
  kind = law or _get(mixing, "law", "per_width")
  return {loss: mixing_law.fit(kind, [r["n_params"] for r in fit_pts],
                               [r["ratio"] for r in fit_pts], [r[loss] for r in fit_pts])
          for loss in LOSSES}


def analyse_grid(points: Sequence[Mapping[str, Any]], mixing, law: str | None = None,
                 fits=None) -> dict[str, Any]:
  """Averages the points over seeds (`mean_over_seeds`), fits the law (`fit_grid`, unless its
  `fits` are given), predicts the held-out means; p* at `target_width` (its N read from the
  grid's points)."""
  kind = law or _get(mixing, "law", "per_width")
  fits = fits or fit_grid(points, mixing, kind)
  points = mean_over_seeds(points)
  held = float(_get(mixing, "heldout_ratio"))
  out: dict[str, Any] = {"law": kind, "heldout_ratio": held,
                         "min_fit_ratio": float(_get(mixing, "min_fit_ratio", 0.0)),
                         "fits": {loss: fits[loss].as_dict() for loss in LOSSES}, "heldout": []}
  for r in points:
    if abs(r["ratio"] - held) < 1e-9:
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


def _plot_grid(points, fits, analysis, path: str) -> None:
  fig, axes = figures.pyplot().subplots(1, 2, figsize=(10, 4))
  ps = np.linspace(0, 1, 101)
  for ax, loss in zip(axes, LOSSES):
    fit = fits[loss]
    for width in sorted({r["width"] for r in points}):
      rows = sorted((r for r in points if r["width"] == width), key=lambda r: r["ratio"])
      line = ax.plot(ps, fit.predict(rows[0]["n_params"], ps), lw=1)[0]
      fitted = [r for r in rows if abs(r["ratio"] - analysis["heldout_ratio"]) > 1e-9]
      held = [r for r in rows if abs(r["ratio"] - analysis["heldout_ratio"]) <= 1e-9]
      ax.plot([r["ratio"] for r in fitted], [r[loss] for r in fitted], "o",
              color=line.get_color(), label=f"d={width}")
      ax.plot([r["ratio"] for r in held], [r[loss] for r in held], "*", ms=12,
              color=line.get_color())
    fitted_range = [r[loss] for r in points if r["ratio"] >= analysis["min_fit_ratio"]]
    if analysis["min_fit_ratio"] > 0 and fitted_range:  # unfitted p = 0 losses can be 10x higher
      lo, hi = min(fitted_range), max(fitted_range)
      ax.set_ylim(lo - 0.1 * (hi - lo), hi + 0.25 * (hi - lo))
      ax.set_title(f"p < {analysis['min_fit_ratio']:g}: not fitted, may be off the plot",
                   fontsize=8)
    ax.axvline(analysis["p_star"], color="gray", ls="--", lw=1)
    ax.set_xlabel("agent share p")
    ax.set_ylabel(f"held-out {loss.replace('_', ' ')} (nats/token)")
    ax.legend(fontsize=8)
  fig.suptitle(f"{LAW_TITLES[analysis['law']]}; stars: held-out ratio; dashed: p*")
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


LAWS = mixing_law.LAWS
LAW_TITLES = {"joint": "L(N,p) = c + k exp(tp) + A/(N/N0)^alpha",
              "per_width": "L_N(p) = c_N + k_N exp(t_N p), fitted per width"}


def _fit_table(analysis) -> list[str]:
  if analysis["law"] == "joint":
    lines = ["| loss | " + " | ".join(mixing_law.PARAM_NAMES) + " | rms |", "|" + "---|" * 7]
    return lines + [f"| {loss} | " + " | ".join(f"{f[k]:.4g}" for k in mixing_law.PARAM_NAMES)
                    + f" | {f['rms']:.4f} |" for loss, f in analysis["fits"].items()]
  lines = ["| loss | N | c | k | t |", "|" + "---|" * 5]
  return lines + [f"| {loss} | {n} | " + " | ".join(f"{v[k]:.4g}" for k in
                                                   mixing_law.MIXING_PARAM_NAMES) + " |"
                  for loss, f in analysis["fits"].items() for n, v in f["per_size"].items()]


def grid_report(grid: Mapping[str, Any], workdir: str) -> tuple[list[str], dict[str, Any]]:
  """The grid part of report.md and results.json (the configured law's analysis, both laws'
  held-out errors under "laws"), and mixing_law.png."""
  mixing = grid["mixing"]
  fits = {law: fit_grid(grid["points"], mixing, law) for law in LAWS}
  laws = {law: analyse_grid(grid["points"], mixing, law, fits[law]) for law in LAWS}
  analysis = laws[_get(mixing, "law", "per_width")]
  points = mean_over_seeds(grid["points"])
  results = dict(seed_points=grid["points"], points=points, laws=laws, **analysis)
  lines = ["## Mixing grid (held-out loss, nats/token; mean +- std over seeds)", "",
           "| p | width | N (non-emb.) | seeds | agent loss | general loss | wall s |",
           "|" + "---|" * 7]
  lines += [f"| {r['ratio']:g} | {r['width']} | {r['n_params']} | {r['n_seeds']} | "
            f"{r['agent_loss']:.4f} +- {r['agent_loss_std']:.4f} | "
            f"{r['general_loss']:.4f} +- {r['general_loss_std']:.4f} | {r['wall_s']:.0f} |"
            for r in points]
  lines += ["", f"## Law fit: {LAW_TITLES[analysis['law']]} (config mixing.law; ratios >= "
            f"{analysis['min_fit_ratio']:g} but the held-out one)", ""] + _fit_table(analysis)
  lines += ["", f"## Held-out ratio p = {analysis['heldout_ratio']:g}: measured vs predicted",
            "", "| width | agent | predicted | rel. err | general | predicted | rel. err |",
            "|" + "---|" * 7]
  for r in analysis["heldout"]:
    lines.append(f"| {r['width']} | {r['agent_loss']:.4f} | {r['agent_loss_predicted']:.4f} | "
                 f"{r['agent_loss_rel_error']:.2%} | {r['general_loss']:.4f} | "
                 f"{r['general_loss_predicted']:.4f} | {r['general_loss_rel_error']:.2%} |")
  lines += ["", f"Largest relative error at the held-out ratio: "
            f"{analysis['max_heldout_rel_error']:.2%} (goal: < 5%).", "",
            "Both laws at the held-out ratio (largest relative error; p* at width "
            f"{analysis['target_width']}):", "", "| law | largest error | p* |", "|---|---|---|"]
  lines += [f"| {LAW_TITLES[k]} | {a['max_heldout_rel_error']:.2%} | {a['p_star']:.3f} |"
            for k, a in laws.items()]
  lines += ["", f"p* at width {analysis['target_width']}: {analysis['p_star']:.3f}", "",
            "![mixing law](mixing_law.png)", ""]
  _plot_grid(points, fits[analysis["law"]], analysis, os.path.join(workdir, "mixing_law.png"))
  return lines, results


@register_report("agent_pretraining", __name__)
def agent_pretraining_report(workdir: str) -> dict[str, Any]:
  """Writes report.md, results.json and the plots (module docstring); returns the results."""
  results: dict[str, Any] = {}
  lines = ["# Hephaestus agent pretraining (seed S8, arXiv 2502.06589)", ""]
  grid_path = os.path.join(workdir, "grid.json")
  if os.path.exists(grid_path):
    with open(grid_path) as f:
      grid = json.load(f)
    grid_lines, grid_results = grid_report(grid, workdir)
    lines += grid_lines
    results.update(grid_results)
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


# (a, b) stage pairs `seeds` compares call by call where a run has both: stage II against stage
# I alone and against the compute-matched continuation of stage I (`pretrain_cont`: 150 more
# stage I steps), before and after SFT.
COMPARE = (("pretrain_seed", "pretrain"), ("pretrain_seed", "pretrain_cont"),
           ("pretrain_cont", "pretrain"), ("sft", "sft_stage1_only"), ("sft", "sft_cont"),
           ("sft_cont", "sft_stage1_only"))
CALL_SCORES = (("exact", "correct"), ("schema", "schema_correct"), ("name", "name_correct"))


def seeds(workdirs: Sequence[str]) -> dict[str, Any]:
  """Docs-only call accuracy (exact / schema / name) per stage and run, and for each pair (a, b)
  of `COMPARE` the calls a gets right and b does not (and the reverse), pooled over the runs
  (the pairs stay within a run: both stages answer the same held-out calls), with the two-sided
  sign test. Returns {"per_seed": {stage: {score: [acc per workdir]}}, "pairs": {"a vs b":
  {score: {"a", "b", "a_only", "b_only", "n", "p"}}}} and prints both as tables."""
  per_seed: dict[str, dict[str, list[float]]] = {}
  pairs: dict[str, dict[str, dict[str, Any]]] = {}
  runs = [{name: ev["records"] for name, ev in run_results.saved_evals(w).items()}
          for w in workdirs]
  stages = list(dict.fromkeys(stage for records in runs for stage in records))
  for stage in stages:  # NaN where a run has no such stage, so the columns stay aligned
    for score, key in CALL_SCORES:
      per_seed.setdefault(stage, {})[score] = [
          float(np.mean([r[key] for r in records[stage]])) if records.get(stage) else float("nan")
          for records in runs]
  for a, b in COMPARE:
    both = [(w, r[a], r[b]) for w, r in zip(workdirs, runs) if a in r and b in r]
    if not both:
      continue
    for workdir, ra, rb in both:
      if [x["prompt"] for x in ra] != [x["prompt"] for x in rb]:
        raise ValueError(f"{workdir}: stages {a!r} and {b!r} were scored on different calls")
    pairs[f"{a} vs {b}"] = {
        score: paired.sign_comparison([x[key] for _, ra, _ in both for x in ra],
                                      [y[key] for _, _, rb in both for y in rb])
        for score, key in CALL_SCORES}
  lines = ["Docs-only call accuracy (exact / schema / name) per run:", "",
           "| stage | " + " | ".join(os.path.basename(os.path.normpath(w)) for w in workdirs)
           + " |", "|" + "---|" * (len(workdirs) + 1)]
  for stage, scores in per_seed.items():
    cells = zip(*(scores[s] for s, _ in CALL_SCORES))
    lines.append(f"| {stage} | " + " | ".join("/".join(f"{v:.3f}" for v in c) for c in cells)
                 + " |")
  lines += ["", "| pair (a vs b) | score | right a / b | only a / only b | sign test p |",
            "|---|---|---|---|---|"]
  lines += [f"| {name} | {score} | {c['a']} / {c['b']} of {c['n']} | {c['a_only']} / "
            f"{c['b_only']} | {c['p']:.3g} |"
            for name, out in pairs.items() for score, c in out.items()]
  print("\n".join(lines))
  return {"per_seed": per_seed, "pairs": pairs}


if __name__ == "__main__":
  report_main("agent_pretraining", sys.argv[1:])
  if len(sys.argv) > 2:
    from rl_jax.projects.agent_pretraining import report as registered  # pylint: disable=g-import-not-at-top
    registered.seeds(sys.argv[1:])
