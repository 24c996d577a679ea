"""The stage plan (order, start params, sweeps, reserved and missing stages) and the SFT stage's
epoch order."""
import types
import zlib

import numpy as np
import pytest

from rl_jax import experiment, stages, tasks
from rl_jax.data.encoding import encode_examples
from rl_jax.stages import supervised
from rl_jax.tokenizers import load_tokenizer


def test_preference_stage_is_planned_like_the_others(load_config):
  c = load_config("quickstart")
  c["stages"] = ("sft", "rl", "preference")
  assert [s.name for s in stages.plan(experiment.from_config_dict(c))] == ["sft", "rl"]
  c["preference"] = {"steps": 3}  # tests/preference_stage_test.py runs the stage
  specs = stages.plan(experiment.from_config_dict(c))
  assert [(s.name, s.kind, s.start_from) for s in specs][-1] == ("preference", "preference", "rl")


def test_start_from_a_missing_stage_is_an_error(load_config):
  c = load_config("quickstart")
  c["rl"]["start_from"] = "pretrain"  # pretrain has 0 steps: it does not run
  with pytest.raises(ValueError, match=r"config rl\.start_from='pretrain' names no earlier "
                                       r"stage that trains; stages before it: \['sft'\]"):
    experiment.from_config_dict(c)
  c["rl"]["start_from"] = ""
  c["sft"]["start_from"] = "rl"  # a later stage is not a start
  with pytest.raises(ValueError, match=r"config sft\.start_from='rl' names no earlier stage "
                                       r"that trains; stages before it: \[\]"):
    experiment.from_config_dict(c)


def test_plan_orders_stages_and_sweeps_start_from_the_same_params(load_config):
  c = load_config("quickstart")
  c["pretrain"] = {"steps": 0}
  c["rl"]["sweep"] = {"learning_rate": (1e-4, 2e-4)}
  specs = stages.plan(experiment.from_config_dict(c))
  assert [(s.name, s.kind, s.start_from) for s in specs] == [
      ("sft", "sft", ""), ("rl_learning_rate=0.0001", "rl", "sft"),
      ("rl_learning_rate=0.0002", "rl", "sft")]
  assert [s.section.learning_rate for s in specs[1:]] == [1e-4, 2e-4]
  assert specs[1].overrides == {"learning_rate": 1e-4}
  # An explicit start_from skips the stage in between; the stage after it follows it.
  c["rl"]["sweep"] = {}
  c["pretrain"] = {"steps": 2}
  c["rl"]["start_from"] = "pretrain"
  specs = stages.plan(experiment.from_config_dict(c))
  assert [(s.name, s.start_from) for s in specs] == [("pretrain", ""), ("sft", "pretrain"),
                                                     ("rl", "pretrain")]
  # A 0-step stage is left out: RL then starts from the initial params.
  c["rl"]["start_from"] = ""
  c["pretrain"] = {"steps": 0}
  c["sft"]["steps"] = 0
  specs = stages.plan(experiment.from_config_dict(c))
  assert [(s.name, s.start_from) for s in specs] == [("rl", "")]


def test_sft_batches_are_one_seeded_permutation_per_epoch():
  seed, n, batch_size, prompt_len, new_tokens = 3, 10, 4, 10, 10
  task = tasks.make_task("arithmetic", num_operands=2, num_digits=2, train_size=n, eval_size=2)
  tok = load_tokenizer("arith_char")
  ctx = types.SimpleNamespace(task=task, tokenizer=tok, exp=types.SimpleNamespace(
      seed=seed, prompt_len=prompt_len, max_new_tokens=new_tokens))
  batches = supervised.demonstration_batches(ctx)
  sft_id = zlib.crc32(b"sft") & 0x7FFFFFFF
  seen = []
  for step in range(6):  # 2 full batches per epoch (the last 2 examples of each are left out)
    epoch, offset = divmod(step, 2)
    order = np.random.default_rng([seed, sft_id, epoch]).permutation(n)
    rows = order[offset * batch_size:(offset + 1) * batch_size]
    tokens, valid, loss_mask = batches(step, batch_size)
    assert tokens.shape == (batch_size, prompt_len + new_tokens)
    for r, i in enumerate(rows):
      want = encode_examples(tok, [task.prompt_fn(task.train[i])],
                             [task.completion_fn(task.train[i])], prompt_len, new_tokens)
      np.testing.assert_array_equal(tokens[r], want[0][0])
      np.testing.assert_array_equal(valid[r], want[1][0])
      np.testing.assert_array_equal(loss_mask[r], want[2][0])
    seen.append(rows)
  for epoch in range(3):  # no example twice within an epoch
    rows = np.concatenate(seen[2 * epoch:2 * epoch + 2])
    assert len(set(rows.tolist())) == 2 * batch_size
  assert not np.array_equal(seen[0], seen[2])  # epochs are reshuffled
  np.testing.assert_array_equal(batches(1, batch_size)[0], batches(1, batch_size)[0])


def test_sft_without_train_problems_is_an_error():
  task = types.SimpleNamespace(name="empty", train=[])
  with pytest.raises(ValueError, match="task 'empty' has no train problems for the sft stage"):
    supervised.demonstration_batches(types.SimpleNamespace(task=task, exp=None))
