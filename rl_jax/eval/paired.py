"""Paired comparisons of two policies scored on the same held-out items, for the studies'
reports: the mean difference with a percentile bootstrap interval over items, and the exact
sign test on the items only one policy gets right."""
from __future__ import annotations

from typing import Sequence

import numpy as np


def paired_bootstrap(a: Sequence[float], b: Sequence[float], *, n: int = 2000, seed: int = 0
                     ) -> tuple[float, float, float]:
  """(mean of a - b, 2.5th and 97.5th percentiles of that mean over `n` resamples of the items
  with replacement). Paired: a[i] and b[i] score the same item."""
  if len(a) != len(b) or not len(a):
    raise ValueError(f"paired_bootstrap: expected two equal-length non-empty score lists, got "
                     f"{len(a)} and {len(b)}")
  d = np.asarray(a, float) - np.asarray(b, float)
  rng = np.random.default_rng(seed)
  means = d[rng.integers(0, len(d), (n, len(d)))].mean(axis=1)
  return float(d.mean()), float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def sign_test(a_only: int, b_only: int) -> float:
  """Two-sided exact binomial p-value of a_only successes in a_only + b_only fair trials (the
  items only a solves against those only b solves); 1.0 when there are none."""
  if a_only + b_only == 0:
    return 1.0
  from scipy import stats  # pylint: disable=g-import-not-at-top
  return float(stats.binomtest(a_only, a_only + b_only).pvalue)
