"""The shop world's per-skill report: evaluator and report "shop_world" (docs/eval.md).

Evaluator (`config.eval.evaluator = {"name": "shop_world", ...}`): the held-out items become a
`rl_jax.eval.suites.Suite` (one `BenchTask` per mini-task, scored with Shopping MMLU's parsing
and metric rules); every example is decoded greedily through the training `generate`, with the
benchmark's budgets (multiple choice `mc_max_new_tokens` = 1 token, the other types the run's
`max_new_tokens`). Metrics: `eval/skill/<skill>`, `shop/task/<task>`, `eval/overall` (mean of
the skills) and `eval/accuracy` (= overall, for the loop's before/after line). Records (written
to <workdir>/eval/<stage>.json): the suite report of the stage's model; at the first stage end
also the report of the run's initial (untrained) params, under "untrained".

Report (`config.report = {"name": "shop_world"}`): report.md (per skill and per task, untrained
and after every stage), results.json and skills.png in the workdir.
"""
from __future__ import annotations

import json
import os
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from rl_jax.eval import figures, run_suite, suites
from rl_jax.eval.hooks import EVALUATORS, REPORTS


def suite_of_items(items, *, mc_max_new_tokens: int, max_new_tokens: int,
                   max_per_task: int = 0) -> suites.Suite:
  by_task: dict[str, list] = {}
  for it in items:
    by_task.setdefault(it.task, []).append(it)
  tasks = {}
  for name, its in sorted(by_task.items()):
    its = its[:max_per_task or None]
    first = its[0]
    tasks[name] = suites.BenchTask(
        name, first.skill, first.task_type, first.metric,
        tuple(suites.Example(it.prompt, it.truth, f"shop world {name} #{i}")
              for i, it in enumerate(its)),
        mc_max_new_tokens if first.task_type == "multiple_choice" else max_new_tokens)
  return suites.Suite("shop_world", tasks)


def _metrics(report: dict[str, Any], prefix: str = "eval") -> dict[str, float]:
  """eval/skill/<s>, eval/overall (printed by the loop) and shop/task/<t> (logged only)."""
  out = {f"{prefix}/skill/{k}": v for k, v in report["skills"].items()}
  out[f"{prefix}/overall"] = report["overall"]
  task_prefix = prefix.replace("eval", "shop", 1)
  out.update({f"{task_prefix}/task/{k}": v["score"] for k, v in report["tasks"].items()})
  return out


@EVALUATORS.register("shop_world")
def shop_world_evaluator(*, ctx, mc_max_new_tokens: int = 1, max_per_task: int = 0,
                         batch_size: int = 0, report_untrained: bool = True):
  """mc_max_new_tokens: multiple-choice budget (the benchmark's skill-wise 1 token);
  max_per_task: first N held-out items per task (0 = all); batch_size: prompts per generate
  call (0 = eval.batch_size); report_untrained: also report the initial params at the first
  stage end (the before-training row of the study)."""
  suite = suite_of_items(ctx.task.eval, mc_max_new_tokens=mc_max_new_tokens,
                         max_new_tokens=ctx.exp.max_new_tokens, max_per_task=max_per_task)
  embedders = suites.default_embedders("ngram")
  state = {"untrained_done": not report_untrained}
  # A copy: the first stage donates (frees) the initial params' buffers.
  initial = jax.tree.map(jnp.copy, ctx.init_params) if report_untrained else None

  def report_of(params, key):
    gens = run_suite.suite_generations(
        params, suite, tokenizer=ctx.tokenizer, model_cfg=ctx.model_cfg, key=key,
        batch_size=batch_size or ctx.exp.eval.batch_size, stop_ids=tuple(ctx.task.stop_ids),
        mesh=ctx.mesh, prompt_len=ctx.exp.prompt_len)
    report = suites.suite_report(suite, suites.score_suite(suite, gens, embedders))
    report["examples"] = {k: {"prompt": suite.tasks[k].examples[0].prompt, "generation": v[0]}
                          for k, v in gens.items()}
    return report

  def evaluate(params, key, *, stage: str = "", kind: str = "", step: int = 0,
               final: bool = False):
    report = report_of(params, key)
    metrics = _metrics(report)
    metrics["eval/accuracy"] = report["overall"]
    records = None
    if final:
      records = {"report": report}
      if not state["untrained_done"]:
        state["untrained_done"] = True
        records["untrained"] = report_of(initial, key)
        metrics.update(_metrics(records["untrained"], "eval/untrained"))
    return metrics, records

  return evaluate


