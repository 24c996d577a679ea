"""The `preference` stage: DPO / IPO / SimPO on the task's (prompt, chosen, rejected) pairs.

    pairs  = task.preference_pairs(**config.preference.pairs)     records of three strings
    data   = encode_pairs(tokenizer, pairs, P, N)                  slot layout, prompt masked
    ref    = reference_sequence_logprobs(start params, data)       once per dataset, cached
    step s : rows of epoch permutation -> make_preference_step     rl_jax/preference_step.py

Each pair is tokenised like an SFT example (`rl_jax.data.encoding.encode_examples`): the prompt
left-padded to P slots with loss_mask 0, the response and EOS after it with loss_mask 1, so the
loss sees the response tokens only. Malformed records (not three strings, an empty prompt or
response, chosen == rejected, a prompt over P tokens or a response + EOS over N tokens) are
reported with their record index; `preference.skip_malformed` skips them instead of failing.

On-policy pairs: a provider with a keyword parameter `policy` receives a `PolicySampler` over
the stage's start params (the previous stage's final params, also the DPO reference), so it can
sample K responses per prompt from the policy being aligned and judge them (PUGC, arXiv
2506.04463, docs/pugc.md). Its key is `fold_in(key(seed), stage_id("preference:pairs"))`, the
stage *kind*'s, so every variant of a sweep samples the same responses and a resumed stage
rebuilds exactly the same pairs.

The batch of step s is rows [o*B, (o+1)*B) of epoch e's permutation of the pairs
(`default_rng([seed, stage_id("preference"), e])`, (e, o) = divmod(s, steps per epoch)): a
resumed stage draws the same batches as an uninterrupted one, and the variants of a
`preference.sweep` share the draws when their pair sets have the same size. The reference is the
params the stage starts from (the previous stage's final params), so a resumed run recomputes
exactly the same cache. Checkpoints, metrics (fetched one step late), the eval hook and the
progress bar come from the loop's `StageIO` (docs/architecture.md).
"""
from __future__ import annotations

import dataclasses
import inspect
from typing import Any, Sequence

import numpy as np

from rl_jax import metrics as metrics_lib
from rl_jax import sharding
from rl_jax.algorithms import preference as preference_losses
from rl_jax.data import loader
from rl_jax.preference_step import (PairBatch, PreferenceCfg, PreferenceKnobs,
                                    make_preference_step, reference_sequence_logprobs)
from rl_jax.stages import STAGES, supervised
from rl_jax.stages.context import RunContext, stage_id


@dataclasses.dataclass(frozen=True)
class EncodedPairs:
  """Pairs in the slot layout, numpy [n, P + N] each (tokens int32, valid bool, mask f32);
  `index[i]` is the record index of row i in the provider's list; `skipped` lists the
  (record index, reason) of every malformed record left out."""
  chosen: tuple[np.ndarray, np.ndarray, np.ndarray]
  rejected: tuple[np.ndarray, np.ndarray, np.ndarray]
  index: np.ndarray
  skipped: tuple[tuple[int, str], ...]

  def __len__(self) -> int:
    return len(self.index)


@dataclasses.dataclass(frozen=True)
class PolicySampler:
  """The stage's start policy as a sampler, for pair providers that take `policy` (module
  docstring). `sample(prompts, n, temperature, top_p)` -> n completion texts per prompt, decoded
  in the training layout (prompt_len, max_new_tokens, the task's stop ids); `log` prints a line
  to the run's log."""
  ctx: Any
  params: Any
  key: Any
  stage: str

  def sample(self, prompts: Sequence[str], n: int, temperature: float = 1.0, top_p: float = 1.0,
             batch_size: int = 0) -> list[list[str]]:
    from rl_jax.eval import generation  # pylint: disable=g-import-not-at-top  (lazy: sampling)
    prompts = list(prompts)
    if not prompts:
      return []
    exp = self.ctx.exp
    return generation.sample_completions(
        self.params, prompts, tokenizer=self.ctx.tokenizer, model_cfg=self.ctx.model_cfg,
        prompt_len=exp.prompt_len, max_new_tokens=exp.max_new_tokens, key=self.key,
        batch_size=min(batch_size or exp.eval.batch_size, len(prompts)), num_samples=n,
        temperature=temperature, top_p=top_p, stop_ids=self.ctx.task.stop_ids,
        mesh=self.ctx.mesh)

  def log(self, message: str) -> None:
    self.ctx.log(f"[{self.stage}] {message}")


