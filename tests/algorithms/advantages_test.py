"""Advantages vs numpy formulas from SPEC §0.1-0.2 (GRPO, Dr. GRPO, RLOO, process supervision)."""
import functools

import jax
import numpy as np
import pytest

from rl_jax.algorithms import advantages


def test_group_advantages_grpo_and_dr_grpo_match_numpy():
  rng = np.random.default_rng(0)
  rewards = rng.normal(size=12).astype(np.float32)
  rewards[4:8] = 0.5  # a zero-variance group
  for normalize, ddof in (("std", 1), ("std", 0), ("none", 1)):
    got = advantages.group_advantages(rewards, group_size=4, normalize=normalize, std_ddof=ddof)
    expected = []
    for g in range(3):
      r = rewards[4 * g:4 * g + 4].astype(np.float64)
      centred = r - r.mean()
      if normalize == "std":
        std = np.sqrt(((r - r.mean()) ** 2).sum() / (4 - ddof))
        centred = centred / (std + 1e-6)
      expected.extend(centred)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    assert np.isfinite(got).all() and (np.asarray(got)[4:8] == 0).all()


def test_group_advantages_default_is_unbiased_std_like_trl():
  # Group [0, 1]: mean 0.5, unbiased std 0.7071 -> A = +-0.7071 (population std would give +-1).
  got = advantages.group_advantages(np.array([0.0, 1.0]), group_size=2)
  np.testing.assert_allclose(got, [-0.5 / np.sqrt(0.5), 0.5 / np.sqrt(0.5)], rtol=1e-5)


def test_integer_rewards_are_not_truncated():
  got = advantages.group_advantages(np.array([0, 1, 1, 1], np.int32), group_size=4,
                                    normalize="none")
  np.testing.assert_allclose(got, [-0.75, 0.25, 0.25, 0.25])


