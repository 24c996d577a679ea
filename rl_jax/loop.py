"""The one training loop: runs the config's stages in order and owns what they share.

    summary = run(exp, workdir)

For every stage of `rl_jax.stages.plan(exp)` the loop gives the stage kind (`STAGES`) its start
params and a `StageIO`: one checkpoint directory per stage (`<workdir>/checkpoints/<stage>/`,
saved every `checkpoint.every` steps and at the stage's end), one metrics writer for the run
(`metrics.jsonl` records carry the stage name; metrics are fetched one step late), the eval hook
(every `eval.every` RL steps and at each stage's end), and one progress bar per stage.

Resume: a rerun of the same command restores every finished stage from its final checkpoint
(without training it again) and resumes the first unfinished one from its newest restorable
checkpoint; metrics.jsonl is cut back to the records that checkpoint had seen. A kill at any
stage resumes in that stage. On any exit (an error included) the in-flight checkpoint save is
finished before the error propagates, so the last checkpoint survives the stop.

Every process of a multi-process run executes this loop on the same values (SPMD); only
process 0 writes files.
"""
from __future__ import annotations

import json
import os
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import tqdm

from rl_jax import checkpoint as ckpt_lib
from rl_jax import experiment as experiment_lib
from rl_jax import metrics as metrics_lib
from rl_jax import stages as stages_lib
from rl_jax.eval.hooks import REPORTS
from rl_jax.stages import rl as rl_stage
from rl_jax.stages.context import RunContext, build_context, stage_id


class _Run:
  """State the stages of one run share: summary, the metrics writer, the checkpoint options."""

  def __init__(self, ctx: RunContext):
    self.ctx = ctx
    self.summary: dict[str, Any] = {"eval": {}}
    self.writer: metrics_lib.MetricWriter | None = None
    self.use_ckpt = ctx.exp.checkpoint.every > 0
    # Records of metrics.jsonl when the current stage started (what a resume of it cuts to; a
    # run without checkpoints starts over, and so do its metrics).
    self.records_at_start: int = 0
    self.reward_trace: dict[str, list[float]] = {}

  def ensure_writer(self, keep_records: int) -> metrics_lib.MetricWriter:
    if self.writer is None:
      self.writer = metrics_lib.MetricWriter(self.ctx.workdir, enabled=self.ctx.is_chief,
                                             keep_records=keep_records)
    return self.writer