def _malformed_reason(record, ids, prompt_len: int, max_new_tokens: int) -> str | None:
  """Why a record cannot be a training pair, or None."""
  prompt, chosen, rejected = record
  if not prompt.strip():
    return "empty prompt"
  for name, text in (("chosen", chosen), ("rejected", rejected)):
    if not text.strip():
      return f"empty {name} response"
  if chosen == rejected:
    return "chosen and rejected are identical"
  p_ids, c_ids, r_ids = ids
  if len(p_ids) > prompt_len:
    return f"prompt has {len(p_ids)} tokens, more than prompt_len={prompt_len}"
  for name, r in (("chosen", c_ids), ("rejected", r_ids)):
    if len(r) + 1 > max_new_tokens:
      return (f"{name} response has {len(r)} tokens + EOS, more than "
              f"max_new_tokens={max_new_tokens}")
  if c_ids == r_ids:
    return "chosen and rejected tokenise identically"
  return None


def encode_pairs(tokenizer, records: Sequence[Any], prompt_len: int, max_new_tokens: int, *,
                 skip_malformed: bool = False, where: str = "preference pairs") -> EncodedPairs:
  """Tokenises (prompt, chosen, rejected) records into the slot layout (prompt masked out).

  Raises a ValueError naming every malformed record's index and reason (the first 10 and the
  count) unless `skip_malformed`; no usable pair at all is always an error."""
  width = prompt_len + max_new_tokens
  rows: list[tuple[int, list[int], list[int], list[int]]] = []
  bad: list[tuple[int, str]] = []
  for i, record in enumerate(records):
    if (not isinstance(record, (tuple, list)) or len(record) != 3
        or not all(isinstance(t, str) for t in record)):
      bad.append((i, f"expected (prompt, chosen, rejected) strings, got {record!r:.80}"))
      continue
    ids = tuple(tokenizer.encode(t) for t in record)
    reason = _malformed_reason(record, ids, prompt_len, max_new_tokens)
    if reason is not None:
      bad.append((i, reason))
      continue
    rows.append((i, *ids))
  if bad and not skip_malformed:
    listed = "; ".join(f"record {i}: {why}" for i, why in bad[:10])
    raise ValueError(f"{where}: {len(bad)} malformed pair(s) of {len(records)}: {listed}"
                     f"{' ...' if len(bad) > 10 else ''}; fix the data or set "
                     "preference.skip_malformed=True to skip them")
  if not rows:
    raise ValueError(f"{where}: no usable pair among {len(records)} records"
                     + (f" ({len(bad)} malformed, e.g. record {bad[0][0]}: {bad[0][1]})"
                        if bad else ""))
  n = len(rows)

  def layout(side: int):
    tokens = np.full((n, width), tokenizer.pad_id, np.int32)
    valid = np.zeros((n, width), bool)
    mask = np.zeros((n, width), np.float32)
    for r, row in enumerate(rows):
      prompt, response = row[1], row[1 + side] + [tokenizer.eos_id]
      tokens[r, prompt_len - len(prompt):prompt_len] = prompt
      valid[r, prompt_len - len(prompt):prompt_len] = True
      tokens[r, prompt_len:prompt_len + len(response)] = response
      valid[r, prompt_len:prompt_len + len(response)] = True
      mask[r, prompt_len:prompt_len + len(response)] = 1.0
    return tokens, valid, mask

  return EncodedPairs(layout(1), layout(2), np.asarray([r[0] for r in rows], np.int64),
                      tuple(bad))


def check_section(section, name: str) -> None:
  """Static checks of a preference section, before any work is done."""
  where = f"config {name}"
  if section.loss not in preference_losses.KINDS:
    raise ValueError(f"{where}.loss must be one of {preference_losses.KINDS}, got "
                     f"{section.loss!r}")
  if not section.beta > 0:
    raise ValueError(f"{where}.beta must be > 0, got {section.beta}")
  if section.loss != "simpo" and section.gamma != 0:
    raise ValueError(f"{where}.gamma is the SimPO margin; loss={section.loss!r} needs gamma=0")
  if not 0.0 <= section.label_smoothing < 0.5:
    raise ValueError(f"{where}.label_smoothing must be in [0, 0.5), got "
                     f"{section.label_smoothing}")
  if section.loss == "ipo" and section.label_smoothing:
    raise ValueError(f"{where}.label_smoothing smooths the sigmoid losses (dpo, simpo); "
                     "loss='ipo' needs 0")
  if section.num_microbatches < 1:
    raise ValueError(f"{where}.num_microbatches must be >= 1, got {section.num_microbatches}")
  if section.batch_size < 1 or section.batch_size % section.num_microbatches:
    raise ValueError(f"{where}.batch_size={section.batch_size} must be a positive multiple of "
                     f"num_microbatches={section.num_microbatches}")
  if section.nll_coef < 0:
    raise ValueError(f"{where}.nll_coef must be >= 0 (0 = plain {section.loss}), got "
                     f"{section.nll_coef}")
  if section.ref_batch_size < 0:
    raise ValueError(f"{where}.ref_batch_size must be >= 0 (0 = batch_size), got "
                     f"{section.ref_batch_size}")


