"""Metrics: one-step-late fetching, a non-finite guard, and JSONL + TensorBoard writers.

Metrics are a flat dict of scalars named with "/" prefixes (`loss/pg`, `reward/mean`, ...).
The host dispatches step t, then reads step t-1's device metrics (`LateFetcher`), so reading
metrics never stalls the device pipeline.
"""
from __future__ import annotations

import glob
import json
import math
import os
import struct
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

  TensorBoard: one run directory per stage (`tb/<stage>/`; `tb/` for records without a stage),
  so the stages' step axes do not mix and the variants of a sweep overlay tag by tag. When a
  stage first writes in this process, its events are cut to the steps metrics.jsonl still holds
  for it (`trim_events`), so a resumed or restarted stage never shows a step twice.
  """

  def __init__(self, workdir: str, *, enabled: bool = True, tensorboard: bool = True,
               keep_records: int | None = None):
    self.enabled = enabled
    self._jsonl = None
    self._tensorboard = tensorboard and enabled
    self._tb: dict[str | None, Any] = {}
    self._tb_root = os.path.join(workdir, "tb")
    self._last_step: dict[str | None, int] = {}  # per stage, of the records kept on open
    # Processes that do not write count too: with `keep_records` given (checkpointed runs always
    # give it) every process then holds the chief's number.
    self.num_records = keep_records or 0
    if not enabled:
      return
    os.makedirs(workdir, exist_ok=True)
    path = os.path.join(workdir, "metrics.jsonl")
    if keep_records is not None:
      _keep_first_records(path, keep_records)
    if os.path.exists(path):
      with open(path, encoding="utf-8") as f:
        lines = f.readlines()
      self.num_records = len(lines)
      for line in lines:
        record = json.loads(line)
        self._last_step[record.get("stage")] = record["step"]
    self._jsonl = open(path, "a", encoding="utf-8")

  def _tb_writer(self, stage: str | None):
    if stage not in self._tb:
      from tensorboardX import SummaryWriter  # pylint: disable=g-import-not-at-top
      directory = self._tb_root if stage is None else os.path.join(self._tb_root, stage)
      trim_events(directory, self._last_step.get(stage))
      # The records-so-far suffix keeps a restart within the same second (the file name's
      # clock) from reopening the earlier file; zero-padded so names sort in write order.
      self._tb[stage] = SummaryWriter(directory, filename_suffix=f".r{self.num_records:09d}")
    return self._tb[stage]

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
    self._add_scalars(step, metrics, stage)

  def _add_scalars(self, step: int, metrics: Mapping[str, float], stage: str | None):
    if self._tensorboard:
      tb = self._tb_writer(stage)
      for name, value in metrics.items():
        tb.add_scalar(name, float(value), int(step))
      return tb
    return None

  def write_tensorboard(self, step: int, metrics: Mapping[str, float],
                        stage: str | None = None) -> None:
    """Scalars for TensorBoard only, no metrics.jsonl record: the loop's stage-end evaluation
    (step = the stage's step count, one past its last training record), so the eval curves of
    `eval.every` end at the final value while metrics.jsonl keeps one record per training
    step. A resumed stage's `trim_events` drops the point (its step is past the kept records)
    and the stage's end writes it again."""
    tb = self._add_scalars(step, metrics, stage)
    if tb is not None:
      tb.flush()

  def close(self) -> None:
    if self._jsonl is not None:
      self._jsonl.close()
    for tb in self._tb.values():
      tb.close()


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


def read_event_records(path: str) -> list[bytes]:
  """The records of a TFRecord events file ([len u64][crc u32][data][crc u32] each); a record
  cut short by a killed writer ends the list."""
  out = []
  with open(path, "rb") as f:
    while len(header := f.read(12)) == 12:
      (length,) = struct.unpack("<Q", header[:8])
      data = f.read(length)
      if len(data) < length or len(f.read(4)) < 4:
        break
      out.append(data)
  return out


def trim_events(directory: str, last_step: int | None) -> None:
  """Rewrites the TensorBoard events files of `directory` as one file that keeps only the
  scalar records with step <= `last_step` (None: none), each (tag, step) once.

  TensorBoardX's `purge_step` only asks the viewer to hide replayed steps, and hides them for
  every tag of the run directory; this cuts the files themselves, as metrics.jsonl is cut. The
  result replaces the oldest file (so it sorts before the writer's new one); the others go.
  """
  from tensorboardX.proto import event_pb2  # pylint: disable=g-import-not-at-top
  from tensorboardX.record_writer import RecordWriter  # pylint: disable=g-import-not-at-top
  files = sorted(glob.glob(os.path.join(directory, "events.out.tfevents.*")))
  if not files:
    return
  kept, seen = [], set()
  for path in files:
    for data in read_event_records(path):
      event = event_pb2.Event.FromString(data)
      if event.HasField("summary"):
        tags = tuple(v.tag for v in event.summary.value)
        if last_step is None or event.step > last_step or (event.step, tags) in seen:
          continue
        seen.add((event.step, tags))
      elif not event.HasField("file_version") or kept:  # the version header, once, first
        continue
      kept.append(data)
  tmp = files[0] + ".trim-tmp"
  writer = RecordWriter(tmp)
  for data in kept:
    writer.write(data)
  writer.close()
  os.replace(tmp, files[0])
  for path in files[1:]:
    os.remove(path)


def read_scalars(directory: str, tag: str) -> list[tuple[int, float]]:
  """(step, value) of every scalar `tag` in a TensorBoard run directory (e.g. `tb/<stage>`),
  files in name order (the order they were written)."""
  from tensorboardX.proto import event_pb2  # pylint: disable=g-import-not-at-top
  events = [event_pb2.Event.FromString(data)
            for path in sorted(glob.glob(os.path.join(directory, "events.out.tfevents.*")))
            for data in read_event_records(path)]
  return [(e.step, v.simple_value) for e in events if e.HasField("summary")
          for v in e.summary.value if v.tag == tag]


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


def advantage_metrics(adv_B, adv_BxL, loss_mask_BxL) -> dict:
  """adv/abs_mean and adv/nonzero_frac over the rows (or, for per-token advantages, the loss
  tokens) of a step: 0 and 0 mean the step cannot change the policy (no learning signal)."""
  if adv_BxL is not None:
    values = np.asarray(adv_BxL)[np.asarray(loss_mask_BxL) > 0]
  else:
    values = np.asarray(adv_B)
  if values.size == 0:
    return {"adv/abs_mean": 0.0, "adv/nonzero_frac": 0.0}
  return {"adv/abs_mean": float(np.abs(values).mean()),
          "adv/nonzero_frac": float((values != 0).mean())}
