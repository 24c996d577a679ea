"""What every stage of a run shares: task, tokenizer, model, mesh, the run key, the eval hook.

    ctx = build_context(exp, workdir)

Keys and prompt draws derive from `exp.seed` only: stage `name` uses
`stage_key(name) = fold_in(key(seed), stage_id(name))` and numpy draws seeded with
`[seed, stage_id(name), step, ...]`, where `stage_id` is a CRC-32 of the name, so adding or
reordering stages does not change another stage's randomness, and a resumed run replays exactly
the draws an uninterrupted one makes.
"""
from __future__ import annotations

import dataclasses
import inspect
import os
import zlib
from typing import Any, Callable

import jax

from rl_jax import sharding, tasks
from rl_jax.experiment import Experiment
from rl_jax.models import qwen3, weights
from rl_jax.models.config import ModelConfig, get_model_config
from rl_jax.tokenizers import Tokenizer, load_tokenizer


def stage_id(name: str) -> int:
  """A stable 31-bit id of a stage name (CRC-32), for keys and numpy seeds."""
  return zlib.crc32(name.encode()) & 0x7FFFFFFF


@dataclasses.dataclass
class RunContext:
  """exp: the checked config. task / tokenizer / model_cfg: built once. init_params: the model's
  starting params on the mesh (random init or a loaded checkpoint). key: key(exp.seed).
  evaluator: the eval hook, `evaluator(params, key, stage=..., step=..., final=...)` ->
  (metrics, records or None) (`rl_jax.eval.hooks`). log: prints on the chief process."""
  exp: Experiment
  workdir: str
  task: tasks.TaskData
  tokenizer: Tokenizer
  model_cfg: ModelConfig
  init_params: Any
  mesh: Any
  key: jax.Array
  evaluator: Callable[..., Any] | None = None
  is_chief: bool = True
  show_progress: bool = True
  log: Callable[[str], None] = print

  def stage_key(self, name: str) -> jax.Array:
    return jax.random.fold_in(self.key, stage_id(name))

  @property
  def seed(self) -> int:
    return self.exp.seed


def build_model(exp: Experiment, vocab_size: int, key: jax.Array, min_len: int = 0):
  """(ModelConfig, params): a named config with the tokenizer's vocabulary, random or loaded.
  `min_len`: the longest sequence the run builds (max_seq_len is raised to it for random init)."""
  if exp.model.hf_checkpoint:
    # adapter_key: fresh LoRA adapters when model.overrides.lora_rank > 0 (rl_jax.models.lora).
    cfg, params = weights.load_hf_checkpoint(exp.model.hf_checkpoint, adapter_key=key,
                                             **dict(exp.model.overrides))
    if cfg.vocab_size < vocab_size:
      # Token ids the embedding has no row for would read garbage (NaN log-probs, not an error).
      raise ValueError(f"config model.hf_checkpoint={exp.model.hf_checkpoint!r} has "
                       f"vocab_size {cfg.vocab_size} but the tokenizer has {vocab_size} pieces; "
                       "use the checkpoint's own tokenizer (config tokenizer)")
    return cfg, params
  cfg = get_model_config(exp.model.name, vocab_size=vocab_size, **dict(exp.model.overrides))
  max_len = max(exp.prompt_len + exp.max_new_tokens, min_len)
  if cfg.max_seq_len < max_len and "max_seq_len" not in exp.model.overrides:
    cfg = cfg.replace(max_seq_len=max_len)
  return cfg, qwen3.init_params(cfg, key)


def longest_sequence(exp: Experiment) -> int:
  """The longest slot layout any RL stage of the config builds (tool rollouts are longer)."""
  r = exp.rl.rollout
  if r.name != "tool":
    return exp.prompt_len + exp.max_new_tokens
  return exp.prompt_len + (r.max_calls + 1) * exp.max_new_tokens + r.max_calls * r.tool_tokens


def build_context(exp: Experiment, workdir: str, *, show_progress: bool = True) -> RunContext:
  """Task, tokenizer, model, mesh and eval hook of a run (the public builder of bench/ and
  tests too)."""
  from rl_jax.eval import hooks  # pylint: disable=g-import-not-at-top
  is_chief = jax.process_index() == 0
  task_kwargs = dict(exp.task)
  factory = tasks.TASKS.get(task_kwargs.pop("name"))
  if "exp" in inspect.signature(factory).parameters:  # tasks that need the run's layout
    task_kwargs["exp"] = exp
  if "data_dir" in inspect.signature(factory).parameters:  # tasks that read the data layer
    task_kwargs["data_dir"] = exp.data_dir or os.path.join(workdir, "data")
  task = factory(seed=exp.seed, **task_kwargs)
  tokenizer = task.tokenizer if task.tokenizer is not None else load_tokenizer(exp.tokenizer)
  key = jax.random.key(exp.seed)
  model_cfg, params = build_model(exp, tokenizer.vocab_size,
                                  jax.random.fold_in(key, stage_id("init")),
                                  longest_sequence(exp))
  if longest_sequence(exp) > model_cfg.max_seq_len:
    raise ValueError(f"config: the rollout layout needs {longest_sequence(exp)} positions, more "
                     f"than the model's max_seq_len={model_cfg.max_seq_len}")
  mesh = sharding.make_mesh(sharding.MeshCfg(exp.mesh.data, exp.mesh.fsdp, exp.mesh.tensor))
  params = sharding.shard_tree(params, mesh, sharding.param_specs(params, mesh))
  log = (lambda msg: print(msg, flush=True)) if (is_chief and show_progress) else (lambda _: None)
  ctx = RunContext(exp=exp, workdir=workdir, task=task, tokenizer=tokenizer, model_cfg=model_cfg,
                   init_params=params, mesh=mesh, key=key, is_chief=is_chief,
                   show_progress=show_progress, log=log)
  ctx.evaluator = hooks.build_evaluator(exp.eval, ctx)
  return ctx
