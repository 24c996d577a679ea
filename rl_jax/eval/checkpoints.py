"""Models to evaluate: a Hugging Face Qwen3 folder or a checkpoint this project's loop wrote.

    model = load_model("runs/shop/checkpoints/sft")          # or an HF folder, or a step dir
    model.params, model.model_cfg, model.tokenizer, model.stop_ids

A loop checkpoint (`<workdir>/checkpoints/<stage>/[<step>]`, rl_jax/checkpoint.py) is read with
the run's own `<workdir>/config.json`: the config rebuilds the task (and so its tokenizer), the
model config and the stage's train-state layout, whose params are returned (the stage's newest
restorable step, or the named step). An HF folder holds config.json (model_type "qwen3") and
safetensors; its tokenizer is `tokenizer` (a bundled name or path) or the folder's
tokenizer.json.
"""
from __future__ import annotations

import dataclasses
import json
import os
import tempfile
from typing import Any

import jax
import jax.numpy as jnp

from rl_jax.tokenizers import Tokenizer, load_tokenizer


@dataclasses.dataclass
class LoadedModel:
  params: Any
  model_cfg: Any
  tokenizer: Tokenizer
  stop_ids: tuple[int, ...] = ()
  source: str = ""
  mesh: Any = None


def _run_workdir(path: str) -> tuple[str, str, int | None]:
  """(workdir, stage, step or None) of a path under <workdir>/checkpoints/."""
  parts = os.path.normpath(os.path.abspath(path)).split(os.sep)
  if "checkpoints" not in parts:
    raise ValueError(f"--checkpoint={path!r}: expected an HF Qwen3 folder (with config.json) or "
                     "a loop checkpoint <workdir>/checkpoints/<stage>[/<step>]")
  i = len(parts) - 1 - parts[::-1].index("checkpoints")
  rest = parts[i + 1:]
  if not rest or len(rest) > 2 or (len(rest) == 2 and not rest[1].isdigit()):
    raise ValueError(f"--checkpoint={path!r}: expected <workdir>/checkpoints/<stage>[/<step>]")
  return os.sep.join(parts[:i]) or os.sep, rest[0], int(rest[1]) if len(rest) == 2 else None


def load_loop_checkpoint(path: str) -> LoadedModel:
  from rl_jax import checkpoint as ckpt_lib  # pylint: disable=g-import-not-at-top
  from rl_jax import experiment, optim, sharding  # pylint: disable=g-import-not-at-top
  from rl_jax import stages as stages_lib  # pylint: disable=g-import-not-at-top
  from rl_jax.stages import rl as rl_stage  # pylint: disable=g-import-not-at-top
  from rl_jax.stages import supervised  # pylint: disable=g-import-not-at-top
  from rl_jax.stages.context import build_context  # pylint: disable=g-import-not-at-top
  from rl_jax.types import TrainState  # pylint: disable=g-import-not-at-top
  from rl_jax.update import init_train_state  # pylint: disable=g-import-not-at-top

  workdir, stage, step = _run_workdir(path)
  config_path = os.path.join(workdir, "config.json")
  if not os.path.exists(config_path):
    raise ValueError(f"--checkpoint={path!r}: {config_path} is missing (the loop writes the "
                     "run's config there; it is needed to rebuild the model and tokenizer)")
  with open(config_path, encoding="utf-8") as f:
    config = json.load(f)
  config.pop("stage_plan", None)
  config.update(config.pop("sections", None) or {})  # project sections are top-level keys
  exp = experiment.from_config_dict(config)
  specs = {s.name: s for s in stages_lib.plan(exp)}
  if stage not in specs:
    raise ValueError(f"--checkpoint={path!r}: stage {stage!r} is not in the run's plan "
                     f"{sorted(specs)}")
  spec = specs[stage]
  with tempfile.TemporaryDirectory() as scratch:
    ctx = build_context(exp, scratch, show_progress=False)
  params = ctx.init_params
  if spec.kind in ("sft", "pretrain"):
    cfg = supervised.optim_cfg(spec.section)
    state = TrainState(jnp.int32(0), params, optim.make_optimizer(cfg).init(params))
    template = {"train": sharding.shard_train_state(state, ctx.mesh)}
  elif spec.kind == "rl":
    setup = rl_stage.build_rl(ctx, spec.section, spec.name)
    state = sharding.shard_train_state(init_train_state(params, setup.update_cfg), ctx.mesh)
    use_ref = setup.update_cfg.loss.use_kl_loss
    template = {"train": state, "ref_params": jax.tree.map(jnp.copy, params) if use_ref else None}
  else:
    raise ValueError(f"--checkpoint={path!r}: stage kind {spec.kind!r} is not evaluable here")
  abstract = ckpt_lib.abstract_of(template)
  stage_dir = os.path.join(workdir, "checkpoints", stage)
  if step is not None:
    saved, _ = ckpt_lib.restore_dir(os.path.join(stage_dir, str(step)), abstract)
  else:
    with ckpt_lib.Checkpointer(ckpt_lib.CheckpointCfg(directory=stage_dir)) as ckpt:
      restored = ckpt.restore_latest(abstract)
    if restored is None:
      raise ValueError(f"--checkpoint={path!r}: no checkpoint steps in {stage_dir}")
    saved = restored[1]
  return LoadedModel(saved["train"].params, ctx.model_cfg, ctx.tokenizer,
                     tuple(ctx.task.stop_ids), f"{workdir} stage {stage}", ctx.mesh)


def restrict_vocab(cfg, params, vocab_size: int):
  """The model with its embedding and output rows cut to the tokenizer's `vocab_size` ids.

  Checkpoints pad the vocabulary (Qwen3: 151,936 rows for 151,669 pieces); a row without a piece
  could still be sampled and would not decode. Cutting the rows leaves every logit of a real
  piece unchanged and renormalises the softmax over the pieces (the padded rows are never
  trained, so their probability is negligible in a trained model).
  """
  if vocab_size >= cfg.vocab_size:
    return cfg, params
  params = dict(params)
  params["embed"] = dict(params["embed"], embedding=params["embed"]["embedding"][:vocab_size])
  if "lm_head" in params:
    params["lm_head"] = dict(params["lm_head"],
                             kernel=params["lm_head"]["kernel"][:, :vocab_size])
  return cfg.replace(vocab_size=vocab_size), params


def load_model(checkpoint: str, tokenizer: str = "") -> LoadedModel:
  """An HF Qwen3 folder (or bundled name) or a loop checkpoint (module docstring)."""
  from rl_jax.models import weights  # pylint: disable=g-import-not-at-top
  folder = weights.resolve_checkpoint(checkpoint)
  if os.path.exists(os.path.join(folder, "config.json")):
    cfg, params = weights.load_hf_checkpoint(folder)
    if tokenizer:
      tok = load_tokenizer(tokenizer)
    elif os.path.exists(os.path.join(folder, "tokenizer.json")):
      tok = load_tokenizer(folder)
    else:
      raise ValueError(f"--checkpoint={checkpoint!r} has no tokenizer.json; pass --tokenizer "
                       "(a bundled name or a tokenizer path)")
    if tok.vocab_size > cfg.vocab_size:
      raise ValueError(f"tokenizer has {tok.vocab_size} pieces but the checkpoint's vocab_size "
                       f"is {cfg.vocab_size}")
    cfg, params = restrict_vocab(cfg, params, tok.vocab_size)
    return LoadedModel(params, cfg, tok, (), folder)
  if tokenizer:
    raise ValueError("--tokenizer applies to HF checkpoints; a loop checkpoint uses its run's")
  return load_loop_checkpoint(checkpoint)
