"""Host side of one RL step: rollout layout and rewards of `rl_step.sample_and_score`."""
import os
import sys

import jax
import numpy as np

from rl_jax import experiment, rl_step, tasks, trainer
from rl_jax.data.encoding import decode_responses
from rl_jax.tokenizers import load_tokenizer

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_sample_and_score_layout_and_rewards():
  sys.path.insert(0, REPO)
  try:
    from configs import quickstart  # pylint: disable=g-import-not-at-top
  finally:
    sys.path.remove(REPO)
  exp = experiment.from_config_dict(quickstart.get_config("runlocal"))
  tok = load_tokenizer(exp.tokenizer)
  task = tasks.make_task("arithmetic", train_size=8, eval_size=4)
  model_cfg, params = trainer.build_model(exp, tok.vocab_size, jax.random.key(0))
  ctx = trainer._rl_context(exp, task, tok, model_cfg)  # pylint: disable=protected-access
  problems = task.train[:3]
  rewards, payload = rl_step.sample_and_score(params, problems, jax.random.key(1), ctx)
  g = exp.rl.group_size
  assert rewards.shape == (3 * g,) and rewards.dtype == np.float32
  mask = np.asarray(payload["loss_mask"])
  assert not mask[:, :exp.prompt_len].any()  # prompt slots are never trained on
  assert (np.asarray(payload["old_logp"])[mask == 0] == 0).all()
  np.testing.assert_array_equal(mask.sum(axis=1), payload["response_len"])
  texts = decode_responses(tok, payload["tokens"], mask, exp.prompt_len, (tok.eos_id,))
  # Row i belongs to problem i // G (the group layout every advantage function assumes).
  want = [task.reward_fn(problems[i // g], texts[i]) for i in range(3 * g)]
  np.testing.assert_array_equal(rewards, np.asarray(want, np.float32))
