"""Per-row tool statistics and the answer of an episode, for any `ToolEnv`.

`episode_extras` turns ledgers into the per-row arrays a reward or a metrics writer reads
(`tool/*` keys, float32 [B]); what is correct and what a call costs in reward stays with the
task. `answer_text` picks the segment a task should grade.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from rl_jax.tools.episode import Episode, EpisodeLedger

EXTRA_KEYS = ("tool/n_calls", "tool/cost", "tool/used", "tool/malformed", "tool/attempted",
              "tool/errors", "tool/truncated_responses")


def _row(ledger: EpisodeLedger) -> tuple[float, ...]:
  used = float(ledger.used_tool)
  malformed = float(ledger.n_malformed > 0)
  return (ledger.n_calls, ledger.total_cost, used, malformed, max(used, malformed),
          ledger.n_errors, ledger.n_truncated)


def episode_extras(episodes: Sequence[Episode]) -> dict[str, np.ndarray]:
  """Per row: executed calls, total cost, used (1 if any call ran), malformed (1 if any call was
  malformed), attempted (used or malformed: a failed call is a tool attempt, not a native
  answer), tool errors (calls whose function raised) and truncated responses."""
  rows = np.asarray([_row(e.ledger) for e in episodes], np.float32).reshape(-1, len(EXTRA_KEYS))
  return {key: rows[:, i] for i, key in enumerate(EXTRA_KEYS)}


def answer_text(segments: Sequence[str], ledger: EpisodeLedger | None = None) -> str:
  """The final answer of an episode: its last policy segment (the one after the last tool
  response; `ToolRollout.segments[r]`). With the ledger, an episode that ended on a call (a
  malformed one, or one past the budget) has no answer: "" is returned. That needs an env that
  records every call attempt, as `FunctionToolEnv` and `TranslateToolEnv` do."""
  if not segments:
    return ""
  if ledger is not None and len(ledger.entries) >= len(segments):
    return ""
  return segments[-1]
