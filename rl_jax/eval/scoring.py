"""Sample-based scores: unbiased pass@k, majority voting (maj@n), in plain numpy / Python.

pass@k (Chen et al. 2021, "Evaluating Large Language Models Trained on Code", arXiv 2107.03374,
eq. 1): draw n >= k samples per problem, count the c correct ones, and estimate the probability
that at least one of k samples is correct without bias as

    pass@k = 1 - C(n - c, k) / C(n, k).

The binomials overflow for realistic n, so (as in the paper's reference code) the ratio is
computed as a product of k-independent factors:

    C(n - c, k) / C(n, k) = prod_{j=0}^{k-1} (n - c - j) / (n - j)
                          = prod_{i=n-c+1}^{n} (1 - k / i),

which is exactly 0 when n - c < k (some k-subset must contain a correct sample), so pass@k = 1.

maj@n (self-consistency, Wang et al. 2022, arXiv 2203.11171): the answer given most often among
the n samples is the prediction; `majority_correct` defines when it counts as correct.
"""
from __future__ import annotations

import collections
from typing import Sequence

import numpy as np


def _check_counts(n: int, c: int, k: int) -> None:
  for name, v in (("num_samples", n), ("num_correct", c), ("k", k)):
    if not isinstance(v, (int, np.integer)) or isinstance(v, bool):
      raise ValueError(f"pass@k: {name} must be an int, got {v!r}")
  if n < 1 or k < 1 or c < 0:
    raise ValueError(f"pass@k: expected num_samples >= 1, k >= 1, num_correct >= 0, got "
                     f"num_samples={n}, num_correct={c}, k={k}")
  if k > n:
    raise ValueError(f"pass@k: k={k} is more than num_samples={n}; draw at least k samples")
  if c > n:
    raise ValueError(f"pass@k: num_correct={c} is more than num_samples={n}")


def pass_at_k(num_samples: int, num_correct: int, k: int) -> float:
  """Unbiased pass@k = 1 - C(n-c, k) / C(n, k) of one problem (product form, see module doc)."""
  n, c = num_samples, num_correct
  _check_counts(n, c, k)
  if n - c < k:
    return 1.0
  return float(1.0 - np.prod(1.0 - k / np.arange(n - c + 1, n + 1, dtype=np.float64)))


def mean_pass_at_k(num_samples, num_correct, k: int) -> float:
  """Mean pass@k over problems: `num_correct` [P] ints, `num_samples` an int or [P] ints.

  Vectorised: factor i of problem p is (1 - k/i) for n_p - c_p < i <= n_p, else 1.
  """
  c = np.asarray(num_correct)
  n = np.broadcast_to(np.asarray(num_samples), c.shape)
  if c.ndim != 1 or c.size == 0:
    raise ValueError(f"mean_pass_at_k: num_correct must be a non-empty 1-D array, got shape "
                     f"{c.shape}")
  if not (np.issubdtype(c.dtype, np.integer) and np.issubdtype(n.dtype, np.integer)):
    raise ValueError(f"mean_pass_at_k: counts must be integers, got dtypes {n.dtype} and "
                     f"{c.dtype}")
  if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k < 1:
    raise ValueError(f"pass@k: k must be an int >= 1, got {k!r}")
  bad = np.flatnonzero((n < 1) | (c < 0) | (c > n) | (k > n))
  if bad.size:
    _check_counts(int(n[bad[0]]), int(c[bad[0]]), k)  # raises, naming the bad values
  i = np.arange(1, int(n.max()) + 1, dtype=np.float64)[None, :]
  in_range = (i > (n - c)[:, None]) & (i <= n[:, None])
  factors = np.where(in_range, 1.0 - k / i, 1.0)
  per_problem = np.where(n - c < k, 1.0, 1.0 - np.prod(factors, axis=1))
  return float(per_problem.mean())


def majority_vote(answers: Sequence[str | None]) -> str | None:
  """The most common non-None answer; None when every answer is None (or there are none).

  Ties go to the answer that appears first in `answers` (so with sample order fixed by the
  key, the vote is deterministic). Answers are compared as exact strings: normalise them in the
  answer extractor (e.g. "0.50" vs "1/2") if they should count as one.
  """
  counts = collections.Counter(a for a in answers if a is not None)
  if not counts:
    return None
  best = max(counts.values())
  return next(a for a in answers if a is not None and counts[a] == best)


def majority_correct(answers: Sequence[str | None], correct: Sequence[bool]) -> bool:
  """maj@n of one problem: the majority answer is correct iff some sample that gave it is correct.

  The majority answer is `majority_vote(answers)` (None -> wrong). Correctness is read off the
  samples' own rewards, so no reward function is called on a synthetic completion; when the
  reward also grades the format, one well-formed sample with the majority answer suffices.
  """
  if len(answers) != len(correct):
    raise ValueError(f"majority_correct: {len(answers)} answers but {len(correct)} correctness "
                     "flags")
  vote = majority_vote(answers)
  return vote is not None and any(bool(ok) for a, ok in zip(answers, correct) if a == vote)
