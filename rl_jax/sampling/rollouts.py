"""Rollout parts of the RL step: problems -> G sampled episodes per problem, as host arrays.

    rollout = ROLLOUTS.build({"name": ...}, where, ctx=ctx, section=rl_section)
    out = rollout(params, problems, key, knobs)          # RolloutOutput

Registered:
  "generate": one turn, the jitted `generate` (prefill + KV-cache decode) over the task's prompts.
  "tool":     the multi-turn tool loop (`rl_jax.sampling.tool_loop`) with the task's `ToolEnv`:
              generate until a tool call, run it on the host, append the response with
              loss_mask 0, continue (up to max_calls calls).

Row r of the output belongs to problem r // G (the group layout of every advantage function).
With `ctx.mesh`, prompt rows are split over (data, fsdp) and the rollout comes back whole on
every process (`sharding.to_host`).
"""
from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import numpy as np

from rl_jax import sharding
from rl_jax.data.encoding import decode_responses, encode_prompts
from rl_jax.registry import Registry
from rl_jax.sampling.generate import GenerateCfg, generate
from rl_jax.sampling.tool_loop import ToolLoopCfg, tool_rollout
from rl_jax.types import Rollout

ROLLOUTS: Registry = Registry("rollout")


@dataclasses.dataclass
class RolloutOutput:
  """rollout: the [B, L] layout as numpy (prompt in slots [0, P)). texts: per row, what the
  scorer reads (the response; for tool episodes the whole transcript). episodes: per row, the
  tool episode with its ledger (None for single-turn). forced_B: 1 where the row's start was
  forced (native rows), else 0. extras: per-row metrics of the rollout itself."""
  rollout: Rollout
  texts: list[str]
  episodes: list[Any] | None = None
  forced_B: np.ndarray | None = None
  extras: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)


def check_section(section) -> None:
  """Validates `section.rollout` (config time: before any stage runs)."""
  r = section.rollout
  ROLLOUTS.get(r.name)
  if min(r.max_calls, r.tool_tokens, r.row_bucket) < 0:
    raise ValueError(f"config rl.rollout.max_calls, tool_tokens and row_bucket must be >= 0, got "
                     f"{r.max_calls}, {r.tool_tokens}, {r.row_bucket}")
  if not 0 <= r.native_rows < section.group_size:
    raise ValueError(f"config rl.rollout.native_rows must be in [0, group_size="
                     f"{section.group_size}), got {r.native_rows}")
  if r.native_rows and not r.native_prefix:
    raise ValueError("config rl.rollout.native_rows > 0 needs rl.rollout.native_prefix")
  if r.native_rows and r.name != "tool":
    raise ValueError("config rl.rollout.native_rows needs rl.rollout.name='tool'")


class GenerateRollout:
  """Single-turn sampling of `max_new_tokens` tokens per prompt."""

  def __init__(self, ctx, section):
    self.ctx = ctx
    tok = ctx.tokenizer
    self.cfg = GenerateCfg(max_new_tokens=ctx.exp.max_new_tokens, group_size=section.group_size,
                           stop_ids=(tok.eos_id,), pad_id=tok.pad_id)

  @property
  def total_len(self) -> int:
    return self.ctx.exp.prompt_len + self.cfg.max_new_tokens

  def __call__(self, params, problems: Sequence[Any], key, knobs) -> RolloutOutput:
    ctx = self.ctx
    tokens, valid = encode_prompts(ctx.tokenizer, [ctx.task.prompt_fn(p) for p in problems],
                                   ctx.exp.prompt_len)
    placed = sharding.shard_batch({"prompt_tokens": tokens, "prompt_valid": valid}, ctx.mesh)
    rollout = sharding.to_host(generate(params, placed["prompt_tokens"], placed["prompt_valid"],
                                        key, knobs, model_cfg=ctx.model_cfg, cfg=self.cfg))
    texts = decode_responses(ctx.tokenizer, rollout.tokens_BxL, rollout.loss_mask_BxL,
                             ctx.exp.prompt_len, self.cfg.stop_ids)
    return RolloutOutput(rollout=rollout, texts=texts)


class ToolRollout:
  """Multi-turn episodes with the task's `ToolEnv` (`rl_jax.sampling.tool_loop`).

  `native_rows` > 0: the last native_rows samples of each group start with the forced text
  `native_prefix` (loss 0), e.g. an answer tag that forbids a call: the group's native
  evidence for a gated advantage."""

  def __init__(self, ctx, section):
    r = section.rollout
    if ctx.task.tool_env is None:
      raise ValueError(f"config rl.rollout.name='tool' needs a task with a tool_env; task "
                       f"{ctx.task.name!r} has none")
    check_section(section)
    self.ctx, self.section = ctx, section
    tok = ctx.tokenizer
    self.cfg = ToolLoopCfg(prompt_len=ctx.exp.prompt_len, turn_tokens=ctx.exp.max_new_tokens,
                           tool_tokens=r.tool_tokens, max_calls=r.max_calls,
                           stop_ids=(tok.eos_id,) + tuple(ctx.task.stop_ids), pad_id=tok.pad_id,
                           row_bucket=r.row_bucket)

  @property
  def total_len(self) -> int:
    return self.cfg.total_len

  def prefixes(self, num_problems: int) -> tuple[list[str] | str, np.ndarray]:
    """Per-row forced prefixes ("" for sampled rows) and the forced-row marks [B]."""
    r, g = self.section.rollout, self.section.group_size
    forced_B = (np.arange(num_problems * g) % g >= g - r.native_rows).astype(np.float32)
    if not r.native_rows:
      return "", forced_B
    return [r.native_prefix if f else "" for f in forced_B], forced_B

  def __call__(self, params, problems, key, knobs, forced_prefix: str | None = None
               ) -> RolloutOutput:
    ctx = self.ctx
    prefixes, forced_B = self.prefixes(len(problems))
    if forced_prefix is not None:  # evaluation: one forced text for every row
      prefixes, forced_B = forced_prefix, np.ones(len(problems) * self.section.group_size,
                                                  np.float32) * bool(forced_prefix)
    out = tool_rollout(params, problems, [ctx.task.prompt_fn(p) for p in problems],
                       ctx.task.tool_env, ctx.tokenizer, key, knobs, model_cfg=ctx.model_cfg,
                       cfg=self.cfg, group_size=self.section.group_size,
                       forced_prefix=prefixes)
    extras = {}
    truncated = getattr(out, "truncated_responses_B", None)
    if truncated is not None:
      extras["tool/truncated_responses"] = np.asarray(truncated, np.float32)
    return RolloutOutput(rollout=sharding.to_host(out.rollout), texts=out.transcripts,
                         episodes=out.episodes, forced_B=forced_B, extras=extras)


@ROLLOUTS.register("generate")
def generate_rollout(*, ctx, section) -> GenerateRollout:
  return GenerateRollout(ctx, section)


@ROLLOUTS.register("tool")
def tool_rollout_part(*, ctx, section) -> ToolRollout:
  return ToolRollout(ctx, section)
