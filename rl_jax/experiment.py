"""The experiment config schema: ml-collections sections -> frozen dataclasses, strictly.

`configs/*.py` return a `ConfigDict`; `from_config_dict` converts each section to the dataclass
below and rejects any key that is not a field, naming it (`rl.eps_hgih`: unknown key; valid keys
are ...). Parts chosen by name (`task`, `rl.prompt_source`, `rl.scorer`, `rl.advantage`,
`eval.evaluator`, `report`) are dicts `{"name": ..., **kwargs}` whose kwargs are checked against
the registered factory. A project adds top-level sections with `register_section` (its module is
imported first: `imports`). Library functions receive only their own section (docs/architecture.md).
Every field is documented here: this file is the reference for what a config can set.
"""
from __future__ import annotations

import dataclasses
import importlib
from typing import Any, Mapping

from rl_jax.registry import Registry

# Top-level config sections that projects add (name -> frozen dataclass).
SECTIONS: Registry = Registry("config section")
STAGE_KINDS = ("pretrain", "sft", "rl", "preference")


def register_section(name: str, cls) -> None:
  """Lets a config carry a top-level section `name` converted strictly to `cls`."""
  if name in {f.name for f in dataclasses.fields(Experiment)}:
    raise ValueError(f"config section {name!r} is a core section")
  SECTIONS.register(name)(cls)


@dataclasses.dataclass(frozen=True)
class ModelSection:
  """name: a `rl_jax.models.config.MODEL_CONFIGS` key ("tiny", "qwen3_4b", ...).
  hf_checkpoint: folder of a Hugging Face Qwen3 checkpoint (safetensors) to load; empty = random
    init (the tiny model then starts from scratch and is warm-started by SFT).
  overrides: ModelConfig fields to replace (e.g. {"num_layers": 2, "dtype": "bfloat16"}); a
    None value means "not overridden" (config files list every field as a None placeholder so
    `--config.model.overrides.KEY=value` works for any KEY); the vocabulary size always comes
    from the tokenizer."""
  name: str = "tiny"
  hf_checkpoint: str = ""
  overrides: Mapping[str, Any] = dataclasses.field(default_factory=dict)

  def __post_init__(self):
    object.__setattr__(self, "overrides",
                       {k: v for k, v in dict(self.overrides).items() if v is not None})


@dataclasses.dataclass(frozen=True)
class SupervisedSection:
  """A supervised stage (`pretrain`: next-token loss on the task's corpus; `sft`: the task's
  demonstrations, loss on completion tokens). 0 steps skips the stage.
  steps: optimizer steps. batch_size: sequences per step.
  learning_rate: peak learning rate (the one source: it is the traced knob of the step).
  warmup_steps / schedule / min_lr_ratio / weight_decay / max_grad_norm: the optimizer
    (`rl_jax.optim.OptimCfg`; decay ends at `steps`).
  num_microbatches: gradient accumulation (exact, docs/architecture.md).
  start_from: stage whose final params this stage starts from ("" = the stage before it; the
    first stage starts from the model's initial params).
  corpus: pretrain only: which corpus of the task the stage reads, passed as
    `task.pretrain_batch(batch_size, rng, corpus=corpus)` ("" = the task's default corpus; the
    provider is then called without it).
  then: further stages of this kind run right after this one, in order, each a dict with a
    "name" (the stage is named "<kind>_<name>") and any fields of this section to replace, e.g.
    pretrain.then = ({"name": "seed", "corpus": "seed", "steps": 200},) runs a second pretrain
    stage "pretrain_seed" on another corpus; each starts from the stage before it unless it
    sets start_from (two pretrain stages on different data, docs/agent_pretraining.md)."""
  steps: int = 0
  batch_size: int = 64
  learning_rate: float = 1e-3
  warmup_steps: int = 20
  schedule: str = "cosine"
  min_lr_ratio: float = 0.0
  weight_decay: float = 0.0
  max_grad_norm: float = 1.0
  num_microbatches: int = 1
  start_from: str = ""
  corpus: str = ""
  then: tuple[Mapping[str, Any], ...] = ()


