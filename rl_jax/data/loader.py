"""grain loaders of the supervised and preference stages: deterministic, checkpointable batches.

    batches = example_batches(source, encode, batch_size=B, seed_words=(seed, stage_id))
    arrays  = next(batches)            # (tokens_BxL, valid_BxL, loss_mask_BxL), numpy
    state   = batches.get_state()      # JSON; the loop saves it in the stage's checkpoint
    batches.set_state(state)           # a resumed stage reads the same next batches, bitwise

Order. Records are visited epoch by epoch; epoch e is the permutation
`np.random.default_rng([*seed_words, e]).permutation(n)` of the n records (`EpochOrder`, a
grain `MapDataset`), so the batches are a pure function of the seed, and the iterator's state
is grain's position in that sequence. Fixed-layout examples (SFT demonstrations, preference
pairs) take B records per step and leave out the last `n mod B` of each epoch (no short batch,
no example twice in an epoch). Pretraining documents are packed (`packed_batches`).

Packing (pretraining). Tokenised documents (EOS included) are packed first-fit into rows of L
tokens with grain's `FirstFitPackIterDataset` (B bins: documents are added in order to the first
row with room; when one does not fit anywhere, the B rows are emitted and a new set starts with
it). Each row carries `segment_ids_BxL` (1, 2, ... per document, 0 on padding); the loss masks
every document's first token (nothing in the row predicts it) and the model attends only within
a segment with positions restarting at each document (`rl_jax.sft.nll_loss`,
`rl_jax.models.qwen3.forward(segment_ids_BxT=...)`), so the packed loss is the loss of the
documents run one per row (tests/data/packing_test.py). A document longer than L is an error
naming its record index (it would otherwise be cut).

Multi-process runs. Every process reads only its own part of each global batch: grain's
`ShardByJaxProcess` gives (shard_index p, shard_count P); examples: rows [p B/P, (p+1) B/P) of
the step's B records; documents: every P-th document of the shuffled stream, packed into B/P
rows. `to_global` assembles the process-local rows into one global array
(`jax.make_array_from_process_local_data`). With one process this is the whole batch and
`to_global` is `rl_jax.sharding.shard_batch`. (RL prompt sampling stays replicated: every process
draws the same prompts, docs/architecture.md.)

State is JSON (ints and nested dicts), checked by `rl_jax.checkpoint`. Legacy providers of a
task (`TaskData.sft_batch` / `pretrain_batch(batch_size, rng)`) are wrapped as `StepBatches`
whose state is the step.
"""
from __future__ import annotations

import dataclasses
import functools
import json
from typing import Any, Callable, Sequence

import grain
import jax
import numpy as np
from grain import experimental as grain_experimental

from rl_jax import sharding

# Length of the (conceptually infinite) epoch-major record sequence.
_ENDLESS = 2**62


@dataclasses.dataclass(frozen=True)
class Corpus:
  """Pretraining documents through the data layer (`TaskData.pretrain_data`).

  source: random-access records (a tfds `ArrayRecordDataSource` from `rl_jax.data.builders`,
    or any sequence); tokens_fn(record, index) -> one document's token ids, EOS included;
  row_len: tokens per packed row (L)."""
  source: Sequence[Any]
  tokens_fn: Callable[[Any, int], Any]
  row_len: int


@dataclasses.dataclass(frozen=True)
class Examples:
  """Fixed-layout examples through the data layer (`TaskData.sft_data`).

  source: random-access records; encode(record, index) -> (tokens_L, valid_L, loss_mask_L),
  numpy, one example in the slot layout."""
  source: Sequence[Any]
  encode: Callable[[Any, int], tuple]


def process_shard() -> tuple[int, int]:
  """(shard_index, shard_count) of this process: grain's `ShardByJaxProcess`."""
  opts = grain.sharding.ShardByJaxProcess(drop_remainder=True)
  return opts.shard_index, opts.shard_count