def collect(workdir: str) -> dict[str, dict[str, Any]]:
  """model name ("untrained", then each stage) -> suite report, from <workdir>/eval/*.json."""
  folder = os.path.join(workdir, "eval")
  if not os.path.isdir(folder):
    raise ValueError(f"shop_world report: {folder} is missing (eval.at_stage_end must be on)")
  out: dict[str, dict[str, Any]] = {}
  plan = []
  config_path = os.path.join(workdir, "config.json")
  if os.path.exists(config_path):
    with open(config_path, encoding="utf-8") as f:
      plan = [s["name"] for s in json.load(f).get("stage_plan", [])]
  names = sorted((f[:-5] for f in os.listdir(folder) if f.endswith(".json")),
                 key=lambda n: plan.index(n) if n in plan else len(plan))
  for name in names:
    with open(os.path.join(folder, name + ".json"), encoding="utf-8") as f:
      records = json.load(f)["records"]
    if "untrained" in records:
      out["untrained"] = records["untrained"]
    out[name] = records["report"]
  if not out:
    raise ValueError(f"shop_world report: no stage reports in {folder}")
  return out


def markdown(reports: dict[str, dict[str, Any]]) -> str:
  models = list(reports)
  first = reports[models[0]]
  lines = ["| skill | " + " | ".join(models) + " |", "|---" * (len(models) + 1) + "|"]
  for skill in first["skills"]:
    lines.append(f"| {skill} | " + " | ".join(f"{reports[m]['skills'][skill]:.3f}"
                                               for m in models) + " |")
  lines.append("| **overall** | " + " | ".join(f"**{reports[m]['overall']:.3f}**"
                                                for m in models) + " |")
  lines += ["", "| task | skill | type | metric | " + " | ".join(models) + " |",
            "|---" * (len(models) + 4) + "|"]
  for task, t in sorted(first["tasks"].items(), key=lambda kv: (kv[1]["skill"], kv[0])):
    lines.append(f"| {task} | {t['skill']} | {t['type']} | {t['metric']} | " + " | ".join(
        f"{reports[m]['tasks'][task]['score']:.3f}" for m in models) + " |")
  return "\n".join(lines) + "\n"


@REPORTS.register("shop_world")
def shop_world_report(workdir: str, plot: bool = True) -> dict[str, Any]:
  """plot: write skills.png (per-skill scores of every model, matplotlib Agg)."""
  reports = collect(workdir)
  with open(os.path.join(workdir, "report.md"), "w", encoding="utf-8") as f:
    f.write("# Shop world: per-skill scores (Shopping MMLU metrics)\n\n" + markdown(reports))
  results = {m: {"skills": r["skills"], "overall": r["overall"],
                 "tasks": {k: v["score"] for k, v in r["tasks"].items()}}
             for m, r in reports.items()}
  with open(os.path.join(workdir, "results.json"), "w", encoding="utf-8") as f:
    json.dump(results, f, indent=1)
  if plot:
    skills = list(next(iter(reports.values()))["skills"])
    fig, ax = figures.pyplot().subplots(figsize=(7, 3.5))
    width = 0.8 / len(reports)
    for i, (m, r) in enumerate(reports.items()):
      ax.bar(np.arange(len(skills)) + i * width, [r["skills"][s] for s in skills], width,
             label=m)
    ax.set_xticks(np.arange(len(skills)) + 0.4 - width / 2, skills)
    ax.set_ylabel("skill score")
    ax.set_ylim(0, 1)
    ax.legend()
    figures.save(fig, os.path.join(workdir, "skills.png"), dpi=100)
  return results
