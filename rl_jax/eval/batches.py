"""Held-out problems in fixed-size chunks, the last padded, for the evaluators' rollouts.

    for chunk, padded, out in batches.rollout_chunks(rollout, params, problems, key, greedy,
                                                     batch_size):
      records += [record(p, t) for p, t in zip(chunk, out.texts[:len(chunk)])]

Every call of the rollout gets `batch_size` problems, so it compiles once: the last chunk is
padded with copies of its last problem, whose outputs come after the chunk's own and are
dropped by the caller (`chunk` has the real ones, `padded` all that were rolled out, e.g. for a
scorer that takes the rollout's whole batch).
"""
from __future__ import annotations

from typing import Any, Callable, Iterator, Sequence, TypeVar

import jax

T = TypeVar("T")


def padded_chunks(items: Sequence[T], batch_size: int) -> Iterator[tuple[int, list[T],
                                                                         list[T]]]:
  """(start, chunk, padded) in order: chunk = items[start:start + batch_size], padded = chunk
  followed by copies of its last item up to `batch_size` items."""
  for start in range(0, len(items), batch_size):
    chunk = list(items[start:start + batch_size])
    yield start, chunk, chunk + [chunk[-1]] * (batch_size - len(chunk))


def rollout_chunks(rollout: Callable[..., Any], params, problems: Sequence[T], key: jax.Array,
                   knobs, batch_size: int, **rollout_kwargs
                   ) -> Iterator[tuple[list[T], list[T], Any]]:
  """(chunk, padded, out) per chunk of `padded_chunks`: out = rollout(params, padded, key folded
  with the chunk's start, knobs, **rollout_kwargs), so every chunk draws with its own key."""
  for start, chunk, padded in padded_chunks(problems, batch_size):
    yield chunk, padded, rollout(params, padded, jax.random.fold_in(key, start), knobs,
                                 **rollout_kwargs)
