"""Text <-> the slot layout shared by SFT, rollout and the trainer.

Prompts are left-padded to P slots (so every prompt ends at slot P-1 and generation starts at
slot P); completions follow and are right-padded to P + N. RoPE positions skip the padding
(`rl_jax.models.qwen3.positions_from_mask`), so SFT examples and sampled rollouts see identical
positions for identical text.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from rl_jax.tokenizers import Tokenizer


def encode_prompts(tokenizer: Tokenizer, prompts: Sequence[str], prompt_len: int):
  """Left-padded prompt ids and validity, numpy [B, P]; a too-long prompt is an error."""
  tokens = np.full((len(prompts), prompt_len), tokenizer.pad_id, np.int32)
  valid = np.zeros((len(prompts), prompt_len), bool)
  for i, text in enumerate(prompts):
    ids = tokenizer.encode(text)
    if len(ids) > prompt_len:
      raise ValueError(f"prompt {i} has {len(ids)} tokens, more than prompt_len={prompt_len}: "
                       f"{text[:60]!r}...; raise the config's prompt_len")
    if ids:
      tokens[i, prompt_len - len(ids):] = ids
      valid[i, prompt_len - len(ids):] = True
  return tokens, valid


def encode_examples(tokenizer: Tokenizer, prompts: Sequence[str], completions: Sequence[str],
                    prompt_len: int, max_new_tokens: int):
  """SFT examples in the rollout layout: (tokens, valid, loss_mask), numpy [B, P + N].

  The completion is followed by EOS, which is trained on (the policy must learn to stop).
  """
  if len(prompts) != len(completions):
    raise ValueError(f"{len(prompts)} prompts but {len(completions)} completions")
  tokens, valid = encode_prompts(tokenizer, prompts, prompt_len)
  batch = len(prompts)
  resp = np.full((batch, max_new_tokens), tokenizer.pad_id, np.int32)
  resp_valid = np.zeros((batch, max_new_tokens), bool)
  for i, text in enumerate(completions):
    ids = tokenizer.encode(text) + [tokenizer.eos_id]
    if len(ids) > max_new_tokens:
      raise ValueError(f"completion {i} has {len(ids)} tokens (with EOS), more than "
                       f"max_new_tokens={max_new_tokens}: {text[:60]!r}")
    resp[i, :len(ids)] = ids
    resp_valid[i, :len(ids)] = True
  loss_mask = np.concatenate([np.zeros_like(valid), resp_valid], axis=1).astype(np.float32)
  return (np.concatenate([tokens, resp], axis=1), np.concatenate([valid, resp_valid], axis=1),
          loss_mask)


def decode_responses(tokenizer: Tokenizer, tokens_BxL, loss_mask_BxL, prompt_len: int,
                     stop_ids: Sequence[int] = ()) -> list[str]:
  """Response text of each row: masked-in generated tokens, stop tokens removed."""
  tokens = np.asarray(tokens_BxL)[:, prompt_len:]
  mask = np.asarray(loss_mask_BxL)[:, prompt_len:] > 0
  stops = set(int(s) for s in stop_ids) | {tokenizer.eos_id}
  return [tokenizer.decode([int(t) for t, m in zip(row, keep) if m and int(t) not in stops])
          for row, keep in zip(tokens, mask)]