@dataclasses.dataclass(frozen=True)
class RolloutSection:
  """How episodes are sampled (`rl_jax.sampling.rollouts`).
  name: "generate" (one turn of max_new_tokens) or "tool" (multi-turn with the task's ToolEnv:
    up to max_calls calls, each answered by at most tool_tokens tokens; a longer response is
    truncated and counted).
  row_bucket: tool rollouts: turns after the first generate only for the rows still in an
    episode, padded to a multiple of this many rows (0 = every row in every turn).
  native_rows / native_prefix: the last native_rows samples of each group start with the forced
    text native_prefix (loss 0), e.g. an answer tag that forbids a tool call: evidence of the
    policy's native accuracy in every group (the gated advantage reads it)."""
  name: str = "generate"
  max_calls: int = 1
  tool_tokens: int = 0
  row_bucket: int = 0
  native_rows: int = 0
  native_prefix: str = ""


@dataclasses.dataclass(frozen=True)
class RLSection:
  """Reinforcement learning. An RL step = prompt source -> rollout -> scorer -> advantage ->
  update (docs/architecture.md).

  algorithm: loss preset: grpo | dr_grpo | dapo | bnpo | gspo | gspo_token
    (`rl_jax.algorithms.losses.preset`); the fields below set to None keep the preset's value
    (config.json in the workdir records the resolved values).
  steps: rollout batches (RL iterations); 0 skips RL.
  prompts_per_step: prompts per rollout batch; group_size: samples per prompt (G).
  num_epochs / num_minibatches: optimizer passes over each rollout batch and mini-batches per
    pass (PPO-style; 1 x 1 is strictly on-policy and the ratio is 1).
  num_microbatches: gradient accumulation inside one optimizer step (exact for every mode);
    0 = chosen by memory: the fewest micro-batches whose planned per-device activations +
    log-prob temporaries fit `microbatch_budget_mib` (`rl_jax.plan.choose_microbatches`,
    the planner's formulas with the model's remat policy; logged as update/num_microbatches).
  microbatch_budget_mib: that budget in MiB per device (used when num_microbatches == 0).
    512 suits a CPU, where small micro-batches also run faster (docs/benchmarks.md); on an
    accelerator raise it toward the memory left after params and optimizer state.
  temperature / top_p / top_k: sampling knobs (traced).
  eps_low / eps_high / eps_c / beta: clip range, dual clip, KL coefficient (traced).
  kl_estimator: k1 | k2 | k3; use_kl_loss: add beta*KL to the loss (reference = the params the
    stage starts from).
  agg: loss aggregation (token_mean | seq_mean_token_mean | seq_mean_token_sum |
    seq_mean_token_sum_norm); adv_normalize: std (GRPO) | none (Dr. GRPO), read by the
    advantage part.
  learning_rate / warmup_steps / schedule / min_lr_ratio / weight_decay / max_grad_norm: the
    optimizer (learning_rate is the traced peak).
  dynamic_sampling: DAPO: keep only groups with non-constant rewards, drawing new prompts until
    prompts_per_step groups are kept (at most max_draws rollout batches per step).
  overlong_max_len / overlong_cache_len: DAPO soft overlong penalty in tokens (0 disables).
  drop_zero_advantage: 0 = off; k > 0 = rows whose advantage is 0 (groups with equal rewards)
    are left out of the update, the rest padded to a multiple of k rows: the same loss and
    gradient for less compute (`rl_jax.update.drop_zero_advantage_rows`; not with use_kl_loss).
  prompt_source: {"name": "task" (fresh draws from the task, stateless) | "epochs" (passes over
    the task's train problems; position saved in checkpoints) | "retire_solved" (epochs that
    retire prompts solved in every sample `retire_after` times running), **kwargs}
    (`rl_jax.data.prompt_sources`).
  rollout: `RolloutSection`.
  scorer: {"name": "task" (the task's reward per row) | "weighted" (reward-registry functions
    with weights) | "episode" (tool episodes: reward, correct, cost, calls), **kwargs}
    (`rl_jax.rewards.scorers`).
  advantage: {"name": "group" | "rloo" | "process" | "gated", **kwargs}
    (`rl_jax.algorithms.advantage_parts`).
  pack_sequences: sequence packing in the update step: each optimizer step's rows (prompt +
    response, padding dropped) are packed several to a row with segment ids, so the forward
    and the log-prob kernel run over real tokens only; the loss is aggregated per original
    sequence, so every aggregation mode gives the unpacked loss and gradient
    (`rl_jax.packing`, docs/benchmarks.md "Sequence packing").
  off_policy_steps: asynchronous RL. 0 = synchronous (rollout, then update, on-policy). k >= 1:
    the rollout of step t + k is generated with the params of step t while update t runs, so a
    batch is at most k updates stale (bounded staleness); stale samples get the decoupled PPO
    loss with a truncated / masked importance weight (`rl_jax.algorithms.off_policy`,
    docs/async_rl.md). In-flight rollouts are saved in checkpoints.
  rollout_devices: with off_policy_steps >= 1: 0 = rollout and update share the mesh
    (interleaved: async dispatch queues update t, then the host runs rollout t + k); n > 0 = the
    first n devices generate, the others (the `mesh` axes over them) train.
  importance_level / importance_mode / importance_cap: the off-policy correction of stale
    samples, rho = pi_prox / pi_behaviour: level "token" (per-token rho_t), "sequence" (rho_i =
    prod_t rho_t) or "geometric" (rho_i = exp(mean_t log rho_t)); mode "truncate" (w =
    min(rho, cap): TIS / V-trace's rho-bar) or "mask" (w = rho if 1/cap <= rho <= cap, else 0);
    cap > 1 (`rl_jax.algorithms.off_policy`).
  sweep: {field: (values...)} over this section (nested dicts for the part dicts, e.g.
    {"advantage": {"lam": (0.1, 0.5)}}): one RL stage per combination, each starting from the
    same params; empty = one RL stage.
  start_from: as in `SupervisedSection`.
  """
  algorithm: str = "grpo"
  steps: int = 0
  prompts_per_step: int = 64
  group_size: int = 8
  num_epochs: int = 1
  num_minibatches: int = 1
  num_microbatches: int = 0
  microbatch_budget_mib: float = 512.0
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
  min_lr_ratio: float = 0.0
  weight_decay: float = 0.0
  max_grad_norm: float = 1.0
  dynamic_sampling: bool = False
  max_draws: int = 4
  overlong_max_len: int = 0
  overlong_cache_len: int = 0
  drop_zero_advantage: int = 0
  pack_sequences: bool = False
  off_policy_steps: int = 0
  rollout_devices: int = 0
  importance_level: str = "token"
  importance_mode: str = "truncate"
  importance_cap: float = 2.0
  prompt_source: Mapping[str, Any] = dataclasses.field(default_factory=lambda: {"name": "task"})
  rollout: RolloutSection = RolloutSection()
  scorer: Mapping[str, Any] = dataclasses.field(default_factory=lambda: {"name": "task"})
  advantage: Mapping[str, Any] = dataclasses.field(default_factory=lambda: {"name": "group"})
  sweep: Mapping[str, Any] = dataclasses.field(default_factory=dict)
  start_from: str = ""


