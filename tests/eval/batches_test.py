"""Fixed-size chunks of held-out problems (rl_jax.eval.batches): the last padded with copies of
its last problem, and each chunk's rollout called with the key folded by the chunk's start."""
import jax
import numpy as np

from rl_jax.eval import batches


def test_padded_chunks_by_hand():
  assert list(batches.padded_chunks(["a", "b", "c", "d", "e"], 2)) == [
      (0, ["a", "b"], ["a", "b"]), (2, ["c", "d"], ["c", "d"]), (4, ["e"], ["e", "e"])]
  assert list(batches.padded_chunks(("a", "b", "c"), 3)) == [(0, ["a", "b", "c"],
                                                              ["a", "b", "c"])]
  assert list(batches.padded_chunks((), 4)) == []


def test_rollout_chunks_calls_the_rollout_per_padded_chunk():
  calls = []

  def rollout(params, padded, key, knobs, **kwargs):
    calls.append((params, padded, np.asarray(jax.random.key_data(key)), knobs, kwargs))
    return f"out{len(calls)}"

  key = jax.random.key(7)
  got = list(batches.rollout_chunks(rollout, "P", [1, 2, 3], key, "greedy", 2, prefix="x"))
  assert got == [([1, 2], [1, 2], "out1"), ([3], [3, 3], "out2")]
  assert [c[1] for c in calls] == [[1, 2], [3, 3]]
  assert all(c[0] == "P" and c[3] == "greedy" and c[4] == {"prefix": "x"} for c in calls)
  for (_, _, key_data, _, _), start in zip(calls, (0, 2)):
    np.testing.assert_array_equal(
        key_data, np.asarray(jax.random.key_data(jax.random.fold_in(key, start))))
