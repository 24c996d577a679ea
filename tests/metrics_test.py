"""MetricWriter on resume: the JSONL is cut to the checkpoint's records and TensorBoard is told to
hide the replayed steps of the earlier events file (purge marker)."""
import glob
import json
import os
import struct

from tensorboardX.proto import event_pb2

from rl_jax import metrics as metrics_lib


def _events(path):
  """Parses a TFRecord events file by hand: [len u64][crc u32][data][crc u32] per record."""
  out = []
  with open(path, "rb") as f:
    while header := f.read(12):
      (length,) = struct.unpack("<Q", header[:8])
      event = event_pb2.Event()
      event.ParseFromString(f.read(length))
      f.read(4)
      out.append(event)
  return out


def test_resume_cuts_jsonl_and_marks_tensorboard_purge(tmp_path):
  workdir = str(tmp_path)
  writer = metrics_lib.MetricWriter(workdir)
  for step in range(5):
    writer.write(step, {"loss/pg": float(step)})
  writer.close()
  first_files = set(glob.glob(os.path.join(workdir, "tb", "events.*")))
  assert len(first_files) == 1
  assert not any(e.HasField("session_log") and e.session_log.status == e.session_log.START
                 for e in _events(next(iter(first_files))))

  # The checkpoint held 3 records (steps 0..2): the resumed run replays from step 3.
  writer = metrics_lib.MetricWriter(workdir, keep_records=3)
  assert writer.num_records == 3
  for step in (3, 4):
    writer.write(step, {"loss/pg": 10.0 + step})
  writer.close()
  with open(os.path.join(workdir, "metrics.jsonl"), encoding="utf-8") as f:
    records = [json.loads(line) for line in f]
  assert [r["step"] for r in records] == [0, 1, 2, 3, 4]
  assert [r["loss/pg"] for r in records] == [0.0, 1.0, 2.0, 13.0, 14.0]
  (new_file,) = set(glob.glob(os.path.join(workdir, "tb", "events.*"))) - first_files
  starts = [e.step for e in _events(new_file)
            if e.HasField("session_log") and e.session_log.status == e.session_log.START]
  assert starts == [3]
  scalars = [(e.step, v.simple_value) for e in _events(new_file) if e.HasField("summary")
             for v in e.summary.value]
  assert scalars == [(3, 13.0), (4, 14.0)]