class EpochOrder(grain.MapDataset):
  """Record indices, epoch-major: element i = permutation_e[i mod per_epoch] with
  e = i // per_epoch and permutation_e = default_rng([*seed_words, e]).permutation(n).
  `per_epoch` (<= n) leaves the last n - per_epoch records of each permutation out."""

  def __init__(self, n: int, seed_words: Sequence[int], per_epoch: int | None = None):
    super().__init__()
    if n < 1:
      raise ValueError(f"EpochOrder: no records to read (n={n})")
    self._n, self._seed_words = n, tuple(int(w) for w in seed_words)
    self._per_epoch = n if per_epoch is None else per_epoch
    if not 1 <= self._per_epoch <= n:
      raise ValueError(f"EpochOrder: per_epoch={per_epoch} must be in [1, {n}]")

  @functools.lru_cache(maxsize=2)
  def permutation(self, epoch: int) -> np.ndarray:
    return np.random.default_rng([*self._seed_words, epoch]).permutation(self._n)

  def __len__(self) -> int:
    return _ENDLESS

  def __getitem__(self, index):
    if isinstance(index, slice):
      return self.slice(index)
    epoch, offset = divmod(int(index), self._per_epoch)
    return int(self.permutation(epoch)[offset])

  def __str__(self) -> str:
    return f"EpochOrder(n={self._n}, per_epoch={self._per_epoch})"


def _plain(state: Any) -> Any:
  """grain state -> JSON values (numpy scalars to Python, tuples to lists)."""
  return json.loads(json.dumps(state, default=lambda x: x.item() if hasattr(x, "item")
                               else list(x)))


class Batches:
  """An endless iterator of host batches (tuples of numpy arrays) over a grain dataset.

  per_process: each process holds only its rows (combine them with `to_global`); False where
  every process reads the whole batch (one process, or a shard of (0, 1))."""

  def __init__(self, dataset, *, per_process: bool, by_step=None):
    self._dataset = dataset
    self._iter = iter(dataset)
    self.per_process = per_process
    self._by_step = by_step

  def at(self, step: int) -> tuple[np.ndarray, ...]:
    """The batch of step `step` (random access; example batches only), without moving."""
    if self._by_step is None:
      raise ValueError("packed batches are a stream: only the iterator state can seek them")
    return self._by_step[step]

  def __iter__(self):
    return self

  def __next__(self) -> tuple[np.ndarray, ...]:
    return next(self._iter)

  def get_state(self) -> dict[str, Any]:
    return _plain(self._iter.get_state())

  def set_state(self, state: dict[str, Any]) -> None:
    self._iter.set_state(state)


class StepBatches:
  """A `(batch_size, rng) -> arrays` provider as an iterator: step s calls it with
  `default_rng([*seed_words, s])`. Every process computes the whole batch (per_process False)."""

  per_process = False

  def __init__(self, provider: Callable[[int, np.random.Generator], tuple], batch_size: int,
               seed_words: Sequence[int]):
    self._provider, self._batch_size = provider, batch_size
    self._seed_words, self._step = tuple(seed_words), 0

  def __iter__(self):
    return self

  def __next__(self) -> tuple[np.ndarray, ...]:
    out = self._provider(self._batch_size,
                         np.random.default_rng([*self._seed_words, self._step]))
    self._step += 1
    return tuple(out)

  def get_state(self) -> dict[str, Any]:
    return {"step": self._step}

  def set_state(self, state: dict[str, Any]) -> None:
    self._step = int(state["step"])


def _no_prefetch(ds: grain.MapDataset) -> grain.IterDataset:
  # The host work per batch is small; threads would only compete with XLA for the cores.
  return ds.to_iter_dataset(grain.ReadOptions(num_threads=0, prefetch_buffer_size=0))


def _local_rows(batch_size: int, shard: tuple[int, int], what: str) -> int:
  index, count = shard
  if batch_size % count:
    raise ValueError(f"{what}: batch_size={batch_size} must be a multiple of the number of "
                     f"processes ({count}): each process reads batch_size / {count} rows")
  return batch_size // count