def test_rloo_matches_leave_one_out():
  rng = np.random.default_rng(1)
  rewards = rng.normal(size=9)
  got = advantages.rloo_advantages(rewards, group_size=3)
  expected = [rewards[i] - np.mean([rewards[j] for j in range(3 * (i // 3), 3 * (i // 3) + 3)
                                    if j != i]) for i in range(9)]
  np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
  with pytest.raises(ValueError, match="group_size >= 2"):
    advantages.rloo_advantages(rewards, group_size=1)


def test_bad_group_shape_raises_clear_error_even_under_jit():
  with pytest.raises(ValueError, match=r"batch 10 is not divisible by group_size 4 \(in here\)"):
    advantages.check_group_shape(10, 4, "here")
  fn = jax.jit(functools.partial(advantages.group_advantages, group_size=4))
  with pytest.raises(ValueError, match="batch 10 is not divisible by group_size 4"):
    fn(np.zeros(10, np.float32))
  with pytest.raises(ValueError, match="normalize"):
    advantages.group_advantages(np.zeros(4), group_size=4, normalize="batch")
  with pytest.raises(ValueError, match="degrees of freedom"):
    advantages.group_advantages(np.zeros(4), group_size=1)


def np_process_advantages(step_r, step_end, step_mask, group_size, seq_len, ddof=1, eps=1e-6):
  out = np.zeros((step_r.shape[0], seq_len))
  for g in range(step_r.shape[0] // group_size):
    rows = range(g * group_size, (g + 1) * group_size)
    vals = [step_r[i, k] for i in rows for k in range(step_r.shape[1]) if step_mask[i, k]]
    if not vals:
      continue
    mean = np.mean(vals)
    std = np.sqrt(np.sum((np.array(vals) - mean) ** 2) / max(len(vals) - ddof, 1))
    for i in rows:
      for t in range(seq_len):
        out[i, t] = sum((step_r[i, k] - mean) / (std + eps) for k in range(step_r.shape[1])
                        if step_mask[i, k] and step_end[i, k] >= t)
  return out


def test_process_advantages_match_numpy():
  rng = np.random.default_rng(2)
  batch, steps, seq_len = 6, 4, 10
  step_r = rng.normal(size=(batch, steps)).astype(np.float32)
  step_end = np.sort(rng.integers(0, seq_len + 3, (batch, steps)), axis=1)  # some end past T
  step_mask = rng.random((batch, steps)) < 0.7
  step_mask[3:6] = False  # group 1 has no valid step at all
  step_r[~step_mask] = np.nan  # invalid steps may hold anything
  got = advantages.process_advantages(step_r, step_end, step_mask, group_size=3, seq_len=seq_len)
  expected = np_process_advantages(np.nan_to_num(step_r), step_end, step_mask, 3, seq_len)
  np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
  assert (np.asarray(got)[3:6] == 0).all()


def test_process_advantages_hand_values():
  # One group of 2 responses, 2 steps each; rewards [1, 0] and [0, 1] -> mean 0.5, std
  # (ddof=0) 0.5 -> normalised [+1, -1] and [-1, +1]. Response 0's steps end at tokens 1 and 3.
  got = advantages.process_advantages(
      np.array([[1.0, 0.0], [0.0, 1.0]]), np.array([[1, 3], [0, 2]]),
      np.ones((2, 2), bool), group_size=2, seq_len=5, std_ddof=0, eps=0.0)
  np.testing.assert_allclose(got, [[0.0, 0.0, -1.0, -1.0, 0.0], [0.0, 1.0, 1.0, 0.0, 0.0]],
                             atol=1e-6)
  with pytest.raises(ValueError, match="batch 2 is not divisible by group_size 4"):
    advantages.process_advantages(np.zeros((2, 2)), np.zeros((2, 2), int), np.ones((2, 2)),
                                  group_size=4, seq_len=5)


@pytest.mark.parametrize("bad,shown", [(np.nan, "nan"), (np.inf, "inf"), (-np.inf, "-inf")])
@pytest.mark.parametrize("fn", [advantages.group_advantages, advantages.rloo_advantages])
def test_non_finite_rewards_are_refused_with_their_row(fn, bad, shown):
  # Before the check, group [1, nan] gave [nan, nan] advantages silently.
  rewards = np.array([1.0, bad, 0.0, 1.0], np.float32)
  for as_array in (np.asarray, jax.numpy.asarray):  # host and concrete device arrays
    with pytest.raises(ValueError) as info:
      fn(as_array(rewards), group_size=2)
    message = str(info.value)
    assert f"row 1 = {shown}" in message and "rewards_B must be finite" in message
    assert "row 0" not in message and "row 2" not in message


def test_non_finite_rewards_error_lists_rows_and_counts_the_rest():
  rewards = np.zeros(16, np.float32)
  rewards[[2, 3, 5, 7, 11, 13, 15]] = np.nan
  with pytest.raises(ValueError, match=r"at row 2 = nan, row 3 = nan, row 5 = nan, row 7 = nan, "
                                       r"row 11 = nan \(and 2 more\) \(in group_advantages\)"):
    advantages.group_advantages(rewards, group_size=4)


def test_finite_rewards_are_unchanged_by_the_check():
  # Group [1, 0] -> mean 0.5, unbiased std sqrt(0.5): A = +-0.5 / sqrt(0.5) (hand computed).
  a = 0.5 / np.sqrt(0.5)
  np.testing.assert_allclose(
      advantages.group_advantages(np.array([1.0, 0.0, 3.0, 3.0]), group_size=2),
      [a, -a, 0.0, 0.0], rtol=1e-5)
  np.testing.assert_allclose(
      advantages.rloo_advantages(np.array([1.0, 0.0, 3.0, 5.0]), group_size=2),
      [1.0, -1.0, -2.0, 2.0])


def test_traced_rewards_cannot_be_checked_and_give_nan():
  # Documented limitation: under jit the values are unknown at trace time, nothing is raised.
  fn = jax.jit(functools.partial(advantages.group_advantages, group_size=2))
  got = np.asarray(fn(np.array([1.0, np.nan, 0.0, 1.0], np.float32)))
  assert np.isnan(got[:2]).all() and np.isfinite(got[2:]).all()


@pytest.mark.parametrize("bad,shown", [(np.nan, "nan"), (np.inf, "inf"), (-np.inf, "-inf")])
def test_process_non_finite_valid_step_is_refused_with_row_and_step(bad, shown):
  step_r = np.array([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5], [0.0, 0.0]])
  step_r[2, 1] = bad
  with pytest.raises(ValueError, match=rf"row 2 step 1 = {shown} \(in process_advantages\)"):
    advantages.process_advantages(step_r, np.ones((4, 2), int), np.ones((4, 2), bool),
                                  group_size=2, seq_len=3)
  # The same value in a masked-off step is padding and stays ignored.
  mask = np.ones((4, 2), bool)
  mask[2, 1] = False
  got = advantages.process_advantages(step_r, np.ones((4, 2), int), mask, group_size=2,
                                      seq_len=3)
  assert np.isfinite(np.asarray(got)).all()


@pytest.mark.parametrize("reward", [0.3, 0.7, 0.1, 1 / 3, 0.55])
def test_a_group_of_equal_fractional_rewards_gets_exactly_zero_advantage(reward):
  """float32 means of equal fractional rewards are not the reward itself (0.3 x 8 -> mean off
  by ~3e-8), and dividing that by std + eps (std ~1e-8, eps 1e-6) used to give every sample of
  the group the same spurious advantage (0.029 for 0.3): hand-computed value is 0."""
  r = np.float32([reward] * 8 + [0.0, 1.0] * 4)
  for adv in (advantages.group_advantages(r, group_size=8),
              advantages.group_advantages(r, group_size=8, normalize="none"),
              advantages.rloo_advantages(r, group_size=8)):
    np.testing.assert_array_equal(np.asarray(adv)[:8], 0.0)
    assert np.all(np.asarray(adv)[8:] != 0.0)
  steps = np.float32([[reward, reward]] * 4)
  adv_BxT = advantages.process_advantages(steps, np.int32([[1, 3]] * 4), np.ones((4, 2), bool),
                                          group_size=4, seq_len=4)
  np.testing.assert_array_equal(np.asarray(adv_BxT), 0.0)
