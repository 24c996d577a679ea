"""DAPO overlong penalty (hand values from SPEC §0.3) and dynamic sampling."""
import numpy as np
import pytest

from rl_jax.algorithms import dapo


def test_overlong_penalty_hand_values():
  # max_len 20, cache_len 4: free up to 16 tokens, linear ramp to -1 at 20, then -1.
  lengths = np.array([0, 16, 17, 18, 20, 21, 1000])
  got = dapo.overlong_penalty(lengths, max_len=20, cache_len=4)
  np.testing.assert_allclose(got, [0.0, 0.0, -0.25, -0.5, -1.0, -1.0, -1.0])
  assert got.dtype == np.float32
  # Paper values: 20480 / 4096; 18432 tokens is halfway along the ramp.
  np.testing.assert_allclose(dapo.overlong_penalty(np.array([18432]), max_len=20480,
                                                   cache_len=4096), [-0.5])


def test_overlong_penalty_rejects_non_token_lengths():
  with pytest.raises(ValueError, match="integer array of token counts"):
    dapo.overlong_penalty(np.array([3.5]), max_len=20, cache_len=4)
  with pytest.raises(ValueError, match="cache_len <= max_len"):
    dapo.overlong_penalty(np.array([3]), max_len=4, cache_len=8)


def test_dynamic_sampling_keep():
  rewards = np.array([1, 1, 1,  0, 1, 0,  0, 0, 0,  0.5, 0.5, 0.5 + 1e-6])
  np.testing.assert_array_equal(dapo.dynamic_sampling_keep(rewards, group_size=3),
                                [False, True, False, True])
  with pytest.raises(ValueError, match="batch 12 is not divisible by group_size 5"):
    dapo.dynamic_sampling_keep(rewards, group_size=5)
  with pytest.raises(ValueError, match="NaN"):
    dapo.dynamic_sampling_keep(np.array([np.nan, 1.0]), group_size=2)


def test_fill_groups_collects_exactly_target_groups():
  # Each draw: 3 groups of 2 with ids; groups with equal rewards must be skipped.
  draws = iter([
      (np.array([1, 1, 0, 1, 0, 0]), {"id": np.arange(0, 6), "x": np.zeros((6, 3))}),
      (np.array([0, 0, 1, 1, 1, 1]), {"id": np.arange(6, 12), "x": np.ones((6, 3))}),
      (np.array([1, 0, 0, 1, 0, 0]), {"id": np.arange(12, 18), "x": np.ones((6, 3))}),
  ])
  rewards, payload, info = dapo.fill_groups(lambda: next(draws), group_size=2, target_groups=2,
                                            max_draws=5)
  np.testing.assert_array_equal(payload["id"], [2, 3, 12, 13])  # the 3rd draw's surplus dropped
  np.testing.assert_array_equal(rewards, [0, 1, 1, 0])
  assert payload["x"].shape == (4, 3)
  assert info == dict(num_draws=3, groups_seen=9, groups_kept=3)


def test_fill_groups_fails_clearly_when_it_cannot_fill():
  draw = lambda: (np.ones(4), np.arange(4))
  with pytest.raises(RuntimeError, match="kept 0 of 4 groups in 2 draws"):
    dapo.fill_groups(draw, group_size=2, target_groups=1, max_draws=2)
  with pytest.raises(ValueError, match="leading dimension B=4"):
    dapo.fill_groups(lambda: (np.array([0, 1, 0, 1]), np.arange(3)), group_size=2,
                     target_groups=1, max_draws=1)