def example_batches(source: Sequence[Any], encode: Callable[[Any, int], tuple], *,
                    batch_size: int, seed_words: Sequence[int],
                    shard: tuple[int, int] | None = None, what: str = "examples") -> Batches:
  """Fixed-layout examples, B per step (module docstring).

  encode(record, record_index) -> tuple of numpy arrays [L] (one example's rows, e.g. tokens,
  valid, loss_mask); raise ValueError naming the index for a malformed record."""
  n = len(source)
  if n < batch_size:
    raise ValueError(f"{what}: batch_size={batch_size} is more than the {n} records")
  shard = process_shard() if shard is None else shard
  local = _local_rows(batch_size, shard, what)
  start = shard[0] * local

  def read(rows: np.ndarray) -> tuple[np.ndarray, ...]:
    examples = [encode(source[int(i)], int(i)) for i in rows[start:start + local]]
    return tuple(np.stack(parts) for parts in zip(*examples))

  order = EpochOrder(n, seed_words, per_epoch=(n // batch_size) * batch_size)
  ds = order.batch(batch_size, batch_fn=np.asarray).map(read)
  return Batches(_no_prefetch(ds), by_step=ds, per_process=shard[1] > 1)


def packed_batches(source: Sequence[Any], tokens_fn: Callable[[Any, int], np.ndarray], *,
                   batch_size: int, row_len: int, seed_words: Sequence[int],
                   shard: tuple[int, int] | None = None, what: str = "documents") -> Batches:
  """Documents packed into rows (module docstring): batches of (tokens_BxL int32,
  valid_BxL bool, loss_mask_BxL f32, segment_ids_BxL int32).

  tokens_fn(record, record_index) -> int ids of one document (EOS included)."""
  shard = process_shard() if shard is None else shard
  rows = _local_rows(batch_size, shard, what)

  def tokens(index: int) -> dict[str, np.ndarray]:
    ids = np.asarray(tokens_fn(source[index], index), np.int32)
    if ids.ndim != 1 or not 1 <= ids.size <= row_len:
      raise ValueError(f"{what}: record {index} has {ids.size} tokens; a document must have "
                       f"1 to {row_len} (the row length) tokens, EOS included")
    return {"tokens": ids}

  docs = EpochOrder(len(source), seed_words)[shard[0]::shard[1]].map(tokens)
  packed = grain_experimental.FirstFitPackIterDataset(
      _no_prefetch(docs), length_struct={"tokens": row_len}, num_packing_bins=rows,
      shuffle_bins=False)
  return Batches(packed.batch(rows, drop_remainder=True).map(_packed_arrays),
                 per_process=shard[1] > 1)


def _packed_arrays(batch: dict[str, np.ndarray]) -> tuple[np.ndarray, ...]:
  """grain's packed features -> (tokens, valid, loss_mask, segment_ids); the first token of a
  document (position 0) has nothing before it in its segment to predict it: loss 0."""
  segment_ids = np.asarray(batch["tokens_segment_ids"], np.int32)
  valid = segment_ids > 0
  loss_mask = (valid & (np.asarray(batch["tokens_positions"]) > 0)).astype(np.float32)
  return np.asarray(batch["tokens"], np.int32), valid, loss_mask, segment_ids


def to_global(arrays: Sequence[np.ndarray], mesh, *, per_process: bool):
  """Host rows -> arrays on `mesh` with the batch layout (rows over data and fsdp).

  per_process: `arrays` are this process's rows of the global batch (`Batches`); otherwise every
  process holds the whole batch (`rl_jax.sharding.shard_batch`)."""
  arrays = list(arrays)
  if not per_process or jax.process_count() == 1 or mesh is None:
    return sharding.shard_batch(arrays, mesh)
  global_shapes = [(a.shape[0] * jax.process_count(), *a.shape[1:]) for a in arrays]
  specs = sharding.batch_specs([jax.ShapeDtypeStruct(s, a.dtype)
                                for s, a in zip(global_shapes, arrays)], mesh)
  for shape, spec in zip(global_shapes, specs):
    if not spec or spec[0] is None:  # replicated rows: each process would need all of them
      raise ValueError(f"a global batch of {shape[0]} rows does not split over the mesh's "
                       f"batch axes {sharding.BATCH_AXES}: make batch_size a multiple of "
                       "their size, so each process holds only its rows")
  return [jax.make_array_from_process_local_data(s, a, g)
          for s, a, g in zip(sharding.named_shardings(mesh, specs), arrays, global_shapes)]