def load_pairs(ctx: RunContext, section, name: str, params=None) -> EncodedPairs:
  """The task's pairs for this stage, encoded; malformed ones reported (or skipped). A provider
  that takes `policy` gets a `PolicySampler` over `params` (on-policy pairs)."""
  task = ctx.task
  if task.preference_pairs is None:
    raise ValueError(f"config stages include 'preference' but task {task.name!r} provides no "
                     "pairs (TaskData.preference_pairs); set preference.steps=0")
  kwargs = dict(section.pairs)
  if "policy" in inspect.signature(task.preference_pairs).parameters:
    if "policy" in kwargs:
      raise ValueError(f"config {name}.pairs.policy: 'policy' is passed by the stage (the "
                       "policy sampler), not a config key")
    if params is None:
      raise ValueError(f"task {task.name!r} preference_pairs samples the policy; load_pairs "
                       "needs the stage's params")
    kwargs["policy"] = PolicySampler(ctx, params, ctx.stage_key("preference:pairs"), name)
  records = list(task.preference_pairs(**kwargs))
  data = encode_pairs(ctx.tokenizer, records, ctx.exp.prompt_len, ctx.exp.max_new_tokens,
                      skip_malformed=section.skip_malformed,
                      where=f"stage {name!r}: task {task.name!r} preference_pairs")
  if data.skipped:
    i, why = data.skipped[0]
    ctx.log(f"[{name}] skipped {len(data.skipped)} malformed pair(s) of {len(records)} "
            f"(preference.skip_malformed), e.g. record {i}: {why}")
  if len(data) < section.batch_size:
    raise ValueError(f"config {name}.batch_size={section.batch_size} is more than the "
                     f"{len(data)} usable pairs of task {task.name!r}")
  return data


def epoch_rows(seed: int, num_pairs: int, batch_size: int, step: int) -> np.ndarray:
  """Pair rows of step `step`: one permutation of the pairs per epoch (module docstring)."""
  steps_per_epoch = num_pairs // batch_size
  epoch, offset = divmod(step, steps_per_epoch)
  order = np.random.default_rng([seed, stage_id("preference"), epoch]).permutation(num_pairs)
  return order[offset * batch_size:(offset + 1) * batch_size]


def run_preference(ctx: RunContext, spec, params, io) -> Any:
  """Trains `spec.section.steps` preference steps from `params` (also the reference)."""
  s = spec.section
  cfg = PreferenceCfg(
      model=ctx.model_cfg, optim=supervised.optim_cfg(s), kind=s.loss,
      reference_free=s.reference_free, num_microbatches=s.num_microbatches,
      logprob_impl=ctx.exp.logprob_impl)
  state, start, done, host = supervised.restore_state(ctx, params, cfg.optim, io)
  if done:
    return state.params
  data = load_pairs(ctx, s, spec.name, params)
  if cfg.uses_reference:
    # Once per dataset, from the stage's start params `params` (on a resume too: they are the
    # previous stage's final params, so the cache is the same; the restored state holds the
    # trained params). Before the first step, which donates the state's buffers.
    chunk = s.ref_batch_size or s.batch_size
    ref = [reference_sequence_logprobs(params, *side, cfg=ctx.model_cfg,
                                       implementation=ctx.exp.logprob_impl, chunk_size=chunk,
                                       mesh=ctx.mesh)
           for side in (data.chosen, data.rejected)]
  else:
    ref = [np.zeros(len(data), np.float32)] * 2
  knobs = PreferenceKnobs.create(beta=s.beta, gamma=s.gamma, label_smoothing=s.label_smoothing,
                                 nll_coef=s.nll_coef, learning_rate=s.learning_rate)
  step_fn = make_preference_step(cfg, sharding.state_shardings(state, ctx.mesh))
  fetcher = metrics_lib.LateFetcher()
  # The pairs through the data layer (grain; rows of `epoch_rows`, the iterator state saved in
  # the checkpoint); every process reads the whole batch (the pairs are built in memory).
  columns = tuple(np.asarray(a) for a in (*data.chosen, *data.rejected, *ref))
  batches = loader.example_batches(
      range(len(data)), lambda i, _: tuple(a[i] for a in columns), batch_size=s.batch_size,
      seed_words=(ctx.seed, stage_id("preference")), shard=(0, 1),
      what=f"stage {spec.name!r}: preference pairs")
  supervised._resume(batches, host, start, spec.name)  # pylint: disable=protected-access
  for step in io.steps(start, s.steps):
    batch = PairBatch(*next(batches))
    state, m = step_fn(state, sharding.shard_batch(batch, ctx.mesh), knobs)
    metrics = io.evaluate(state.params, step + 1, s.steps)
    io.record(fetcher.push(step, {**m, **metrics}), None)
    if io.should_save(step + 1, s.steps):
      io.record(fetcher.flush(), None)
      io.save(step + 1, {"train": state}, {"data": batches.get_state()},
              final=step + 1 == s.steps)
  io.record(fetcher.flush(), None)
  return state.params


STAGES.register("preference")(run_preference)
