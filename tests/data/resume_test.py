"""Kill / resume through the loop: the data layer's iterator state is in each checkpoint, so a
pretrain stage (packed documents) and an SFT stage (grain over the task's demonstrations) killed
mid-way read the same next batches, bitwise, and end where an uninterrupted run ends."""
import dataclasses

import jax
import ml_collections
import numpy as np
import pytest

from rl_jax import main as main_lib
from rl_jax import metrics as metrics_lib
from rl_jax import tasks
from rl_jax.data import builders, loader
from rl_jax.tokenizers import load_tokenizer

PROMPT_LEN, NEW_TOKENS = 8, 8


@tasks.TASKS.register("data_layer_resume_test")
def docs_task(*, seed: int, data_dir: str) -> tasks.TaskData:
  """The arithmetic task plus a corpus: other sums written out as documents (a tfds dataset of
  the data dir), packed into rows of P + N tokens."""
  base = tasks.arithmetic_task(num_operands=2, num_digits=1, train_size=24, eval_size=4,
                               seed=seed, data_dir=data_dir)
  tok = load_tokenizer("arith_char")
  arith = builders.ArithmeticTask(num_operands=2, num_digits=1)  # 7 tokens: 2 per row

  def pretrain_data():
    sources = builders.prepare(builders.Arithmetic, data_dir,
                               builders.arithmetic_config(2, 1, 60, 0, seed + 1))
    def tokens(record, _):
      p = arith.make_problem(record["operands"].tolist())
      return tok.encode(p.prompt + p.completion) + [tok.eos_id]
    return loader.Corpus(sources["train"], tokens, row_len=PROMPT_LEN + NEW_TOKENS)

  return dataclasses.replace(base, pretrain_data=pretrain_data)


def _config():
  c = ml_collections.ConfigDict()
  c.seed = 1
  c.tokenizer = "arith_char"
  c.task = {"name": "data_layer_resume_test"}
  c.stages = ("pretrain", "sft")
  c.prompt_len, c.max_new_tokens = PROMPT_LEN, NEW_TOKENS
  c.model = {"name": "tiny", "overrides": {"num_layers": 1, "hidden_size": 32, "num_heads": 2,
                                           "num_kv_heads": 1, "head_dim": 16,
                                           "intermediate_size": 64}}
  c.pretrain = {"steps": 3, "batch_size": 8, "learning_rate": 1e-2, "warmup_steps": 0}
  c.sft = {"steps": 3, "batch_size": 8, "learning_rate": 1e-2, "warmup_steps": 0}
  c.eval = {"at_stage_end": False}
  c.checkpoint = {"every": 1, "async_save": False}
  return c


class Killed(Exception):
  pass


def _run(workdir, monkeypatch, kill_at=None):
  """Runs the config; returns (summary or None if killed, every batch the steps fetched)."""
  seen, real = [], loader.to_global

  def recording(arrays, mesh, *, per_process):
    if len(seen) == kill_at:
      raise Killed(f"killed at batch {kill_at}")
    seen.append([np.array(a) for a in arrays])
    return real(arrays, mesh, per_process=per_process)

  monkeypatch.setattr(loader, "to_global", recording)
  try:
    return main_lib.run(_config(), str(workdir), show_progress=False), seen
  except Killed:
    return None, seen
  finally:
    monkeypatch.setattr(loader, "to_global", real)


def _same(a, b):
  assert len(a) == len(b)
  for x, y in zip(a, b):
    assert len(x) == len(y)
    for u, v in zip(x, y):
      np.testing.assert_array_equal(u, v)


def test_kills_in_pretrain_and_sft_resume_with_the_same_next_batches(tmp_path, monkeypatch):
  full, batches = _run(tmp_path / "full", monkeypatch)
  assert len(batches) == 6 and all(len(b) == 4 for b in batches[:3])  # packed: segment ids
  assert all(len(b) == 3 for b in batches[3:])
  assert all((b[3].max(axis=1) >= 2).all() for b in batches[:3])  # rows hold several docs

  work = tmp_path / "resumed"
  killed, first = _run(work, monkeypatch, kill_at=2)      # in pretrain, at step 2
  assert killed is None
  _same(first, batches[:2])
  killed, second = _run(work, monkeypatch, kill_at=3)     # pretrain 2; sft 0, 1; kill at 2
  assert killed is None
  _same(second, batches[2:5])
  resumed, third = _run(work, monkeypatch)                # sft 2
  _same(third, batches[5:])

  for a, b in zip(jax.tree.leaves(full["final_params"]), jax.tree.leaves(resumed["final_params"])):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  strip = lambda w: [{k: v for k, v in r.items() if not k.startswith("time/")}
                     for r in metrics_lib.read_metrics(str(w / "metrics.jsonl"))]
  assert strip(tmp_path / "full") == strip(work)
  assert (work / "data" / "rl_jax_arithmetic").is_dir()  # prepared in <workdir>/data


def test_a_checkpoint_without_iterator_state_is_an_error_for_grain_batches():
  from rl_jax.stages import supervised  # pylint: disable=import-outside-toplevel
  batches = loader.example_batches(list(range(4)), lambda r, i: (np.zeros(2),), batch_size=2,
                                   seed_words=(0,), shard=(0, 1))
  with pytest.raises(ValueError, match="stage 'sft': its checkpoint at step 3 holds no "
                                       "data-iterator state"):
    supervised._resume(batches, {"done": False}, 3, "sft")  # pylint: disable=protected-access
