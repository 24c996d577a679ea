"""Paired comparisons of two policies scored on the same held-out items, for the studies'
reports: the mean difference with a percentile bootstrap interval over items, and the exact
sign test on the items only one policy gets right."""
from __future__ import annotations

from typing import Any, Mapping, Sequence

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


def sign_comparison(a_rows: Sequence[bool], b_rows: Sequence[bool]) -> dict[str, Any]:
  """Two policies' right / wrong on the same items (a_rows[i], b_rows[i] score item i): how many
  each gets right ("a", "b"), how many only one of them does ("a_only", "b_only"), the number of
  items ("n") and `sign_test`'s p on the discordant items ("p")."""
  if len(a_rows) != len(b_rows):
    raise ValueError(f"sign_comparison: expected two equal-length lists of item scores, got "
                     f"{len(a_rows)} and {len(b_rows)}")
  a_bool, b_bool = [bool(x) for x in a_rows], [bool(y) for y in b_rows]
  a_only = sum(x and not y for x, y in zip(a_bool, b_bool))
  b_only = sum(y and not x for x, y in zip(a_bool, b_bool))
  return {"a": sum(a_bool), "b": sum(b_bool), "a_only": a_only, "b_only": b_only,
          "n": len(a_bool), "p": sign_test(a_only, b_only)}


def seeds_summary(title: str, per_seed: Mapping[str, Sequence[float]],
                  pooled: Mapping[str, Sequence[float]], pooled_title: str,
                  digits: int = 3) -> str:
  """The text the reports' `seeds` print: one line per arm with its value per run and mean,
  then one line per pooled pair `paired_bootstrap` gave (mean [lo, hi])."""
  lines = [title, ""]
  lines += [f"- {arm}: " + " / ".join(f"{v:.3f}" for v in vals) + f" (mean {np.mean(vals):.3f})"
            for arm, vals in per_seed.items()]
  lines += ["", pooled_title, ""]
  lines += [f"- {name}: {d:+.{digits}f} [{lo:+.{digits}f}, {hi:+.{digits}f}]"
            for name, (d, lo, hi) in pooled.items()]
  return "\n".join(lines)