@dataclasses.dataclass(frozen=True)
class PreferenceSection:
  """Preference optimisation on (prompt, chosen, rejected) pairs: DPO / IPO / SimPO
  (`rl_jax.algorithms.preference`, `rl_jax.stages.preference`). 0 steps skips the stage.
  steps: optimizer steps. batch_size: pairs per step (every step draws them from one
    permutation of the pairs per epoch).
  loss: "dpo" (sigmoid; arXiv 2305.18290) | "ipo" (arXiv 2310.12036, length-normalised as in
    TRL) | "simpo" (arXiv 2405.14734, reference-free).
  beta: inverse temperature (DPO typical 0.1; SimPO 2-2.5). gamma: SimPO target margin (0 for
    dpo / ipo). label_smoothing: conservative DPO: the assumed probability that a pair's label is
    flipped, in [0, 0.5) (dpo and simpo; 0 for ipo).
  nll_coef: alpha of the chosen response's per-token NLL added to the loss (RPO, arXiv
    2404.19733; TRL's rpo_alpha); keeps the chosen likely while the margin grows; 0 = off.
  reference_free: dpo / ipo against a uniform reference (log pi_ref = 0) instead of the stage's
    start params. Otherwise the reference is the params the stage starts from, and its sequence
    log-probs are computed once per dataset at the stage's start (ref_batch_size pairs per
    forward chunk; 0 = batch_size) and cached.
  learning_rate / warmup_steps / schedule / min_lr_ratio / weight_decay / max_grad_norm: the
    optimizer (`rl_jax.optim.OptimCfg`; decay ends at `steps`).
  num_microbatches: micro-batches of whole pairs per step (exact accumulation).
  pairs: kwargs of the task's `preference_pairs(**pairs)` provider (`rl_jax.tasks.TaskData`),
    e.g. which negatives a project's pairs use.
  skip_malformed: pairs that are empty, identical (chosen == rejected) or longer than the slot
    layout (prompt > prompt_len or response + EOS > max_new_tokens tokens) are an error naming
    their record indices; True skips them instead (their count is logged).
  sweep: {field: (values...)} over this section (nested dicts for `pairs`, e.g.
    {"pairs": {"negatives": ("random", "ecd")}}): one preference stage per combination, each
    starting from the same params, named like "preference_negatives=ecd"; empty = one stage.
  start_from: as in `SupervisedSection`."""
  steps: int = 0
  batch_size: int = 32
  loss: str = "dpo"
  beta: float = 0.1
  gamma: float = 0.0
  label_smoothing: float = 0.0
  nll_coef: float = 0.0
  reference_free: bool = False
  ref_batch_size: int = 0
  learning_rate: float = 1e-4
  warmup_steps: int = 0
  schedule: str = "constant"
  min_lr_ratio: float = 0.0
  weight_decay: float = 0.0
  max_grad_norm: float = 1.0
  num_microbatches: int = 1
  pairs: Mapping[str, Any] = dataclasses.field(default_factory=dict)
  skip_malformed: bool = False
  sweep: Mapping[str, Any] = dataclasses.field(default_factory=dict)
  start_from: str = ""