class StageIO:
  """What the loop gives a stage kind: restore / save / record / evaluate / progress."""

  def __init__(self, run: _Run, spec: stages_lib.StageSpec):
    self.run, self.spec, self.ctx = run, spec, run.ctx
    c = self.ctx.exp.checkpoint
    self.ckpt = ckpt_lib.Checkpointer(ckpt_lib.CheckpointCfg(
        directory=os.path.join(os.path.abspath(self.ctx.workdir), "checkpoints", spec.name),
        save_every=max(c.every, 1), keep=c.keep, async_save=c.async_save,
        enabled=run.use_ckpt))
    self.done_before = False

  def restore(self, template: Any):
    """(step, saved, host) of the stage's newest restorable checkpoint, or None."""
    restored = self.ckpt.restore_latest(ckpt_lib.abstract_of(template)) if self.run.use_ckpt \
        else None
    if restored is None:
      self.run.ensure_writer(self.run.records_at_start)
      return None
    step, saved, host = restored
    self.run.summary = dict(host["summary"])
    self.done_before = bool(host.get("done"))
    if self.done_before:
      # Not the writer yet: a later stage's checkpoint may have seen more records.
      self.run.records_at_start = host["metrics_records"]
    else:
      self.run.ensure_writer(host["metrics_records"])
    self.ctx.log(f"[{self.spec.name}] " + ("finished earlier: restored its final checkpoint"
                                           if self.done_before else
                                           f"resumed from its checkpoint at step {step}"))
    return step, saved, host

  def steps(self, start: int, total: int):
    return tqdm.trange(start, total, desc=self.spec.name, initial=start, total=total,
                       disable=not (self.ctx.is_chief and self.ctx.show_progress),
                       mininterval=max(1, self.ctx.exp.log_every))

  def record(self, done, prefix: str | None) -> None:
    """Writes a (step, host metrics) pair from `LateFetcher` (None: nothing to write)."""
    if not done:
      return
    step, host = done
    metrics_lib.check_finite(host, step, stage=self.spec.name)
    if prefix:
      host = {f"{prefix}/{k.split('/')[-1]}": v for k, v in host.items()}
    if "correct/mean" in host:
      self.run.reward_trace.setdefault(self.spec.name, []).append(host["correct/mean"])
    self.run.ensure_writer(self.run.records_at_start).write(step, host, stage=self.spec.name)

  def should_save(self, step: int, total: int) -> bool:
    return self.run.use_ckpt and (self.ckpt.should_save(step) or step == total)

  def save(self, step: int, saved: Any, host: dict | None = None, *, final: bool) -> None:
    """Saves (the arrays are on host when this returns); call after flushing the metrics."""
    records = self.run.ensure_writer(self.run.records_at_start).num_records
    state = {"summary": self.run.summary, "metrics_records": records,
             "done": final, **(host or {})}
    self.ckpt.save(step, saved, state, force=True)

  def evaluate(self, params, step: int, total: int) -> dict[str, float]:
    """The eval hook's metrics every `eval.every` RL steps (not at the last: the stage end
    evaluates)."""
    every = self.ctx.exp.eval.every
    if not every or step % every or step >= total:
      return {}
    metrics, _ = self.ctx.evaluator(params, eval_key(self.ctx, self.spec.name, step),
                                    stage=self.spec.name, kind=self.spec.kind, step=step,
                                    final=False)
    return metrics

  def close(self) -> None:
    """Finishes the in-flight save (so an error never leaves only a temporary directory)."""
    try:
      self.ckpt.wait()
    finally:
      self.ckpt.close()

  def resume_note(self) -> str:
    """What a rerun of the same command resumes from, for the message of a failed run."""
    if not self.run.use_ckpt:
      return ("checkpointing is off (checkpoint.every=0): a rerun starts over; set "
              "--config.checkpoint.every=N to keep progress")
    steps = self.ckpt.all_steps()  # committed or in flight: call after `ckpt.wait()`
    if not steps:
      return (f"stage {self.spec.name!r} saved no checkpoint yet: a rerun of the same command "
              "restarts it (finished stages are restored)")
    return (f"last checkpoint of stage {self.spec.name!r}: step {steps[-1]} in "
            f"{self.ckpt.directory}; a rerun of the same command resumes from it")


def eval_key(ctx: RunContext, stage: str, step: int) -> jax.Array:
  return jax.random.fold_in(jax.random.fold_in(ctx.key, stage_id("eval:" + stage)), step)


def effective_config(exp: experiment_lib.Experiment, specs) -> dict[str, Any]:
  """The effective config (preset placeholders resolved) and the stage plan, as JSON values."""
  resolved = experiment_lib.to_json_dict(exp)
  resolved["rl"] = experiment_lib.to_json_dict(rl_stage.resolve(exp.rl, exp.max_new_tokens))
  resolved["stage_plan"] = [
      {"name": s.name, "kind": s.kind, "start_from": s.start_from or "initial params",
       "overrides": experiment_lib.to_json_dict(s.overrides),
       "section": experiment_lib.to_json_dict(
           rl_stage.resolve(s.section, exp.max_new_tokens) if s.kind == "rl" else s.section)}
      for s in specs]
  return resolved


def write_config(ctx: RunContext, specs) -> None:
  """config.json in the workdir: `effective_config`."""
  with open(os.path.join(ctx.workdir, "config.json"), "w", encoding="utf-8") as f:
    json.dump(effective_config(ctx.exp, specs), f, indent=1)


