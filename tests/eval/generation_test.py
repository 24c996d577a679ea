"""Eval through the rollout: pass@k vs brute force, majority vote, and greedy/sampled metrics of
a tiny random model on the arithmetic task (chunking and padding must not change results)."""
import dataclasses
import fractions
import itertools
import math

import jax
import numpy as np
import pytest

from rl_jax.data.encoding import decode_responses, encode_prompts
from rl_jax.envs.arithmetic import ArithmeticTask
from rl_jax.eval import generation as ev
from rl_jax.eval import scoring
from rl_jax.models import qwen3
from rl_jax.models.config import get_model_config
from rl_jax.sampling.generate import GenerateCfg, generate
from rl_jax.sharding import MeshCfg, make_mesh
from rl_jax.tokenizers import load_tokenizer
from rl_jax.types import SampleKnobs

TOK = load_tokenizer("arith_char")
CFG = get_model_config("tiny", vocab_size=TOK.vocab_size, num_layers=1, hidden_size=32,
                       num_heads=2, num_kv_heads=1, head_dim=16, intermediate_size=64,
                       max_seq_len=32)
PARAMS = qwen3.init_params(CFG, jax.random.key(0))
ARITH = ArithmeticTask()
PROBLEMS = ARITH.sample(5, 0)
P_LEN, N_NEW = 10, 8
COMMON = dict(tokenizer=TOK, model_cfg=CFG, prompt_len=P_LEN, max_new_tokens=N_NEW)


def text_reward(problem, text):
  """A reward a random model gets sometimes: 1 when the completion starts with a digit < 5."""
  return float(text[:1] in "01234" and text[:1] != "")


# ---- pass@k -----------------------------------------------------------------------------------
def brute_pass_at_k(n, c, k):
  """Fraction of the k-subsets of n samples (c correct) that hold a correct one."""
  subsets = list(itertools.combinations([1] * c + [0] * (n - c), k))
  return fractions.Fraction(sum(any(s) for s in subsets), len(subsets))


@pytest.mark.parametrize("n", [1, 2, 5, 7])
def test_pass_at_k_matches_brute_force(n):
  for c in range(n + 1):
    for k in range(1, n + 1):
      assert scoring.pass_at_k(n, c, k) == pytest.approx(float(brute_pass_at_k(n, c, k)),
                                                        abs=1e-12), (n, c, k)


def test_pass_at_k_hand_values_and_large_n():
  assert scoring.pass_at_k(5, 0, 1) == 0.0 and scoring.pass_at_k(5, 0, 5) == 0.0
  assert scoring.pass_at_k(5, 5, 3) == 1.0
  assert scoring.pass_at_k(10, 3, 1) == pytest.approx(0.3)
  # Exact binomials stay finite in the product form where C(n, k) floats would overflow.
  exact = 1 - fractions.Fraction(math.comb(1800, 100), math.comb(2000, 100))
  assert scoring.pass_at_k(2000, 200, 100) == pytest.approx(float(exact), rel=1e-9)


def test_mean_pass_at_k_is_mean_of_scalar():
  c = [0, 3, 10, 7, 1]
  for k in (1, 4, 10):
    want = np.mean([scoring.pass_at_k(10, ci, k) for ci in c])
    assert scoring.mean_pass_at_k(10, c, k) == pytest.approx(want, abs=1e-12)
  # Per-problem sample counts.
  assert scoring.mean_pass_at_k([4, 10], [1, 3], 1) == pytest.approx((0.25 + 0.3) / 2)


@pytest.mark.parametrize("n,c,k", [(3, 1, 4), (3, 4, 1), (-1, 0, 1), (3, -1, 1), (3, 1, 0)])
def test_pass_at_k_rejects_bad_counts(n, c, k):
  with pytest.raises(ValueError, match="pass@k"):
    scoring.pass_at_k(n, c, k)
  with pytest.raises(ValueError, match="pass@k"):
    scoring.mean_pass_at_k([max(n, 1), n], [0, c], k)


# ---- majority vote ----------------------------------------------------------------------------
def test_majority_vote_hand_cases():
  assert scoring.majority_vote(["a", "b", "b", "a", "b"]) == "b"
  assert scoring.majority_vote(["a", "b", "b", "a"]) == "a"  # tie: first seen wins
  assert scoring.majority_vote(["b", "a", "a", "b"]) == "b"
  assert scoring.majority_vote([None, None, "x", "y", "y"]) == "y"  # None never votes
  assert scoring.majority_vote([None, "x"]) == "x"
  assert scoring.majority_vote([None, None]) is None
  assert scoring.majority_vote([]) is None


def test_majority_correct_uses_the_samples_with_the_vote():
  assert scoring.majority_correct(["7", "7", "3"], [False, True, False])
  assert not scoring.majority_correct(["7", "7", "3"], [False, False, True])
  assert not scoring.majority_correct([None, None], [True, True])


def test_summarize_sampled_metrics_by_hand():
  rewards = np.array([[1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0], [1.0, 1.0, 1.0, 0.0]])
  samples = ev.Samples([["x"] * 4] * 3, np.full((3, 4), 2), np.zeros((3, 4), bool))
  answers = [["5", "6", "6", None], ["1", None, None, None], ["2", "2", "2", "9"]]
  m = ev.summarize(rewards, samples, sampled=True, ks=(1, 4), answers=answers, prefix="t")
  assert m == pytest.approx({"t/len_mean": 2.0, "t/truncated_frac": 0.0, "t/mean@4": 4 / 12,
                             "t/pass@1": (0.25 + 0 + 0.75) / 3, "t/pass@4": 2 / 3,
                             "t/maj@4": 1 / 3})


