"""The experiment config schema: ml-collections sections -> frozen dataclasses, strictly.

`configs/*.py` return a `ConfigDict`; `from_config_dict` converts each section to the dataclass
below and rejects any key that is not a field, naming it (`rl.eps_hgih`: unknown key; valid keys
are ...). Library functions then receive only their own section (DESIGN.md §1). Every field is
documented here: this file is the reference for what a config can set.
"""
from __future__ import annotations

import dataclasses
import inspect
from typing import Any, Mapping

from rl_jax.models.config import ModelConfig


@dataclasses.dataclass(frozen=True)
class ModelSection:
  """name: a `rl_jax.models.config.MODEL_CONFIGS` key ("tiny", "qwen3_4b", ...).
  hf_checkpoint: folder of a Hugging Face Qwen3 checkpoint (safetensors) to load; empty = random
    init (the tiny model then starts from scratch and is warm-started by SFT).
  overrides: ModelConfig fields to replace (e.g. {"num_layers": 2, "dtype": "bfloat16"}); the
    vocabulary size always comes from the tokenizer."""
  name: str = "tiny"
  hf_checkpoint: str = ""
  overrides: Mapping[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class SFTSection:
  """Supervised warm start on the task's worked solutions (0 steps skips it).
  steps: optimizer steps. batch_size: examples per step (cycled over the train set).
  learning_rate / warmup_steps / schedule: as `rl_jax.optim.OptimCfg` (decay ends at `steps`)."""
  steps: int = 0
  batch_size: int = 64
  learning_rate: float = 1e-3
  warmup_steps: int = 20
  schedule: str = "cosine"


@dataclasses.dataclass(frozen=True)
class RLSection:
  """Reinforcement learning after SFT.

  algorithm: loss preset: grpo | dr_grpo | dapo | bnpo | gspo | gspo_token
    (`rl_jax.algorithms.losses.preset`); the fields below set to None keep the preset's value.
  steps: rollout batches (RL iterations); 0 skips RL.
  prompts_per_step: prompts per rollout batch; group_size: samples per prompt (G).
  num_epochs / num_minibatches: optimizer passes over each rollout batch and mini-batches per
    pass (PPO-style; 1 x 1 is strictly on-policy and the ratio is 1).
  num_microbatches: gradient accumulation inside one optimizer step (exact for every mode).
  temperature / top_p / top_k: sampling knobs (traced).
  eps_low / eps_high / eps_c / beta: clip range, dual clip, KL coefficient (traced).
  kl_estimator: k1 | k2 | k3; use_kl_loss: add beta*KL to the loss (needs reference log-probs).
  agg: loss aggregation (token_mean | seq_mean_token_mean | seq_mean_token_sum |
    seq_mean_token_sum_norm); adv_normalize: std (GRPO) | none (Dr. GRPO).
  learning_rate / warmup_steps / schedule / weight_decay / max_grad_norm: the optimizer.
  dynamic_sampling: DAPO: keep only groups with non-constant rewards, drawing new prompts until
    prompts_per_step groups are kept (at most max_draws rollout batches per step).
  overlong_max_len / overlong_cache_len: DAPO soft overlong penalty in tokens (0 disables).
  drop_zero_advantage: 0 = off; k > 0 = rows whose advantage is 0 (groups with equal rewards)
    are left out of the update, the rest padded to a multiple of k rows: the same loss and
    gradient for less compute (`rl_jax.update.drop_zero_advantage_rows`; not with use_kl_loss).
  """
  algorithm: str = "grpo"
  steps: int = 0
  prompts_per_step: int = 64
  group_size: int = 8
  num_epochs: int = 1
  num_minibatches: int = 1
  num_microbatches: int = 1
  temperature: float = 1.0
  top_p: float = 1.0
  top_k: int = 0
  eps_low: float | None = None
  eps_high: float | None = None
  eps_c: float | None = None
  beta: float | None = None
  kl_estimator: str | None = None
  use_kl_loss: bool | None = None
  agg: str | None = None
  adv_normalize: str | None = None
  learning_rate: float = 2e-4
  warmup_steps: int = 15
  schedule: str = "constant"
  weight_decay: float = 0.0
  max_grad_norm: float = 1.0
  dynamic_sampling: bool = False
  max_draws: int = 4
  overlong_max_len: int = 0
  overlong_cache_len: int = 0
  drop_zero_advantage: int = 0


@dataclasses.dataclass(frozen=True)
class EvalSection:
  """every: held-out evaluation every N RL steps (0: only before and after RL).
  batch_size: prompts per greedy decoding batch."""
  every: int = 0
  batch_size: int = 200


@dataclasses.dataclass(frozen=True)
class CheckpointSection:
  """every: save every N RL steps (0 disables); keep: checkpoints kept; async_save: write in the
  background."""
  every: int = 0
  keep: int = 2
  async_save: bool = True


@dataclasses.dataclass(frozen=True)
class MeshSection:
  """Device mesh axis sizes (data, fsdp, tensor); -1 on one axis takes the remaining devices."""
  data: int = -1
  fsdp: int = 1
  tensor: int = 1


@dataclasses.dataclass(frozen=True)
class Experiment:
  """seed: run seed (all keys derive from it). tokenizer: bundled name or path.
  task: {"name": "arithmetic" | "gsm8k", **task kwargs} (see `rl_jax.tasks`).
  prompt_len / max_new_tokens: slot layout P and N. logprob_impl: naive | xla | pallas | auto.
  log_every: progress-bar refresh in steps."""
  seed: int = 0
  tokenizer: str = "arith_char"
  task: Mapping[str, Any] = dataclasses.field(default_factory=lambda: {"name": "arithmetic"})
  prompt_len: int = 16
  max_new_tokens: int = 16
  logprob_impl: str = "naive"
  log_every: int = 1
  model: ModelSection = ModelSection()
  sft: SFTSection = SFTSection()
  rl: RLSection = RLSection()
  eval: EvalSection = EvalSection()
  checkpoint: CheckpointSection = CheckpointSection()
  mesh: MeshSection = MeshSection()


def _convert(cls, section: Mapping[str, Any], path: str):
  fields = {f.name: f for f in dataclasses.fields(cls)}
  kwargs = {}
  for key, value in section.items():
    if key not in fields:
      raise ValueError(f"unknown config key {path}{key!r}; valid keys of "
                       f"{path.rstrip('.') or 'the config'}: {sorted(fields)}")
    field_type = fields[key].default
    if dataclasses.is_dataclass(field_type) and isinstance(value, Mapping):
      value = _convert(type(field_type), value, f"{path}{key}.")
    elif isinstance(value, Mapping):
      value = dict(value)
    kwargs[key] = value
  return cls(**kwargs)


def from_config_dict(config: Mapping[str, Any]) -> Experiment:
  """Converts a (possibly locked) ConfigDict / dict into an `Experiment`, strictly."""
  as_dict = config.to_dict() if hasattr(config, "to_dict") else dict(config)
  exp = _convert(Experiment, as_dict, "")
  model_fields = {f.name for f in dataclasses.fields(ModelConfig)}
  unknown = set(exp.model.overrides) - model_fields
  if unknown:
    raise ValueError(f"unknown config key(s) model.overrides.{sorted(unknown)}; valid ModelConfig "
                     f"fields: {sorted(model_fields)}")
  from rl_jax import tasks  # pylint: disable=g-import-not-at-top
  task = dict(exp.task)
  name = task.pop("name", None)
  if name not in tasks.TASKS:
    raise ValueError(f"config task.name must be one of {sorted(tasks.TASKS)}, got {name!r}")
  params = inspect.signature(tasks.TASKS[name]).parameters
  unknown = [k for k in task if k not in params]
  if unknown:
    raise ValueError(f"unknown config key(s) task.{unknown} for task {name!r}; valid: "
                     f"{sorted(k for k in params if k != '_')}")
  return exp
