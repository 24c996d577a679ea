"""tensorflow-datasets builders of the data layer, prepared as ArrayRecord files (no TensorFlow).

    sources = prepare(Gsm8k, data_dir)                  # {"train": source, "test": source}
    record  = sources["train"][i]                       # a dict of numpy values / bytes

A builder is a `tfds.core.GeneratorBasedBuilder` in an importable module; `prepare` writes its
splits once as ArrayRecord files under `data_dir/<builder>/<config>/<version>/`
(`file_format="array_record"`) and returns `builder.as_data_source()`: random-access sources
that grain reads (`rl_jax.data.loader`), never `tf.data`, so TensorFlow is never imported
(tests/data/no_tensorflow_test.py checks it in a fresh process). A second `prepare` of the same
builder and config reuses the files; a file lock in `data_dir` makes concurrent processes (test
workers, the processes of one run) prepare it once.

Builders here are the core's data: "rl_jax_gsm8k" (GSM8K, Cobbe et al. 2021, arXiv:2110.14168)
and "rl_jax_arithmetic" (the quickstart's generated sums, `rl_jax.envs.arithmetic`). A project
defines its own builder in its package the same way (e.g. the cipher corpus of
`rl_jax.projects.translate_r1.corpus`); the core never imports a project.

Configs encode every generation parameter in their name, so two configs never share files.
Records keep their generation order (`disable_shuffling=True`): record i of a split is the i-th
example the generator yielded.
"""
from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import os
import pathlib
from typing import Any, Iterator

import numpy as np
import tensorflow_datasets as tfds

from rl_jax.data import gsm8k
from rl_jax.envs.arithmetic import ArithmeticTask

# The GSM8K release (github.com/openai/grade-school-math, MIT): what the "download" config reads.
GSM8K_URLS = {
    "train": "https://raw.githubusercontent.com/openai/grade-school-math/master/"
             "grade_school_math/data/train.jsonl",
    "test": "https://raw.githubusercontent.com/openai/grade-school-math/master/"
            "grade_school_math/data/test.jsonl",
}


DATA_DIR_ENV = "RL_JAX_DATA_DIR"


def default_data_dir() -> str:
  """Where tasks built outside a run prepare their data: $RL_JAX_DATA_DIR, else
  ~/.cache/rl_jax/data. A run uses its config's `data_dir` (default <workdir>/data)."""
  return os.environ.get(DATA_DIR_ENV) or os.path.join(os.path.expanduser("~"), ".cache",
                                                      "rl_jax", "data")


@contextlib.contextmanager
def _file_lock(data_dir: str, name: str):
  """An exclusive lock on `data_dir/.<name>.lock` (flock: released if the process dies)."""
  os.makedirs(data_dir, exist_ok=True)
  with open(os.path.join(data_dir, f".{name}.lock"), "w", encoding="utf-8") as f:
    fcntl.flock(f, fcntl.LOCK_EX)
    try:
      yield
    finally:
      fcntl.flock(f, fcntl.LOCK_UN)


def prepare(builder_cls, data_dir: str | os.PathLike, config=None, *,
            manual_dir: str | os.PathLike | None = None) -> dict[str, Any]:
  """Prepares `builder_cls(config)` as ArrayRecord files under `data_dir` (once) and returns
  its splits as random-access sources {split: `ArrayRecordDataSource`}.

  `manual_dir`: where a builder's manual (offline) files are (GSM8K's "manual" config: the
  bundled copy by default). Never contacts the network unless the builder's config downloads.
  """
  data_dir = os.fspath(data_dir)
  if config is not None and not isinstance(config, str) and config.name in getattr(
      builder_cls, "builder_configs", {}):
    config = config.name  # tfds refuses an equal instance of a predefined config
  with _file_lock(data_dir, builder_cls.name):
    builder = builder_cls(data_dir=data_dir, config=config, file_format="array_record")
    tfds.disable_progress_bar()
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
        manual_dir=None if manual_dir is None else os.fspath(manual_dir),
        try_download_gcs=False))
  return builder.as_data_source()


def all_records(source) -> list:
  """Every record of a source, in order (one bulk read where the source supports it)."""
  if hasattr(source, "__getitems__"):
    return list(source.__getitems__(list(range(len(source)))))
  return [source[i] for i in range(len(source))]


def text(value) -> str:
  """A tfds Text feature as str (data sources return UTF-8 bytes)."""
  return value.decode("utf-8") if isinstance(value, bytes) else str(value)


class LocalBuilder(tfds.core.GeneratorBasedBuilder):
  """A builder of data that exists only locally (never on TFDS's GCS bucket).

  tfds looks every unprepared builder up on its bucket when constructing it, and makes a
  temporary directory for the files before it checks whether GCS is enabled; nothing removes
  that directory (one empty `/tmp/tmp*tfds` per construction). Our datasets are not on the
  bucket, so the lookup is skipped."""

  def dataset_info_from_configs(self, **kwargs):
    info = super().dataset_info_from_configs(**kwargs)
    info.initialize_from_bucket = lambda: None  # shadows the method for this instance
    return info


# ------------------------------------------------------------------------------------- GSM8K


@dataclasses.dataclass
class Gsm8kConfig(tfds.core.BuilderConfig):
  """source: "manual" reads `{train,test}.jsonl` from the download config's manual_dir (by
  default the bundled copy, rl_jax/data/assets/gsm8k: offline); "download" fetches the release
  (`GSM8K_URLS`); "files" reads `train_path` / `test_path` (any files in GSM8K's format; the
  config's name carries a hash of their bytes, so edited files are prepared again)."""
  source: str = "manual"
  train_path: str = ""
  test_path: str = ""


