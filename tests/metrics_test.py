"""MetricWriter on resume: metrics.jsonl is cut to the checkpoint's records and the TensorBoard
events files are cut to the same steps, per stage (each stage its own run directory), so no
step is ever written twice."""
import glob
import json
import os
import struct

import pytest
from tensorboardX.proto import event_pb2

from rl_jax import metrics as metrics_lib


def _events(directory):
  """Every event of a run directory, files in name order (TensorBoard's), parsed by hand:
  [len u64][crc u32][data][crc u32] per record."""
  out = []
  for path in sorted(glob.glob(os.path.join(directory, "events.*"))):
    with open(path, "rb") as f:
      while header := f.read(12):
        (length,) = struct.unpack("<Q", header[:8])
        event = event_pb2.Event()
        event.ParseFromString(f.read(length))
        f.read(4)
        out.append(event)
  return out


def _scalars(directory, tag):
  return [(e.step, v.simple_value) for e in _events(directory) if e.HasField("summary")
          for v in e.summary.value if v.tag == tag]


def _jsonl(workdir):
  with open(os.path.join(workdir, "metrics.jsonl"), encoding="utf-8") as f:
    return [json.loads(line) for line in f]


def test_resume_cuts_jsonl_and_tensorboard_events_to_the_same_steps(tmp_path):
  workdir = str(tmp_path)
  writer = metrics_lib.MetricWriter(workdir)
  for step in range(5):
    writer.write(step, {"loss/pg": float(step)})
  writer.close()
  tb = os.path.join(workdir, "tb")
  assert _scalars(tb, "loss/pg") == [(s, float(s)) for s in range(5)]

  # The checkpoint held 3 records (steps 0..2): the resumed run replays from step 3.
  writer = metrics_lib.MetricWriter(workdir, keep_records=3)
  assert writer.num_records == 3
  for step in (3, 4):
    writer.write(step, {"loss/pg": 10.0 + step})
  writer.close()
  records = _jsonl(workdir)
  assert [r["step"] for r in records] == [0, 1, 2, 3, 4]
  assert [r["loss/pg"] for r in records] == [0.0, 1.0, 2.0, 13.0, 14.0]
  assert _scalars(tb, "loss/pg") == [(0, 0.0), (1, 1.0), (2, 2.0), (3, 13.0), (4, 14.0)]
  versions = [e for e in _events(tb) if e.HasField("file_version")]
  assert len(versions) == 2  # the trimmed file's header and the new file's


def test_stages_have_their_own_run_directories_and_a_resume_trims_only_its_stage(tmp_path):
  workdir = str(tmp_path)
  writer = metrics_lib.MetricWriter(workdir, keep_records=0)
  for step in range(5):
    writer.write(step, {"grad/norm": 1.0 + step}, stage="sft")
  for step in range(3):
    writer.write(step, {"grad/norm": 100.0 + step}, stage="rl")
  writer.close()
  # Killed after rl step 2; its checkpoint was at rl step 1 (7 records: sft 0..4, rl 0..1).
  writer = metrics_lib.MetricWriter(workdir, keep_records=7)
  writer.write(2, {"grad/norm": 202.0}, stage="rl")
  writer.write(3, {"grad/norm": 203.0}, stage="rl")
  writer.close()
  sft = os.path.join(workdir, "tb", "sft")
  rl = os.path.join(workdir, "tb", "rl")
  assert _scalars(sft, "grad/norm") == [(s, 1.0 + s) for s in range(5)]
  assert _scalars(rl, "grad/norm") == [(0, 100.0), (1, 101.0), (2, 202.0), (3, 203.0)]
  assert [(r["stage"], r["step"]) for r in _jsonl(workdir)] == (
      [("sft", s) for s in range(5)] + [("rl", s) for s in range(4)])


def test_a_restart_from_scratch_drops_the_earlier_events_and_a_cut_record_is_tolerated(tmp_path):
  workdir = str(tmp_path)
  writer = metrics_lib.MetricWriter(workdir, keep_records=0)
  for step in range(3):
    writer.write(step, {"loss/pg": float(step)}, stage="rl")
  writer.close()
  rl = os.path.join(workdir, "tb", "rl")
  (path,) = glob.glob(os.path.join(rl, "events.*"))
  with open(path, "ab") as f:  # a record cut short by a killed writer
    f.write(struct.pack("<Q", 100) + b"\0" * 20)
  writer = metrics_lib.MetricWriter(workdir, keep_records=0)  # no checkpoint: start over
  writer.write(0, {"loss/pg": 7.0}, stage="rl")
  writer.close()
  assert _scalars(rl, "loss/pg") == [(0, 7.0)]
  assert [r["loss/pg"] for r in _jsonl(workdir)] == [7.0]


def test_stage_end_eval_goes_to_tensorboard_only_and_a_resume_writes_it_once(tmp_path):
  workdir = str(tmp_path)
  writer = metrics_lib.MetricWriter(workdir, keep_records=0)
  for step in range(4):
    writer.write(step, {"loss/pg": float(step), "eval/accuracy": 0.1 * step}, stage="rl")
  writer.write_tensorboard(4, {"eval/accuracy": 0.9}, stage="rl")  # the stage's end
  assert writer.num_records == 4
  writer.close()
  rl = os.path.join(workdir, "tb", "rl")
  assert [s for s, _ in _scalars(rl, "eval/accuracy")] == [0, 1, 2, 3, 4]
  assert [r["step"] for r in _jsonl(workdir)] == [0, 1, 2, 3]
  # Killed before the next stage saved; the stage's checkpoint held 2 records: the replayed
  # steps and the stage's end are written again, each step once.
  writer = metrics_lib.MetricWriter(workdir, keep_records=2)
  for step in (2, 3):
    writer.write(step, {"loss/pg": 10.0 + step, "eval/accuracy": 0.5}, stage="rl")
  writer.write_tensorboard(4, {"eval/accuracy": 0.8}, stage="rl")
  writer.close()
  assert _scalars(rl, "eval/accuracy") == [(0, 0.0), (1, pytest.approx(0.1)), (2, 0.5),
                                           (3, 0.5), (4, pytest.approx(0.8))]
  # The core's reader (what tests/loop_test.py uses) gives what this file's own parser does.
  assert metrics_lib.read_scalars(rl, "eval/accuracy") == _scalars(rl, "eval/accuracy")