def _stage_end_eval(run: _Run, spec, params) -> None:
  ctx = run.ctx
  metrics, records = ctx.evaluator(params, eval_key(ctx, spec.name, spec.section.steps),
                                   stage=spec.name, kind=spec.kind, step=spec.section.steps,
                                   final=True)
  run.summary["eval"][spec.name] = metrics
  held_out = {k: v for k, v in metrics.items() if k.startswith("eval/")}
  if run.writer is not None:
    # TensorBoard only. A stage restored as finished (no writer yet in this process) keeps the
    # point its first run wrote: opening a writer here would cut later stages' records.
    run.writer.write_tensorboard(spec.section.steps, held_out, stage=spec.name)
  ctx.log(f"[{spec.name}] held-out " + ", ".join(f"{k} {v:.3f}" for k, v in held_out.items()))
  if records is not None and ctx.is_chief:
    os.makedirs(os.path.join(ctx.workdir, "eval"), exist_ok=True)
    with open(os.path.join(ctx.workdir, "eval", f"{spec.name}.json"), "w",
              encoding="utf-8") as f:
      json.dump({"stage": spec.name, "overrides": experiment_lib.to_json_dict(spec.overrides),
                 "records": records}, f)


def run(exp: experiment_lib.Experiment, workdir: str, *, show_progress: bool = True
        ) -> dict[str, Any]:
  """Runs every stage of `exp`; returns the summary (also in workdir/summary.json) with
  `final_params` (the last stage's params, on the mesh) and `model_config` (their
  `ModelConfig`), which are not written to the file."""
  os.makedirs(workdir, exist_ok=True)
  ctx = build_context(exp, workdir, show_progress=show_progress)
  specs = stages_lib.plan(exp)
  if ctx.is_chief:
    write_config(ctx, specs)
  ctx.log(f"model: {ctx.model_cfg.num_params():,} params; stages: "
          f"{[s.name for s in specs] or 'none (every stage has 0 steps)'}")
  run_state = _Run(ctx)
  needed = {s.start_from for s in specs}
  params_of = {"": ctx.init_params}
  params = ctx.init_params
  for spec in specs:
    io = StageIO(run_state, spec)
    try:
      start = params_of[spec.start_from]
      if any(s.start_from == spec.start_from for s in specs[specs.index(spec) + 1:]):
        # A later stage starts from the same params: the steps donate their state's buffers.
        start = jax.tree.map(jnp.copy, start)
      params = stages_lib.STAGES.get(spec.kind)(ctx, spec, start, io)
      if exp.eval.at_stage_end and spec.name not in run_state.summary["eval"]:
        _stage_end_eval(run_state, spec, params)
    except Exception as e:
      try:
        io.ckpt.wait()  # first: the note names what the finished save left
      finally:
        e.add_note(io.resume_note())
      raise
    finally:
      io.close()
    if run_state.writer is not None:
      run_state.records_at_start = run_state.writer.num_records
    if spec.name in needed:
      params_of[spec.name] = params
  if run_state.writer is not None:
    run_state.writer.close()
  summary = _finish(run_state, specs)
  if exp.report and ctx.is_chief:
    report = dict(exp.report)
    REPORTS.get(report.pop("name"))(workdir, **report)
  summary["final_params"] = params
  summary["model_config"] = ctx.model_cfg
  return summary


def _finish(run: _Run, specs) -> dict[str, Any]:
  """Prints the held-out change across stages and the RL reward trend; writes summary.json."""
  ctx, summary = run.ctx, run.summary
  evals = [(s.name, summary["eval"][s.name].get("eval/accuracy")) for s in specs
           if s.name in summary["eval"]]
  evals = [(n, a) for n, a in evals if a is not None]
  for (prev, a), (name, b) in zip(evals, evals[1:]):
    ctx.log(f"held-out accuracy: after {prev} {a:.3f} -> after {name} {b:.3f} "
            f"({100 * (b - a):+.1f} points)")
  for name, trace in run.reward_trace.items():
    k = max(1, len(trace) // 5)
    ctx.log(f"[{name}] train reward (mean correct), first {k} steps: {np.mean(trace[:k]):.3f} "
            f"-> last {k} steps: {np.mean(trace[-k:]):.3f}")
  if ctx.is_chief:
    with open(os.path.join(ctx.workdir, "summary.json"), "w", encoding="utf-8") as f:
      json.dump(summary, f, indent=1)
  return dict(summary)
