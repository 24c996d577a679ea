"""The loop's eval hook and end-of-run reports, chosen by config.

    evaluator = build_evaluator(config.eval, ctx)
    metrics, records = evaluator(params, key, stage=name, kind=kind, step=s, final=True)

The loop calls the evaluator every `eval.every` RL steps (metrics merged into that step's
record) and at the end of every stage that trained (`final=True`: metrics in summary.json and
printed; `records`, if not None, written to `<workdir>/eval/<stage>.json` for reports).

Registered evaluators:
  "task": greedy accuracy on the task's held-out problems through the training rollout's
          decoding (`rl_jax.eval.generation`); with num_samples > 1 and temperature > 0 also
          mean@n, pass@k and maj@n. Tool tasks (rl.rollout.name = "tool") are evaluated as
          greedy tool episodes (accuracy and calls per episode).
A report (`REPORTS`, config `report`) runs once after the last stage: `report(workdir, **kwargs)`.
A report module that also runs as a script (`python -m rl_jax.projects.<name>.report W ...`)
registers its report with `@register_report(name, __name__)`, and its script part can rerun it
on finished workdirs with `report_main`.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Sequence, TypeVar

import numpy as np

from rl_jax.eval import batches, generation
from rl_jax.registry import Registry
from rl_jax.types import SampleKnobs

EVALUATORS: Registry = Registry("evaluator")
REPORTS: Registry = Registry("report")

ReportFn = TypeVar("ReportFn", bound=Callable[..., Any])


def register_report(name: str, module_name: str) -> Callable[[ReportFn], ReportFn]:
  """Decorator: `@register_report("ecd", __name__)` registers a project's report as `name`,
  except in the copy of its module that runs as a script (module_name "__main__").

  `python -m rl_jax.projects.ecd.report` imports the package first, which imports the module
  and registers its function, then runs the same file again as __main__: registering that
  second copy's function under the same name would be refused (`Registry.register`).
  """
  def decorator(report: ReportFn) -> ReportFn:
    if module_name != "__main__":
      REPORTS.register(name)(report)
    return report
  return decorator


def report_main(name: str, argv: Sequence[str]) -> None:
  """`python -m <report module> [W ...]`: the registered report `name`, with its default
  kwargs, on each workdir W (none: the current directory), e.g. to rewrite the tables and plots
  of finished runs. The registered copy runs, not the script's (`register_report`)."""
  for workdir in list(argv) or ["."]:
    REPORTS.get(name)(workdir)


def build_evaluator(eval_section, ctx) -> Callable[..., tuple[dict[str, float], Any]]:
  spec = dict(eval_section.evaluator)
  return EVALUATORS.build(spec, "eval.evaluator", ctx=ctx)


def heldout_problems(ctx, max_problems: int, evaluator: str, what: str = "problems"
                     ) -> tuple[list[Any], int]:
  """An evaluator's problems, the first `max_problems` (0: all) of the task's held-out ones, and
  its batch size (eval.batch_size, at most their number); none is an error naming the
  evaluator and the task (`what`: the problems' name in it)."""
  problems = list(ctx.task.eval)[:max_problems or None]
  if not problems:
    raise ValueError(f"eval.evaluator {evaluator!r}: task {ctx.task.name!r} has no held-out "
                     f"{what}")
  return problems, min(ctx.exp.eval.batch_size, len(problems))


def greedy_records_evaluator(rollout, problems: Sequence[Any], batch_size: int,
                             records_of: Callable[[list[Any], Any], list[dict]],
                             summarize: Callable[[list[dict]], dict[str, float]]
                             ) -> Callable[..., tuple[dict[str, float], Any]]:
  """The eval hook of an evaluator that keeps one record per held-out problem: greedy rollouts
  of `problems` in padded chunks (`batches.rollout_chunks`), `records_of(chunk, out)` the
  chunk's records, metrics `summarize(records)`; at a stage's end also {stage: records} (written
  to eval/<stage>.json for the report)."""
  greedy = SampleKnobs.create(0.0)

  def evaluate(params, key, *, stage: str = "", kind: str = "", step: int = 0,
               final: bool = False):
    records = []
    for chunk, _, out in batches.rollout_chunks(rollout, params, problems, key, greedy,
                                                batch_size):
      records += records_of(chunk, out)
    return summarize(records), ({stage: records} if final else None)

  return evaluate


@EVALUATORS.register("task")
def task_evaluator(*, ctx, num_samples: int = 1, temperature: float = 0.0, top_p: float = 1.0,
                   ks: tuple[int, ...] = (1,), max_problems: int = 0):
  """Held-out evaluation of the task (module docstring); max_problems > 0 keeps the first N."""
  problems, batch_size = heldout_problems(ctx, max_problems, "task")
  if ctx.exp.rl.rollout.name == "tool":
    return _tool_evaluator(ctx, problems, batch_size)
  hook = generation.make_task_evaluator(
      ctx.task, tokenizer=ctx.tokenizer, model_cfg=ctx.model_cfg, prompt_len=ctx.exp.prompt_len,
      max_new_tokens=ctx.exp.max_new_tokens, batch_size=batch_size, num_samples=num_samples,
      temperature=temperature, top_p=top_p, ks=tuple(ks), mesh=ctx.mesh, problems=problems)

  def evaluate(params, key, *, stage: str = "", kind: str = "", step: int = 0,
               final: bool = False):
    return hook(params, key), None

  return evaluate


def _tool_evaluator(ctx, problems, batch_size: int):
  """Greedy tool episodes, one per problem, in fixed-size chunks (the last padded)."""
  # Imported here: the rollout and scorer modules import the stage context.
  from rl_jax.rewards.scorers import SCORERS  # pylint: disable=g-import-not-at-top
  from rl_jax.sampling.rollouts import ROLLOUTS  # pylint: disable=g-import-not-at-top
  section = dataclasses.replace(ctx.exp.rl, group_size=1, rollout=dataclasses.replace(
      ctx.exp.rl.rollout, native_rows=0))
  rollout = ROLLOUTS.get("tool")(ctx=ctx, section=section)
  scorer_spec = dict(ctx.exp.rl.scorer)
  scorer = SCORERS.build(scorer_spec, "rl.scorer", ctx=ctx, section=section)
  greedy = SampleKnobs.create(0.0)

  def evaluate(params, key, *, stage: str = "", kind: str = "", step: int = 0,
               final: bool = False):
    rewards, calls, lengths = [], [], []
    for chunk, padded, out in batches.rollout_chunks(rollout, params, problems, key, greedy,
                                                     batch_size):
      scores = scorer(padded, out)
      n = len(chunk)
      rewards.append(scores.reward_B[:n])
      calls.append(scores.extras.get("tool/n_calls", np.zeros(len(padded)))[:n])
      lengths.append(np.asarray(out.rollout.response_len_B[:n], np.float32))
    return {"eval/accuracy": float(np.concatenate(rewards).mean()),
            "eval/tool_calls_mean": float(np.concatenate(calls).mean()),
            "eval/len_mean": float(np.concatenate(lengths).mean())}, None

  return evaluate
