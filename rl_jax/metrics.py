"""Metrics: one-step-late fetching, a non-finite guard, and JSONL + TensorBoard writers.

Metrics are a flat dict of scalars named with "/" prefixes (`loss/pg`, `reward/mean`, ...).
The host dispatches step t, then reads step t-1's device metrics (`LateFetcher`), so reading
metrics never stalls the device pipeline.
"""
from __future__ import annotations

import json
import math
import os
from typing import Any, Mapping

import jax
import numpy as np


class NonFiniteMetricError(FloatingPointError):
  """A metric became NaN/inf: the run stops instead of training on garbage."""


def check_finite(metrics: Mapping[str, Any], step: int, stage: str | None = None) -> None:
  """Raises naming every non-finite metric of `step` (loss metrics first: the usual root)."""
  bad = sorted(((name, float(v)) for name, v in metrics.items() if not math.isfinite(float(v))),
               key=lambda nv: (not nv[0].startswith("loss/"), nv[0]))
  if bad:
    listing = ", ".join(f"{name!r} is {v}" for name, v in bad)
    raise NonFiniteMetricError(
        f"metric {listing} at step {step}{f' of stage {stage!r}' if stage else ''}; stopping "
        "(lower the learning rate, check the reward "
        "function, or inspect the last checkpoint)")


def to_host(metrics: Mapping[str, Any]) -> dict[str, float]:
  return {k: float(v) for k, v in jax.device_get(dict(metrics)).items()}


class LateFetcher:
  """Holds device metrics of step t and returns those of step t-1 when t+1 is pushed."""

  def __init__(self):
    self._pending: tuple[int, Mapping[str, Any]] | None = None

  def push(self, step: int, device_metrics: Mapping[str, Any]):
    """Queues this step's metrics; returns (step, host metrics) of the previous push or None."""
    previous, self._pending = self._pending, (step, device_metrics)
    return None if previous is None else (previous[0], to_host(previous[1]))

  def flush(self):
    previous, self._pending = self._pending, None
    return None if previous is None else (previous[0], to_host(previous[1]))


class MetricWriter:
  """Appends `{"step": s, **metrics}` lines to workdir/metrics.jsonl and TensorBoard events.

  Only the chief process writes (pass `enabled=False` elsewhere). `num_records` counts the
  records the file holds (kept + written); a checkpoint stores it so that a resumed run passes
  it back as `keep_records`, which first cuts the file to that many records: the steps the
  resumed run replays are then not recorded twice. `keep_records=0` starts the file over.
  """

  def __init__(self, workdir: str, *, enabled: bool = True, tensorboard: bool = True,
               keep_records: int | None = None):
    self.enabled = enabled
    self._jsonl = None
    self._tb = None
    # Processes that do not write count too: with `keep_records` given (checkpointed runs always
    # give it) every process then holds the chief's number.
    self.num_records = keep_records or 0
    if not enabled:
      return
    os.makedirs(workdir, exist_ok=True)
    path = os.path.join(workdir, "metrics.jsonl")
    if keep_records is not None:
      _keep_first_records(path, keep_records)
    last_step = None
    if os.path.exists(path):
      with open(path, encoding="utf-8") as f:
        lines = f.readlines()
      self.num_records = len(lines)
      last_step = json.loads(lines[-1])["step"] if lines else None
    self._jsonl = open(path, "a", encoding="utf-8")
    if tensorboard:
      from tensorboardX import SummaryWriter  # pylint: disable=g-import-not-at-top
      # A resumed run replays the steps after its checkpoint: `purge_step` tells TensorBoard to
      # hide the earlier events files' records from that step on, as the JSONL cut does.
      purge_step = None
      if keep_records is not None:
        purge_step = 0 if last_step is None else last_step + 1
      # The records-so-far suffix keeps a resume within the same second (the file name's clock)
      # from reopening, and truncating, the previous events file.
      self._tb = SummaryWriter(os.path.join(workdir, "tb"), purge_step=purge_step,
                               filename_suffix=f".r{self.num_records}")

  def write(self, step: int, metrics: Mapping[str, float], stage: str | None = None) -> None:
    """One record; `stage` (the loop's stage name) is kept in it as a string field."""
    self.num_records += 1
    if not self.enabled:
      return
    record = {"step": int(step), **{k: float(v) for k, v in metrics.items()}}
    if stage is not None:
      record["stage"] = stage
    self._jsonl.write(json.dumps(record, sort_keys=True) + "\n")
    self._jsonl.flush()
    if self._tb is not None:
      for name, value in metrics.items():
        self._tb.add_scalar(name, float(value), int(step))

  def close(self) -> None:
    if self._jsonl is not None:
      self._jsonl.close()
    if self._tb is not None:
      self._tb.close()


def _keep_first_records(path: str, num_records: int) -> None:
  """Cuts a metrics.jsonl to its first `num_records` complete lines (atomic replace)."""
  if not os.path.exists(path):
    return
  with open(path, encoding="utf-8") as f:
    # A line without its newline is a record cut short by a killed process: dropped.
    lines = [line for line in f if line.endswith("\n")][:num_records]
  tmp = path + ".tmp"
  with open(tmp, "w", encoding="utf-8") as f:
    f.writelines(lines)
  os.replace(tmp, path)


def read_metrics(path: str) -> list[dict[str, float]]:
  """Reads a metrics.jsonl, with file:line on malformed lines."""
  out = []
  with open(path, encoding="utf-8") as f:
    for line_no, line in enumerate(f, 1):
      if not line.strip():
        continue
      try:
        out.append(json.loads(line))
      except json.JSONDecodeError as e:
        raise ValueError(f"{path}:{line_no}: not a JSON metrics record ({e})") from e
  return out


def reward_metrics(rewards_B: np.ndarray, group_size: int, prefix: str = "reward") -> dict:
  groups = rewards_B.reshape(-1, group_size)
  return {f"{prefix}/mean": float(rewards_B.mean()), f"{prefix}/std": float(rewards_B.std()),
          f"{prefix}/frac_groups_solved": float((groups.max(axis=1) > 0).mean()),
          f"{prefix}/frac_groups_zero_var": float((groups.std(axis=1) == 0).mean())}