def gsm8k_files_config(train_path, test_path) -> Gsm8kConfig:
  """The "files" config of two JSONL files, named by a SHA-1 of their contents."""
  paths = [gsm8k.resolve_path(path=p) for p in (train_path, test_path)]
  digest = hashlib.sha1()
  for p in paths:
    digest.update(p.read_bytes())
    digest.update(b"\0")
  return Gsm8kConfig(name=f"files_{digest.hexdigest()[:16]}", source="files",
                     train_path=str(paths[0].resolve()), test_path=str(paths[1].resolve()),
                     description="GSM8K-format JSONL files given by path")


class Gsm8k(LocalBuilder):
  """GSM8K (arXiv:2110.14168): records {"question", "solution", "answer"} in file order.

  Every line is parsed by `rl_jax.data.gsm8k.iter_gsm8k`, so a malformed line stops the build
  with its file and line number (nothing is skipped)."""
  name = "rl_jax_gsm8k"
  VERSION = tfds.core.Version("1.0.0")
  BUILDER_CONFIGS = [
      Gsm8kConfig(name="manual", source="manual",
                  description="train.jsonl / test.jsonl from the manual dir (bundled copy)"),
      Gsm8kConfig(name="download", source="download", description="the release's URLs"),
  ]
  DEFAULT_CONFIG_NAME = "manual"
  MANUAL_DOWNLOAD_INSTRUCTIONS = ("Put GSM8K's train.jsonl and test.jsonl in the manual dir; "
                                  "rl_jax passes its bundled copy (rl_jax/data/assets/gsm8k).")

  def _info(self):
    return self.dataset_info_from_configs(
        features=tfds.features.FeaturesDict({"question": tfds.features.Text(),
                                             "solution": tfds.features.Text(),
                                             "answer": tfds.features.Text()}),
        homepage="https://github.com/openai/grade-school-math", disable_shuffling=True)

  def _split_generators(self, dl_manager):
    cfg = self.builder_config
    if cfg.source == "download":
      paths = dl_manager.download(GSM8K_URLS)
    elif cfg.source == "files":
      paths = {"train": cfg.train_path, "test": cfg.test_path}
    elif cfg.source == "manual":
      paths = {split: pathlib.Path(dl_manager.manual_dir) / f"{split}.jsonl"
               for split in gsm8k.SPLITS}
    else:
      raise ValueError(f"Gsm8kConfig.source: expected manual | download | files, got "
                       f"{cfg.source!r}")
    return {split: self._generate_examples(path) for split, path in paths.items()}

  def _generate_examples(self, path) -> Iterator[tuple[int, dict]]:
    for lineno, p in gsm8k.iter_gsm8k(gsm8k.resolve_path(path=path)):
      yield lineno, {"question": p.question, "solution": p.solution, "answer": p.answer}


def gsm8k_problems(source) -> list[gsm8k.MathProblem]:
  """The `MathProblem`s of a prepared GSM8K split, in file order."""
  return [gsm8k.MathProblem(question=text(r["question"]), solution=text(r["solution"]),
                            answer=text(r["answer"])) for r in all_records(source)]


# -------------------------------------------------------------------------------- arithmetic


@dataclasses.dataclass
class ArithmeticConfig(tfds.core.BuilderConfig):
  """The generated sums of `ArithmeticTask(num_operands, num_digits).split(train_size,
  eval_size, seed)`: distinct operand tuples, the eval split disjoint from train."""
  num_operands: int = 3
  num_digits: int = 2
  train_size: int = 350
  eval_size: int = 200
  seed: int = 0


def arithmetic_config(num_operands: int, num_digits: int, train_size: int, eval_size: int,
                      seed: int) -> ArithmeticConfig:
  """The config of these parameters (its name lists them)."""
  return ArithmeticConfig(
      name=f"k{num_operands}_d{num_digits}_train{train_size}_eval{eval_size}_seed{seed}",
      num_operands=num_operands, num_digits=num_digits, train_size=train_size,
      eval_size=eval_size, seed=seed, description="generated sums (rl_jax.envs.arithmetic)")


class Arithmetic(LocalBuilder):
  """The quickstart's arithmetic world: records {"operands": int64[K]} per split ("train",
  "eval"); prompt and completion are functions of the operands (`ArithmeticTask.make_problem`)."""
  name = "rl_jax_arithmetic"
  VERSION = tfds.core.Version("1.0.0")
  BUILDER_CONFIGS = [arithmetic_config(3, 2, 350, 200, 0)]

  def _info(self):
    k = self.builder_config.num_operands
    return self.dataset_info_from_configs(
        features=tfds.features.FeaturesDict({
            "operands": tfds.features.Tensor(shape=(k,), dtype=np.int64)}),
        disable_shuffling=True)

  def _split_generators(self, dl_manager):
    del dl_manager  # generated, nothing to download
    cfg = self.builder_config
    task = ArithmeticTask(num_operands=cfg.num_operands, num_digits=cfg.num_digits)
    train, held_out = task.split(cfg.train_size, cfg.eval_size, cfg.seed)
    # An empty split is left out (tfds writes none): read it as `sources.get("eval", ())`.
    return {name: self._generate_examples(problems)
            for name, problems in (("train", train), ("eval", held_out)) if problems}

  def _generate_examples(self, problems) -> Iterator[tuple[int, dict]]:
    for i, p in enumerate(problems):
      yield i, {"operands": np.asarray(p.operands, np.int64)}


def arithmetic_problems(task: ArithmeticTask, source) -> list:
  """The `Problem`s of a prepared arithmetic split, in generation order."""
  return [task.make_problem(r["operands"].tolist()) for r in all_records(source)]
