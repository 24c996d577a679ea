"""Paired comparisons against hand-computed values."""
import numpy as np
import pytest

from rl_jax.eval import paired


def test_sign_test_is_the_exact_two_sided_binomial():
  # 1 vs 3 discordant items: P(X <= 1) + P(X >= 3) for X ~ Bin(4, 1/2) = (1 + 4 + 4 + 1) / 16.
  assert paired.sign_test(1, 3) == pytest.approx(10 / 16)
  # 0 vs 5: 2 / 32.
  assert paired.sign_test(0, 5) == pytest.approx(2 / 32)
  assert paired.sign_test(0, 0) == 1.0


def test_paired_bootstrap_mean_and_interval():
  d, lo, hi = paired.paired_bootstrap([2.0, 3.0, 4.0], [1.0, 2.0, 3.0])
  assert (d, lo, hi) == (1.0, 1.0, 1.0)  # a constant difference has no spread
  a = np.r_[np.ones(50), np.zeros(50)]
  d, lo, hi = paired.paired_bootstrap(a, np.zeros(100), seed=3)
  # mean 0.5; the interval of a proportion of 100 is about +-0.1 (1.96 * sqrt(.25 / 100)).
  assert d == 0.5 and 0.37 < lo < 0.43 and 0.57 < hi < 0.63
  with pytest.raises(ValueError, match="equal-length non-empty"):
    paired.paired_bootstrap([], [])
  with pytest.raises(ValueError, match="got 2 and 1"):
    paired.paired_bootstrap([1, 0], [1])


def test_sign_comparison_counts_by_hand():
  # items: both right, only a, only a, only b, neither -> a 3, b 2, a_only 2, b_only 1;
  # sign test on 3 discordant items with 2 successes: P(X <= 1 or X >= 2) = 1.
  out = paired.sign_comparison([1, 1, True, 0, 0], [1, 0, False, 1, 0])
  assert out == {"a": 3, "b": 2, "a_only": 2, "b_only": 1, "n": 5, "p": 1.0}
  with pytest.raises(ValueError, match="equal-length"):
    paired.sign_comparison([1, 0], [1])