@dataclasses.dataclass(frozen=True)
class EvalSection:
  """The loop's eval hook (`rl_jax.eval.hooks`).
  evaluator: {"name": "task" (greedy accuracy on the task's held-out problems; with
    num_samples > 1 also pass@k and majority vote) | a project's evaluator, **kwargs}.
  every: evaluate every N steps of an RL stage (0: only at stage ends).
  at_stage_end: evaluate at the end of every stage that trained.
  batch_size: prompts per decoding batch."""
  evaluator: Mapping[str, Any] = dataclasses.field(default_factory=lambda: {"name": "task"})
  every: int = 0
  at_stage_end: bool = True
  batch_size: int = 200


@dataclasses.dataclass(frozen=True)
class CheckpointSection:
  """every: save every N steps of a stage, and at its end (0 disables); keep: checkpoints kept
  per stage; async_save: write in the background."""
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
  """seed: run seed (all keys and prompt draws derive from it).
  imports: modules imported before the config is checked, so their parts register (e.g.
    "rl_jax.projects.<name>").
  tokenizer: bundled name or path (a task may bring its own tokenizer instead).
  task: {"name": registered task, **kwargs} (`rl_jax.tasks`).
  prompt_len / max_new_tokens: slot layout P and N (N per policy turn in tool rollouts).
  logprob_impl: naive | xla | pallas | auto (default: fused, xla on CPU/GPU and pallas on TPU; no
    f32 [B, T, V] logits). log_every: progress-bar refresh in steps.
  timing: block on each update to report exact time/update_s (off: the update is only
    dispatched and overlaps the host work of the next step; time/update_s is dispatch time).
  stages: the stages run in order, each a section of the same name (pretrain, sft, rl,
    preference); a stage with 0 steps is skipped.
  report: {"name": registered report, **kwargs} run at the end over the workdir ({} = none).
  data_dir: where the data layer's tfds builders prepare their datasets (ArrayRecord files,
    `rl_jax.data.builders`); "" = <workdir>/data. Prepared once per builder config, reused by
    reruns; point several runs at one directory to share them.
  sections: project sections (`register_section`), by name."""
  seed: int = 0
  imports: tuple[str, ...] = ()
  tokenizer: str = "arith_char"
  task: Mapping[str, Any] = dataclasses.field(default_factory=lambda: {"name": "arithmetic"})
  prompt_len: int = 16
  max_new_tokens: int = 16
  logprob_impl: str = "auto"
  log_every: int = 1
  timing: bool = False
  stages: tuple[str, ...] = ("pretrain", "sft", "rl")
  report: Mapping[str, Any] = dataclasses.field(default_factory=dict)
  data_dir: str = ""
  model: ModelSection = ModelSection()
  pretrain: SupervisedSection = SupervisedSection()
  sft: SupervisedSection = SupervisedSection()
  rl: RLSection = RLSection()
  preference: PreferenceSection = PreferenceSection()
  eval: EvalSection = EvalSection()
  checkpoint: CheckpointSection = CheckpointSection()
  mesh: MeshSection = MeshSection()
  sections: Mapping[str, Any] = dataclasses.field(default_factory=dict)


