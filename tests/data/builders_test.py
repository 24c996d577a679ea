"""tfds builders of the data layer on small generated data: records equal their generators,
ArrayRecord files, reuse, and malformed GSM8K lines stop with file and line."""
import json

import numpy as np
import pytest

from rl_jax.data import builders
from rl_jax.envs.arithmetic import ArithmeticTask
from rl_jax.projects.translate_r1 import corpus
from rl_jax.projects.translate_r1 import world as cipher


def test_arithmetic_records_are_the_task_split_in_order(tmp_path):
  sources = builders.prepare(builders.Arithmetic, tmp_path,
                             builders.arithmetic_config(2, 2, 12, 5, 7))
  task = ArithmeticTask(num_operands=2, num_digits=2)
  train, held_out = task.split(12, 5, 7)  # the reference: the generator itself, in order
  assert [tuple(sources["train"][i]["operands"]) for i in range(12)] == [p.operands
                                                                        for p in train]
  assert builders.arithmetic_problems(task, sources["eval"]) == held_out
  files = sorted(p.name for p in (tmp_path / "rl_jax_arithmetic").rglob("*.array_record*"))
  assert files and all("array_record" in f for f in files)
  # A second prepare reuses the files (no rewrite) and an empty split is left out.
  before = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*.array_record*")}
  builders.prepare(builders.Arithmetic, tmp_path, builders.arithmetic_config(2, 2, 12, 5, 7))
  assert {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*.array_record*")} == before
  only_train = builders.prepare(builders.Arithmetic, tmp_path,
                                builders.arithmetic_config(2, 1, 3, 0, 0))
  assert "eval" not in only_train and len(only_train["train"]) == 3


def _gsm8k_file(path, rows):
  path.write_text("".join(json.dumps(r) + "\n" for r in rows))
  return path


def test_gsm8k_files_config_keeps_file_order_and_names_a_bad_line(tmp_path):
  rows = [{"question": f"q{i}?", "answer": f"step {i}\n#### {i * 3}"} for i in range(6)]
  train = _gsm8k_file(tmp_path / "train.jsonl", rows)
  test = _gsm8k_file(tmp_path / "test.jsonl", rows[:2])
  sources = builders.prepare(builders.Gsm8k, tmp_path / "data",
                             builders.gsm8k_files_config(train, test))
  problems = builders.gsm8k_problems(sources["train"])
  assert [(p.question, p.solution, p.answer) for p in problems] == [
      (f"q{i}?", f"step {i}", str(i * 3)) for i in range(6)]
  assert len(sources["test"]) == 2
  # Line 4 of 6 is malformed: the build stops naming the file and the line (1-based).
  bad = tmp_path / "bad.jsonl"
  bad.write_text("".join(json.dumps(r) + "\n" for r in rows[:3]) + '{"question": "x"}\n'
                 + json.dumps(rows[4]) + "\n")
  with pytest.raises(ValueError, match=r"bad\.jsonl:4: missing key 'answer'"):
    builders.prepare(builders.Gsm8k, tmp_path / "data", builders.gsm8k_files_config(bad, test))


def test_gsm8k_builder_names_the_release_urls():
  assert all(url.startswith("https://raw.githubusercontent.com/openai/grade-school-math/")
             and url.endswith(f"/{split}.jsonl") for split, url in builders.GSM8K_URLS.items())
  assert {c.name for c in builders.Gsm8k.BUILDER_CONFIGS} == {"manual", "download"}


def test_cipher_corpus_is_the_world_corpus_in_order(tmp_path):
  sources = builders.prepare(corpus.CipherCorpus, tmp_path, corpus.corpus_config(0, 7, 3))
  want = cipher.CipherWorld(0).pretrain_corpus(7, np.random.default_rng([3, 3]))
  assert [builders.text(sources["train"][i]["text"]) for i in range(7)] == want


def test_gsm8k_task_reads_the_bundled_copy_offline_through_the_builder(tmp_path):
  from rl_jax import tasks  # pylint: disable=import-outside-toplevel
  task = tasks.make_task("gsm8k", data_dir=str(tmp_path))
  # The reference: the bundled JSONL files parsed line by line with json.
  for problems, split in ((task.train, "train"), (task.eval, "test")):
    lines = (builders.gsm8k.ASSET_DIR / f"{split}.jsonl").read_text().splitlines()
    assert len(problems) == len(lines) == {"train": 7473, "test": 1319}[split]
    for i in (0, len(lines) // 2, len(lines) - 1):
      row = json.loads(lines[i])
      assert problems[i].question == row["question"]
      assert problems[i].answer == row["answer"].split("####")[1].strip()
  assert (tmp_path / "rl_jax_gsm8k" / "manual" / "1.0.0").is_dir()


@pytest.mark.parametrize("name", ["arithmetic", "cipher"])
def test_preparing_a_builder_leaves_no_temporary_directory(tmp_path, monkeypatch, name):
  # tfds's GCS lookup makes a `tmp*tfds` directory per unprepared builder and never removes it;
  # LocalBuilder skips the lookup (our datasets are not on the bucket).
  scratch = tmp_path / "scratch"
  scratch.mkdir()
  monkeypatch.setattr("tempfile.tempdir", str(scratch))
  if name == "arithmetic":
    builders.prepare(builders.Arithmetic, tmp_path / "data",
                     builders.arithmetic_config(2, 1, 4, 2, 0))
  else:
    builders.prepare(corpus.CipherCorpus, tmp_path / "data", corpus.corpus_config(0, 3, 1))
  assert sorted(p.name for p in scratch.iterdir()) == []
