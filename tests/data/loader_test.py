"""grain loaders: epoch order against numpy, first-fit packing against a hand-written packer,
JSON iterator state that resumes bitwise, per-process shards, and errors naming the record."""
import json

import numpy as np
import pytest

from rl_jax.data import loader


def _examples(n):
  """Record i is the int i; its example is three rows of length 4 derived from it."""
  return list(range(n)), lambda r, i: (np.full(4, r, np.int32), np.arange(4) < r % 4 + 1,
                                       np.full(4, r / 10, np.float32))


def test_example_batches_are_one_numpy_permutation_per_epoch():
  source, encode = _examples(10)
  batches = loader.example_batches(source, encode, batch_size=4, seed_words=(3, 9),
                                   shard=(0, 1))
  rows = [next(batches)[0][:, 0] for _ in range(6)]
  for step, got in enumerate(rows):  # 2 steps per epoch; the last 2 of each epoch left out
    epoch, offset = divmod(step, 2)
    order = np.random.default_rng([3, 9, epoch]).permutation(10)
    np.testing.assert_array_equal(got, order[4 * offset:4 * offset + 4])
  np.testing.assert_array_equal(batches.at(4)[0][:, 0], rows[4])
  tokens, valid, mask = batches.at(0)
  assert tokens.shape == valid.shape == mask.shape == (4, 4) and valid.dtype == bool


def test_example_state_round_trips_through_json_bitwise():
  source, encode = _examples(7)
  batches = loader.example_batches(source, encode, batch_size=3, seed_words=(1,), shard=(0, 1))
  for _ in range(5):
    next(batches)
  state = json.loads(json.dumps(batches.get_state()))
  want = [next(batches) for _ in range(4)]
  fresh = loader.example_batches(source, encode, batch_size=3, seed_words=(1,), shard=(0, 1))
  fresh.set_state(state)
  for a, b in zip(want, [next(fresh) for _ in range(4)]):
    for x, y in zip(a, b):
      np.testing.assert_array_equal(x, y)


def test_each_process_reads_its_rows_of_the_global_batch():
  source, encode = _examples(12)
  whole = loader.example_batches(source, encode, batch_size=6, seed_words=(2,), shard=(0, 1))
  parts = [loader.example_batches(source, encode, batch_size=6, seed_words=(2,), shard=(p, 3))
           for p in range(3)]
  for _ in range(3):
    want = next(whole)
    got = [next(p) for p in parts]
    assert got[0][0].shape == (2, 4)
    for i, x in enumerate(want):
      np.testing.assert_array_equal(np.concatenate([g[i] for g in got]), x)
  with pytest.raises(ValueError, match="batch_size=6 must be a multiple of the number of "
                                       r"processes \(4\)"):
    loader.example_batches(source, encode, batch_size=6, seed_words=(2,), shard=(0, 4))


def _docs(n, seed=0):
  rng = np.random.default_rng(seed)
  return [100 * i + np.arange(rng.integers(1, 7)) for i in range(n)]


def _first_fit_reference(docs, order, bins, row_len, num_batches):
  """Hand-written first-fit: each document (in `order`) goes to the first of `bins` rows with
  room; one that fits nowhere closes the set of rows (emitted in row order)."""
  batches, current, it = [], [[] for _ in range(bins)], iter(order)
  while len(batches) < num_batches:
    doc = docs[next(it)]
    for row in current:
      if sum(map(len, row)) + len(doc) <= row_len:
        row.append(doc)
        break
    else:
      batches.append(current)
      current = [[doc]] + [[] for _ in range(bins - 1)]
  tokens = np.zeros((num_batches, bins, row_len), np.int32)
  segments = np.zeros_like(tokens)
  first = np.zeros(tokens.shape, bool)
  for b, rows in enumerate(batches):
    for r, row in enumerate(rows):
      at = 0
      for s, doc in enumerate(row, start=1):
        tokens[b, r, at:at + len(doc)], segments[b, r, at:at + len(doc)] = doc, s
        first[b, r, at] = True
        at += len(doc)
  return tokens, segments, first


def test_packed_rows_are_first_fit_with_segment_ids_and_a_masked_first_token():
  docs = _docs(30)
  batches = loader.packed_batches(docs, lambda r, i: r, batch_size=3, row_len=8,
                                  seed_words=(5,), shard=(0, 1))
  order = np.concatenate([np.random.default_rng([5, e]).permutation(30) for e in range(3)])
  tokens, segments, first = _first_fit_reference(docs, order, 3, 8, 4)
  for b in range(4):
    t, valid, mask, seg = next(batches)
    np.testing.assert_array_equal(t, tokens[b])
    np.testing.assert_array_equal(seg, segments[b])
    np.testing.assert_array_equal(valid, segments[b] > 0)
    np.testing.assert_array_equal(mask, ((segments[b] > 0) & ~first[b]).astype(np.float32))


def test_packed_state_round_trips_and_shards_are_disjoint():
  docs = _docs(40, seed=1)
  make = lambda shard: loader.packed_batches(docs, lambda r, i: r, batch_size=4, row_len=10,
                                             seed_words=(8,), shard=shard)
  batches = make((0, 1))
  for _ in range(3):
    next(batches)
  state = json.loads(json.dumps(batches.get_state()))
  want = [next(batches) for _ in range(3)]
  fresh = make((0, 1))
  fresh.set_state(state)
  for a, b in zip(want, [next(fresh) for _ in range(3)]):
    for x, y in zip(a, b):
      np.testing.assert_array_equal(x, y)
  # Two processes: each packs every second document of the shuffled stream into 2 rows.
  seen = []
  for p in range(2):
    t, _, _, seg = next(make((p, 2)))
    assert t.shape == (2, 10)
    seen.append({int(x) // 100 for x in t[seg > 0]})
  assert not seen[0] & seen[1]
  order = np.random.default_rng([8, 0]).permutation(40)
  assert seen[0] <= set(order[0::2].tolist()) and seen[1] <= set(order[1::2].tolist())


def test_a_document_longer_than_a_row_names_its_record():
  docs = [np.arange(3), np.arange(12), np.arange(2)]
  batches = loader.packed_batches(docs, lambda r, i: r, batch_size=1, row_len=5,
                                  seed_words=(0,), shard=(0, 1), what="corpus 'x'")
  with pytest.raises(ValueError, match=r"corpus 'x': record 1 has 12 tokens; a document must "
                                       r"have 1 to 5"):
    for _ in range(4):
      next(batches)


def test_step_batches_pass_the_step_rng_and_keep_the_step_as_state():
  calls = []
  provider = lambda b, rng: (calls.append(b) or np.full((b, 2), rng.integers(1 << 30)),)
  batches = loader.StepBatches(provider, 2, (4, 6))
  first = [next(batches)[0] for _ in range(3)]
  assert batches.get_state() == {"step": 3}
  batches.set_state({"step": 1})
  np.testing.assert_array_equal(next(batches)[0], first[1])
  np.testing.assert_array_equal(
      first[2], np.full((2, 2), np.random.default_rng([4, 6, 2]).integers(1 << 30)))