def _convert(cls, section: Mapping[str, Any], path: str):
  fields = {f.name: f for f in dataclasses.fields(cls)}
  kwargs = {}
  for key, value in section.items():
    if key not in fields:
      raise ValueError(f"unknown config key {path}{key!r}; valid keys of "
                       f"{path.rstrip('.') or 'the config'}: {sorted(fields)}")
    default = fields[key].default
    if dataclasses.is_dataclass(default) and isinstance(value, Mapping):
      value = _convert(type(default), value, f"{path}{key}.")
    elif isinstance(value, Mapping):
      value = _plain(value)
    elif isinstance(value, (list, tuple)):
      value = _plain(value)  # a tuple of dicts (pretrain.then) becomes plain dicts too
    kwargs[key] = value
  return cls(**kwargs)


def _plain(value):
  """ConfigDict / nested mappings -> plain dicts (lists -> tuples), for hashing and JSON."""
  if isinstance(value, Mapping):
    return {k: _plain(v) for k, v in value.items()}
  if isinstance(value, (list, tuple)):
    return tuple(_plain(v) for v in value)
  return value


def from_config_dict(config: Mapping[str, Any]) -> Experiment:
  """Converts a (possibly locked) ConfigDict / dict into a checked `Experiment`."""
  as_dict = config.to_dict() if hasattr(config, "to_dict") else dict(config)
  for module in as_dict.get("imports", ()):
    importlib.import_module(module)
  core = {f.name for f in dataclasses.fields(Experiment)} - {"sections"}
  sections = {}
  for key in [k for k in as_dict if k not in core]:
    if key not in SECTIONS:
      raise ValueError(f"unknown config section {key!r}; valid sections: {sorted(core)} and "
                       f"the registered project sections {SECTIONS.names()}")
    sections[key] = _convert(SECTIONS.get(key), as_dict.pop(key), f"{key}.")
  exp = _convert(Experiment, as_dict, "")
  exp = dataclasses.replace(exp, sections=sections)
  # Imported here: the check reads the part registries, whose modules import the model code.
  from rl_jax import config_check  # pylint: disable=g-import-not-at-top
  config_check.check(exp)
  return exp


def to_json_dict(obj) -> Any:
  """An Experiment (or section) as plain JSON-able values."""
  if dataclasses.is_dataclass(obj):
    return {f.name: to_json_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
  if isinstance(obj, Mapping):
    return {str(k): to_json_dict(v) for k, v in obj.items()}
  if isinstance(obj, (tuple, list)):
    return [to_json_dict(v) for v in obj]
  if isinstance(obj, float) and obj in (float("inf"), float("-inf")):
    return str(obj)
  return obj