# ---- through the rollout ----------------------------------------------------------------------
def reference_greedy_texts(problems):
  """Greedy completions of all problems in one un-chunked `generate` call, decoded here."""
  tokens, valid = encode_prompts(TOK, [p.prompt for p in problems], P_LEN)
  cfg = GenerateCfg(max_new_tokens=N_NEW, stop_ids=(TOK.eos_id,), pad_id=TOK.pad_id)
  r = generate(PARAMS, tokens, valid, jax.random.key(9), SampleKnobs.create(0.0),
               model_cfg=CFG, cfg=cfg)
  texts = decode_responses(TOK, r.tokens_BxL, r.loss_mask_BxL, P_LEN, cfg.stop_ids)
  return texts, np.asarray(r.response_len_B)


def test_greedy_accuracy_and_padding_invariance():
  want_texts, want_len = reference_greedy_texts(PROBLEMS)
  want_acc = np.mean([text_reward(p, t) for p, t in zip(PROBLEMS, want_texts)])
  assert 0 < want_acc < 1, "reward should be mixed on the random model for a meaningful check"
  for bs in (3, 8):  # 5 prompts: chunks 3+2(padded) and 5(padded to 8)
    texts = ev.sample_completions(PARAMS, [p.prompt for p in PROBLEMS], key=jax.random.key(1),
                                  batch_size=bs, **COMMON)
    assert texts == [[t] for t in want_texts]
    m = ev.evaluate_problems(PARAMS, PROBLEMS, prompt_fn=lambda p: p.prompt,
                             reward_fn=text_reward, key=jax.random.key(1), batch_size=bs,
                             **COMMON)
    assert m == pytest.approx({"eval/accuracy": want_acc, "eval/len_mean": want_len.mean(),
                               "eval/truncated_frac": np.mean(want_len == N_NEW)})


def test_sampled_metrics_keys_shapes_and_always_correct_reward():
  prompts = [p.prompt for p in PROBLEMS]
  kw = dict(key=jax.random.key(2), batch_size=3, num_samples=4, temperature=1.0, **COMMON)
  texts = ev.sample_completions(PARAMS, prompts, **kw)
  assert len(texts) == 5 and all(len(row) == 4 for row in texts)
  assert len({t for row in texts for t in row}) > 1  # actually sampled
  again = ev.sample_completions(PARAMS, prompts, **kw)
  assert again == texts  # same key, same samples

  m = ev.evaluate_problems(PARAMS, PROBLEMS, prompt_fn=lambda p: p.prompt,
                           reward_fn=lambda p, t: 1.0, answer_fn=lambda t: t[:1] or None,
                           ks=(1, 2, 4), prefix="heldout", **kw)
  assert set(m) == {"heldout/len_mean", "heldout/truncated_frac", "heldout/mean@4",
                    "heldout/pass@1", "heldout/pass@2", "heldout/pass@4", "heldout/maj@4"}
  assert m["heldout/mean@4"] == m["heldout/pass@1"] == m["heldout/pass@4"] == 1.0
  # maj@4 is 1 unless every sample of some problem is empty (then the vote is None).
  want_maj = np.mean([any(t for t in row) for row in texts])
  assert m["heldout/maj@4"] == pytest.approx(want_maj)
  # The task reward on independently scored texts gives the same mean@4.
  m2 = ev.evaluate_problems(PARAMS, PROBLEMS, prompt_fn=lambda p: p.prompt,
                            reward_fn=text_reward, ks=(4,), **kw)
  want = np.mean([[text_reward(p, t) for t in row] for p, row in zip(PROBLEMS, texts)])
  assert m2["eval/mean@4"] == pytest.approx(want)


def test_task_evaluator_hook_and_mesh():
  @dataclasses.dataclass
  class Task:
    eval: list
    prompt_fn = staticmethod(lambda p: p.prompt)
    reward_fn = staticmethod(lambda p, t: 1.0)

  hook = ev.make_task_evaluator(Task(PROBLEMS), batch_size=8, **COMMON)
  assert hook(PARAMS, jax.random.key(3))["eval/accuracy"] == 1.0
  mesh = make_mesh(MeshCfg(data=2, fsdp=4, tensor=1))
  meshed = ev.make_task_evaluator(Task(PROBLEMS), batch_size=8, mesh=mesh, **COMMON)
  assert meshed(PARAMS, jax.random.key(3)) == pytest.approx(hook(PARAMS, jax.random.key(3)))
  nan_task = dataclasses.replace(Task(PROBLEMS))
  nan_task.reward_fn = lambda p, t: float("nan")
  with pytest.raises(ValueError, match="problem 0, sample 0"):
    ev.make_task_evaluator(nan_task, batch_size=8, **COMMON)(PARAMS, jax.random.key(3))


def test_bad_settings_fail_at_setup():
  task = type("T", (), dict(eval=PROBLEMS, prompt_fn=None, reward_fn=None))()
  with pytest.raises(ValueError, match="identical completions"):
    ev.make_task_evaluator(task, batch_size=2, num_samples=4, temperature=0.0, **COMMON)
  with pytest.raises(ValueError, match="ks="):
    ev.make_task_evaluator(task, batch_size=2, num_samples=4, temperature=1.0, ks=(8,), **COMMON)
  with pytest.raises(ValueError, match="lacks"):
    ev.make_task_evaluator(object(), batch_size=2, **COMMON)
  with pytest.raises(ValueError, match="max_seq_len"):
    ev.make_task_evaluator(task, batch_size=2, **{**COMMON, "max_new_tokens": 40})
  with pytest.raises(ValueError, match="at least one prompt"):
    ev.sample_completions(PARAMS, [], key=jax.random.key(0), batch_size=2, **COMMON)
