"""Defaults shared by the tiny arithmetic configs in `configs/` (imported from the package, so a
config file loads from any working directory). Every field is documented in `rl_jax/experiment.py`."""
from __future__ import annotations

import dataclasses
import typing

import ml_collections
from ml_collections import config_dict


def base_config() -> ml_collections.ConfigDict:
  """Defaults shared by the tiny arithmetic experiments (a 2-core CPU runs them in minutes)."""
  c = ml_collections.ConfigDict()
  c.seed = 0
  c.tokenizer = "arith_char"
  c.task = ml_collections.ConfigDict(dict(name="arithmetic", num_operands=3, num_digits=2,
                                          train_size=1200, eval_size=200))
  c.prompt_len = 10
  c.max_new_tokens = 10
  c.logprob_impl = "auto"  # fused log-probs (xla on CPU/GPU, pallas on TPU): no f32 [B, T, V] logits
  c.log_every = 1
  c.model = ml_collections.ConfigDict(dict(name="tiny", hf_checkpoint="", overrides={}))
  c.sft = ml_collections.ConfigDict(dict(steps=500, batch_size=64, learning_rate=1e-3,
                                         warmup_steps=20, schedule="cosine"))
  c.rl = ml_collections.ConfigDict(dict(
      algorithm="grpo", steps=150, prompts_per_step=64, group_size=8, num_epochs=1,
      num_minibatches=1, num_microbatches=0, microbatch_budget_mib=512.0, temperature=1.0,
      top_p=1.0, top_k=0,
      eps_low=None, eps_high=None, eps_c=None, beta=0.0, kl_estimator=None, use_kl_loss=False,
      agg=None, adv_normalize=None, learning_rate=2e-4, warmup_steps=15, schedule="constant",
      weight_decay=0.0, max_grad_norm=1.0, dynamic_sampling=False, max_draws=4,
      overlong_max_len=0, overlong_cache_len=0, drop_zero_advantage=0))
  c.eval = ml_collections.ConfigDict(dict(every=20, batch_size=200))
  c.checkpoint = ml_collections.ConfigDict(dict(every=0, keep=2, async_save=True))
  c.mesh = ml_collections.ConfigDict(dict(data=-1, fsdp=1, tensor=1))
  return c


def shrink_for_ci(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """`runlocal`: the same experiment, small enough for a CI test (seconds, not minutes)."""
  c.task.train_size = 64
  c.task.eval_size = 16
  c.sft.steps = 4
  c.sft.batch_size = 16
  c.rl.steps = 2
  c.rl.prompts_per_step = 4
  c.rl.group_size = 4
  c.rl.num_minibatches = 1
  c.rl.num_microbatches = 2
  c.eval.batch_size = 16
  # A bundled 63K-parameter SFT checkpoint of this task (greedy accuracy 0.53): RL's rewards
  # then vary within groups, so the CI run has non-zero advantages and gradients.
  c.model.hf_checkpoint = "arith_tiny_sft"
  c.model.overrides = {}
  return c


def finish(c: ml_collections.ConfigDict, arg, runlocal=None) -> ml_collections.ConfigDict:
  """Applies the config-file argument: None (full run) or "runlocal" (shrink_for_ci, then the
  experiment-specific `runlocal(c)` tweaks); anything else is an error."""
  if arg == "runlocal":
    shrink_for_ci(c)
    if runlocal is not None:
      runlocal(c)
  elif arg:
    raise ValueError(f"unknown config argument {arg!r}; valid: 'runlocal'")
  return overridable(c)


def _field_types(cls) -> dict[str, type]:
  """field name -> the type a command-line value is parsed as (`float | None` -> float)."""
  out = {}
  for name, hint in typing.get_type_hints(cls).items():
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    out[name] = args[0] if len(args) == 1 else hint
  return out


def _config_value(value):
  """A dataclass default as a config value: dataclasses and mappings -> dicts, lists -> tuples."""
  if dataclasses.is_dataclass(value):
    return {f.name: _config_value(getattr(value, f.name)) for f in dataclasses.fields(value)}
  if isinstance(value, typing.Mapping):
    return {k: _config_value(v) for k, v in value.items()}
  if isinstance(value, list):
    return tuple(value)
  return value


def _fill(node: ml_collections.ConfigDict, cls, skip=()) -> None:
  """Adds every field of dataclass `cls` that `node` lacks (with its default) and types every
  None field (`placeholder`), recursively into nested sections."""
  types = _field_types(cls)
  for f in dataclasses.fields(cls):
    if f.name in skip:
      continue
    default = (f.default if f.default is not dataclasses.MISSING else
               f.default_factory() if f.default_factory is not dataclasses.MISSING else None)
    if f.name not in node:
      value = _config_value(default)
      node[f.name] = ml_collections.ConfigDict(value) if isinstance(value, dict) else value
    value = node[f.name]
    if isinstance(value, ml_collections.ConfigDict) and dataclasses.is_dataclass(default):
      _fill(value, type(default))
    elif value is None and isinstance(types[f.name], type):
      node[f.name] = config_dict.placeholder(types[f.name])


def overridable(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """Makes every documented field settable from the command line (`--config.a.b=value`).

  ml-collections cannot add keys to a locked config and refuses to override a field whose value
  is a bare None (its type is unknown). So (1) every field of the core schema
  (`rl_jax.experiment.Experiment`, section by section) that the config file does not set is
  added with its default, (2) a None field ("from the preset": `rl.agg`, `rl.eps_low`, ...)
  becomes a typed placeholder, still None until set, and (3) `model.overrides` gets a None
  placeholder for every `ModelConfig` field it does not set (None = not overridden), so
  `--config.model.overrides.num_layers=2` works on any config. Values are unchanged: the added
  defaults are the ones `from_config_dict` would use. Returns `c` (changed in place).
  """
  # Imported here: experiment.py imports the model code, which a config file need not pay for
  # until it is used.
  from rl_jax import experiment  # pylint: disable=g-import-not-at-top
  from rl_jax.models.config import ModelConfig  # pylint: disable=g-import-not-at-top

  _fill(c, experiment.Experiment, skip=("sections",))
  overrides = c.model.overrides
  for name, kind in _field_types(ModelConfig).items():
    if name != "vocab_size" and name not in overrides:
      overrides[name] = config_dict.placeholder(kind)
  return c
