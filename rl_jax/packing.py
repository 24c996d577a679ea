"""Sequence packing for the update step: several sequences per row, segment ids, exact losses.

A rollout batch is the slot layout [B, L]: a left-padded prompt and a right-padded response per
row, so a batch of mixed response lengths is mostly padding, and the update's forward pass and
log-prob kernel pay for every slot. Packing moves each sequence's real tokens (valid slots, in
order) into rows of `row_len` slots, several sequences per row, each a *segment* with its own id:

    packed tokens_RxT   [p0 p0 p0 r0 r0 | p1 p1 r1 r1 r1 r1 | pad ...]     R << B rows
    segment_ids_RxT     [ 0  0  0  0  0 |  1  1  1  1  1  1 | -1 ...]

`qwen3.forward(..., segment_ids_BxT=)` lets a query see only its own segment and
`qwen3.packed_positions` restarts RoPE positions at each segment, so every token gets the hidden
state it has unpacked (tests/models/qwen3_packing_test.py): a sequence's positions in the slot
layout count its valid slots (`positions_from_mask`), which is exactly its packed offset.

Exact loss aggregation: the packed log-probs are gathered back into the batch's [B, L] layout
(`unpack_index_BxL`, a gather whose gradient is the matching scatter-add), and the loss runs there
unchanged. Every aggregation mode (token mean, per-sequence token mean, token sums over sequences,
Dr. GRPO's constant) and GSPO's sequence ratios see the same per-sequence numbers as without
packing; the only difference is the floating-point order inside the forward pass
(tests/algorithms/packing_test.py: loss and gradients within 1e-5 of unpacked, every mode). The
[B, L] loss is elementwise work, negligible next to the forward pass.

A token's log-prob is defined where it and its predecessor slot are valid (`token_logprobs`);
`target_valid_RxT` carries exactly that per packed slot, so layouts with gaps (tool episodes)
keep their unpacked meaning.

Micro-batches: the batch is packed per micro-batch (its B/M sequences into R_m rows, the same R_m
for every micro-batch), so the update's scan splits the packed rows and the [B, L] arrays alike
and a micro-batch never holds part of a sequence. R_m is rounded up to a multiple of
max(1, ceil(B/M / 8)) rows (at most 8 compiled shapes per batch shape) and so that M * R_m
divides over the mesh's batch shards.
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

PAD_SEGMENT = -1


@struct.dataclass
class PackedRows:
  """Packed rows of one batch, micro-batch by micro-batch (row block m holds micro-batch m).

  tokens_RxT: packed token ids; segment_ids_RxT: segment id per slot (0, 1, ... within a row,
  PAD_SEGMENT on trailing padding); valid_RxT: 1 on packed tokens; target_valid_RxT: 1 where
  the slot's log-prob is defined (the token and its predecessor slot were valid unpacked);
  unpack_index_BxL: for slot (b, l) of the unpacked batch, the flat index r * T + t of its
  packed slot within its micro-batch's rows, or -1 (invalid slot).
  """
  tokens_RxT: np.ndarray
  segment_ids_RxT: np.ndarray
  valid_RxT: np.ndarray
  target_valid_RxT: np.ndarray
  unpack_index_BxL: np.ndarray


def first_fit_decreasing(lengths, capacity: int) -> list[list[int]]:
  """Bins of indices whose lengths sum to <= capacity: longest first, each into the first bin
  with room (a new bin otherwise). Deterministic (ties keep index order)."""
  order = sorted(range(len(lengths)), key=lambda i: (-int(lengths[i]), i))
  bins, room = [], []
  for i in order:
    n = int(lengths[i])
    if n > capacity:
      raise ValueError(f"sequence {i} has {n} tokens, more than the packed row length {capacity}")
    for j, free in enumerate(room):
      if n <= free:
        bins[j].append(i)
        room[j] -= n
        break
    else:
      bins.append([i])
      room.append(capacity - n)
  return bins


def packed_row_count(rows_needed: int, rows_per_micro: int, num_microbatches: int,
                     batch_shards: int) -> int:
  """R_m: `rows_needed` rounded up to the shape quantum max(1, ceil(rows_per_micro / 8)), then
  until num_microbatches * R_m is a multiple of `batch_shards`."""
  quantum = max(1, -(-rows_per_micro // 8))
  r = max(1, -(-rows_needed // quantum) * quantum)
  step = batch_shards // math.gcd(batch_shards, num_microbatches)
  return -(-r // step) * step


def pack_rows(tokens_BxL, valid_BxL, *, num_microbatches: int = 1, row_len: int = 0,
              batch_shards: int = 1) -> PackedRows:
  """Packs the valid slots of each row of [B, L] (host numpy), per micro-batch.

  Args:
    tokens_BxL, valid_BxL: the batch's slot layout.
    num_microbatches: M; B must be divisible by it. Micro-batch m's sequences go to row block m.
    row_len: T, slots per packed row (0 = L: any sequence fits).
    batch_shards: data-parallel shards of the rows (the packed row count is made a multiple).
  """
  tokens_BxL, valid_BxL = np.asarray(tokens_BxL), np.asarray(valid_BxL).astype(bool)
  b, l = tokens_BxL.shape
  t = row_len or l
  if num_microbatches < 1 or b % num_microbatches:
    raise ValueError(f"pack_rows: {b} rows are not divisible into {num_microbatches} "
                     "micro-batches")
  per_micro = b // num_microbatches
  lengths_B = valid_BxL.sum(axis=1)
  bins = [first_fit_decreasing(lengths_B[m * per_micro:(m + 1) * per_micro], t)
          for m in range(num_microbatches)]
  r_m = packed_row_count(max(len(x) for x in bins), per_micro, num_microbatches, batch_shards)
  rows = num_microbatches * r_m
  tokens = np.zeros((rows, t), tokens_BxL.dtype)
  segments = np.full((rows, t), PAD_SEGMENT, np.int32)
  valid = np.zeros((rows, t), bool)
  target = np.zeros((rows, t), bool)
  index = np.full((b, l), -1, np.int32)
  # A slot's log-prob is defined where it and the slot before it are valid (token_logprobs).
  target_BxL = np.zeros((b, l), bool)
  target_BxL[:, 1:] = valid_BxL[:, 1:] & valid_BxL[:, :-1]
  for m, micro_bins in enumerate(bins):
    for r, members in enumerate(micro_bins):
      offset = 0
      for segment, local in enumerate(members):
        seq = m * per_micro + local
        slots = np.flatnonzero(valid_BxL[seq])
        span = slice(offset, offset + len(slots))
        row = m * r_m + r
        tokens[row, span] = tokens_BxL[seq, slots]
        segments[row, span] = segment
        valid[row, span] = True
        target[row, span] = target_BxL[seq, slots]
        index[seq, slots] = r * t + np.arange(offset, offset + len(slots))
        offset += len(slots)
  return PackedRows(tokens_RxT=tokens, segment_ids_RxT=segments, valid_RxT=valid,
                    target_valid_RxT=target, unpack_index_BxL=index)


def pack_batch(batch, *, num_microbatches: int, batch_shards: int = 1, row_len: int = 0):
  """`batch` (a `rl_jax.types.Batch`) with `packed` set to its `pack_rows`."""
  tokens, valid = jax.device_get((batch.tokens_BxL, batch.valid_BxL))
  return batch.replace(packed=pack_rows(tokens, valid, num_microbatches=num_microbatches,
                                        row_len=row_len, batch_shards=batch_shards))


def unpack(values_RxT, unpack_index_BxL):
  """[R, T] values of one micro-batch's packed rows -> the [B, L] layout (0 at index -1)."""
  flat = values_RxT.reshape(-1)
  index = jnp.asarray(unpack_index_BxL)
  return jnp.where(index >= 0, flat[jnp.maximum(index, 0)], 0.0)


def packing_stats(packed: PackedRows, valid_BxL) -> dict[str, float]:
  """Slots of the packed rows vs the unpacked batch, and the share of packed slots in use."""
  slots = float(np.size(packed.valid_RxT))
  return {"pack/slots_ratio": slots / float(np.size(valid_BxL)),
          "pack/fill": float(np.sum(packed.valid_RxT)) / max(slots, 1.0)}
