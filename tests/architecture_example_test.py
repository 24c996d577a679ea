"""The worked example of docs/architecture.md, "add a task with a tool", run as a test.

The code between the START / END markers is the example; the doc shows it verbatim
(`test_the_doc_shows_this_example` compares the two, so they cannot drift). It adds a calculator
tool, an arithmetic task whose intended solution takes 2-3 calls, and a config that warm-starts
with SFT on worked episodes and then trains GRPO over tool rollouts, all through `rl_jax.main`.

The other tests check the contract the example relies on, against a hand-built episode: the
tool's response tokens carry loss_mask 0 (in the demonstrations and in real rollouts) and are
absent from the loss. "Absent" precisely: they add no term to the loss and nothing to its
denominator, the loss has zero gradient with respect to the policy's log-prob of them, and
whatever the batch holds there (old / reference log-probs, per-token advantages, even NaN) the
loss, its gradient and the optimizer step are bitwise unchanged. They still condition the later
policy tokens through attention, as the prompt does: that is context, not a loss term.
"""
# [START calc_chain_example]
import re

import ml_collections
import numpy as np

from rl_jax.sampling.tool_loop import ToolLoopCfg, assemble
from rl_jax.tasks import TASKS, TaskData
from rl_jax.tokenizers import train_sentencepiece
from rl_jax.tools import FunctionToolEnv, Tool

ANSWER = re.compile(r"\s*<answer>(\d+)</answer>\s*")


def add(a: int, b: int) -> int:
  return a + b


def calculator(max_calls: int) -> FunctionToolEnv:
  """One function; the policy calls it in the generic JSON syntax:
  <tool_call>\\n{"name": "add", "arguments": {"a": 3, "b": 4}}\\n</tool_call>"""
  return FunctionToolEnv({"add": Tool(add, cost=1.0, description="a + b")}, syntax="json",
                         max_calls=max_calls)


def prompt(numbers) -> str:
  return "add " + " ".join(str(x) for x in numbers)


def worked_episode(env, numbers) -> list[tuple[str, float]]:
  """The intended solution as (text, loss weight) segments: add the numbers one call at a time
  (each call followed by the tool's response, context: weight 0), then the answer tag."""
  episode, total, segments = env.new_episode(numbers), numbers[0], []
  for x in numbers[1:]:
    call = env.syntax.format_call("add", {"a": total, "b": x})
    result = env.execute(env.parse_call(call, episode), episode)
    total = int(result.text)
    segments += [(call, 1.0), (env.syntax.format_response(result.text), 0.0)]
  return segments + [(f"<answer>{total}</answer>", 1.0)]


def reward(numbers, transcript: str) -> float:
  """Exact match: the text after the last tool response is the answer tag with the sum."""
  match = ANSWER.fullmatch(transcript.rsplit("</tool_response>", 1)[-1])
  return float(match is not None and int(match.group(1)) == sum(numbers))


@TASKS.register("calc_chain")
def calc_chain_task(*, seed: int, exp, train_size: int = 1024, eval_size: int = 32,
                    max_number: int = 9) -> TaskData:
  """Sums of 3 or 4 numbers in [0, max_number]: 2 or 3 calls of `add`. `exp` (the run's config)
  gives the rollout layout, so the SFT demonstrations match rollouts slot for slot."""
  rng = np.random.default_rng([seed, 1])
  draws = (tuple(int(x) for x in rng.integers(0, max_number + 1, size=rng.integers(3, 5)))
           for _ in range(4 * (train_size + eval_size)))
  problems = list(dict.fromkeys(draws))[:train_size + eval_size]  # distinct problems
  train, held_out = problems[:train_size], problems[train_size:]
  r = exp.rl.rollout
  env = calculator(r.max_calls)
  completion = lambda p: "".join(text for text, _ in worked_episode(env, p))
  # A tokenizer that can write the JSON calls: BPE on the prompts and worked episodes; the tool
  # tags are single pieces already (rl_jax.tokenizers.CHAT_SPECIALS), the answer tags are added.
  tok = train_sentencepiece([prompt(p) for p in train] + [completion(p) for p in train],
                            vocab_size=96, model_type="bpe", byte_fallback=False,
                            extra_symbols=("<answer>", "</answer>"))
  layout = ToolLoopCfg(prompt_len=exp.prompt_len, turn_tokens=exp.max_new_tokens,
                       tool_tokens=r.tool_tokens, max_calls=r.max_calls)

  def demonstration(numbers):
    """(prompt ids, response ids, loss mask): every segment encoded on its own, as in a
    rollout, where each policy turn is sampled and each tool response is appended."""
    ids, mask = [], []
    for text, weight in worked_episode(env, numbers):
      piece = tok.encode(text)
      ids, mask = ids + piece, mask + [weight] * len(piece)
    return tok.encode(prompt(numbers)), ids, mask

  demos = [demonstration(p) for p in train]
  batch = assemble(*zip(*demos), [[0.0] * len(d[1]) for d in demos],
                   prompt_len=layout.prompt_len, total_len=layout.total_len, pad_id=tok.pad_id)
  arrays = (batch["tokens_BxL"], batch["valid_BxL"], batch["loss_mask_BxL"])

  def sft_batch(batch_size: int, rng: np.random.Generator):
    rows = rng.choice(len(train), batch_size, replace=False)
    return tuple(a[rows] for a in arrays)

  return TaskData("calc_chain", train, held_out, prompt_fn=prompt, completion_fn=completion,
                  reward_fn=reward, tool_env=env, tokenizer=tok,
                  stop_ids=(tok.token_id("</answer>"),), sft_batch=sft_batch)


def get_config(arg=None) -> ml_collections.ConfigDict:
  """What configs/calc_chain.py would hold (with `imports` naming the task's module):
  SFT on worked episodes, then GRPO over tool rollouts scored by the episode scorer."""
  c = ml_collections.ConfigDict()
  c.seed = 0
  c.task = {"name": "calc_chain"}
  c.stages = ("sft", "rl")
  c.prompt_len, c.max_new_tokens = 12, 28  # P; N per policy turn (a call is ~24 tokens)
  c.model = {"name": "tiny", "overrides": {"num_layers": 2, "hidden_size": 64, "num_heads": 4,
                                           "num_kv_heads": 2, "head_dim": 16,
                                           "intermediate_size": 192}}
  c.sft = {"steps": 400, "batch_size": 32, "learning_rate": 1e-2, "warmup_steps": 10}
  c.rl = {"algorithm": "grpo", "steps": 40, "prompts_per_step": 8, "group_size": 8,
          "beta": 0.0, "use_kl_loss": False, "learning_rate": 2e-4, "warmup_steps": 0,
          "rollout": {"name": "tool", "max_calls": 3, "tool_tokens": 4},
          "scorer": {"name": "episode"}}
  c.eval = {"batch_size": 32}
  if arg == "runlocal":  # seconds on a laptop CPU: what the test runs
    c.sft.steps, c.rl.steps, c.rl.prompts_per_step = 150, 3, 4
  return c
# [END calc_chain_example]


import os  # noqa: E402  (the tests; the example above is self-contained)
import types  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from rl_jax import experiment, main, metrics, optim  # noqa: E402
from rl_jax import update as update_lib  # noqa: E402
from rl_jax.algorithms import losses  # noqa: E402
from rl_jax.logprobs import token_logprobs  # noqa: E402
from rl_jax.sampling import tool_loop  # noqa: E402
from rl_jax.stages.context import build_model  # noqa: E402
from rl_jax.types import Batch, SampleKnobs  # noqa: E402

DOC = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs",
                   "architecture.md")
START, END = "# [START calc_chain_example]\n", "# [END calc_chain_example]\n"


def _exp():
  return experiment.from_config_dict(get_config("runlocal"))


def _hand_built(tok, numbers, prompt_len: int, total_len: int):
  """The slot layout of the intended episode, written out by hand (not through the example's
  `worked_episode` nor `assemble`): (tokens, valid, loss_mask, [(segment ids, is policy)])."""
  segments, total = [], numbers[0]
  for x in numbers[1:]:
    call = '<tool_call>\n{"name": "add", "arguments": {"a": %d, "b": %d}}\n</tool_call>' % (
        total, x)
    total += x
    segments += [(tok.encode(call), True),
                 (tok.encode(f"<tool_response>{total}</tool_response>"), False)]
  segments.append((tok.encode(f"<answer>{total}</answer>"), True))
  tokens = np.full(total_len, tok.pad_id, np.int32)
  valid = np.zeros(total_len, bool)
  mask = np.zeros(total_len, np.float32)
  prompt_ids = tok.encode("add " + " ".join(map(str, numbers)))
  tokens[prompt_len - len(prompt_ids):prompt_len] = prompt_ids
  valid[prompt_len - len(prompt_ids):prompt_len] = True
  at = prompt_len
  for ids, policy in segments:
    tokens[at:at + len(ids)], valid[at:at + len(ids)], mask[at:at + len(ids)] = ids, True, policy
    at += len(ids)
  return tokens, valid, mask, segments


def test_calc_chain_trains_grpo_with_the_tool_through_main(tmp_path):
  """The example end to end: SFT on worked episodes, then GRPO over real tool rollouts."""
  config = get_config("runlocal")
  summary = main.run(config, str(tmp_path), show_progress=False)
  records = metrics.read_metrics(str(tmp_path / "metrics.jsonl"))
  sft = [r for r in records if r["stage"] == "sft"]
  rl = [r for r in records if r["stage"] == "rl"]
  assert [r["step"] for r in sft] == list(range(config.sft.steps))
  assert [r["step"] for r in rl] == list(range(config.rl.steps))
  assert sft[-1]["sft/nll"] < 0.05 * sft[0]["sft/nll"]
  # Per-row call counts are integers, so a mean above 1 means some episode made >= 2 calls.
  assert max(r["tool/n_calls/mean"] for r in rl) > 1.5
  assert all(r["tool/malformed/mean"] < 0.5 for r in rl)
  # SFT makes the reward reachable: some step has a solved episode in a group that is not all
  # solved, so GRPO's advantage and the gradient are non-zero there.
  assert any(r["reward/mean"] > 0 and r["grad/norm"] > 0 for r in rl), rl
  for r in rl:
    assert np.isfinite([r["loss/total"], r["grad/norm"], r["entropy"]]).all()
  # Greedy held-out tool episodes after each stage (the eval hook of the tool rollout).
  for stage in ("sft", "rl"):
    assert summary["eval"][stage]["eval/tool_calls_mean"] >= 2.0
    assert 0.0 <= summary["eval"][stage]["eval/accuracy"] <= 1.0


def test_demonstrations_and_rollouts_give_tool_responses_loss_mask_0(monkeypatch):
  """loss_mask is 1 exactly on policy tokens (calls, answer) and 0 on prompt, tool-response and
  padding slots, in the task's SFT demonstrations and in a tool rollout of the same episode."""
  exp = _exp()
  task = calc_chain_task(seed=exp.seed, exp=exp)
  tok, r = task.tokenizer, exp.rl.rollout
  cfg = tool_loop.ToolLoopCfg(prompt_len=exp.prompt_len, turn_tokens=exp.max_new_tokens,
                              tool_tokens=r.tool_tokens, max_calls=r.max_calls,
                              stop_ids=(tok.eos_id,) + task.stop_ids, pad_id=tok.pad_id)
  assert cfg.total_len == exp.prompt_len + 4 * exp.max_new_tokens + 3 * r.tool_tokens

  # Demonstrations: one drawn row against the hand-built layout of its problem.
  row = np.random.default_rng(5).choice(len(task.train), 1, replace=False)[0]
  tokens, valid, mask = (a[0] for a in task.sft_batch(1, np.random.default_rng(5)))
  want = _hand_built(tok, task.train[row], cfg.prompt_len, cfg.total_len)
  np.testing.assert_array_equal(tokens, want[0])
  np.testing.assert_array_equal(valid, want[1])
  np.testing.assert_array_equal(mask, want[2])
  for problem in task.train:  # every policy turn of every demonstration fits a rollout turn
    for ids, policy in _hand_built(tok, problem, cfg.prompt_len, cfg.total_len)[3]:
      assert len(ids) <= (cfg.turn_tokens if policy else cfg.tool_tokens)

  # A rollout whose policy writes the intended calls and answer (a scripted `generate`).
  numbers = (3, 4, 5)
  tokens, valid, mask, segments = _hand_built(tok, numbers, cfg.prompt_len, cfg.total_len)
  turns = [ids for ids, policy in segments if policy]

  def scripted_generate(params, tokens_BxP, valid_BxP, key, knobs, *, model_cfg, cfg):
    p_t = tokens_BxP.shape[1]
    turn = (p_t - exp.prompt_len) // (exp.max_new_tokens + r.tool_tokens)
    out = np.full((1, p_t + cfg.max_new_tokens), tok.pad_id, np.int32)
    out[:, :p_t] = tokens_BxP
    new = np.zeros(out.shape, np.float32)
    new[0, p_t:p_t + len(turns[turn])] = 1.0
    out[0, p_t:p_t + len(turns[turn])] = turns[turn]
    return types.SimpleNamespace(tokens_BxL=out, loss_mask_BxL=new, logp_policy_BxL=-new,
                                 logp_sample_BxL=-new, truncated_B=np.zeros(1, bool))

  monkeypatch.setattr(tool_loop, "generate", scripted_generate)
  out = tool_loop.tool_rollout(None, [numbers], [prompt(numbers)], task.tool_env, tok,
                               jax.random.key(0), SampleKnobs.create(1.0), model_cfg=None,
                               cfg=cfg)
  ro = out.rollout
  np.testing.assert_array_equal(ro.tokens_BxL[0], tokens)
  np.testing.assert_array_equal(ro.valid_BxL[0], valid)
  np.testing.assert_array_equal(ro.loss_mask_BxL[0], mask)
  np.testing.assert_array_equal(ro.logp_policy_BxL[0], -mask)  # 0 on every context token
  assert out.episodes[0].ledger.n_calls == 2
  assert task.reward_fn(numbers, out.transcripts[0]) == 1.0
  assert task.reward_fn(numbers, out.transcripts[0].replace("<answer>12", "<answer>13")) == 0.0


def test_tool_response_tokens_are_absent_from_the_loss():
  """On a hand-built batch through the real model: no loss term, no denominator count and no
  gradient at tool-response slots, and garbage there changes nothing (module docstring)."""
  exp = _exp()
  task = calc_chain_task(seed=exp.seed, exp=exp)
  tok, r = task.tokenizer, exp.rl.rollout
  total_len = exp.prompt_len + (r.max_calls + 1) * exp.max_new_tokens + r.max_calls * r.tool_tokens
  rows = [_hand_built(tok, n, exp.prompt_len, total_len) for n in ((3, 4, 5), (2, 6, 1, 8))]
  tokens, valid, mask = (jnp.asarray(np.stack([row[i] for row in rows])) for i in range(3))
  response = np.asarray(valid) & (np.arange(total_len) >= exp.prompt_len) & (np.asarray(mask) == 0)
  # <tool_response> digits </tool_response>: 7, 12 and 8, 9, 17.
  assert response.sum(1).tolist() == [3 + 4, 3 + 3 + 4]
  model_cfg, params = build_model(exp, tok.vocab_size, jax.random.key(0), total_len)
  logp = token_logprobs(params, tokens, valid, cfg=model_cfg)
  rng = np.random.default_rng(0)
  noise = lambda: jnp.asarray(rng.normal(0, 0.3, logp.shape), jnp.float32)
  old_logp, ref_logp = logp + noise(), logp + noise()
  adv = jnp.asarray([1.0, -1.0])
  pre = losses.preset("grpo")  # token ratios, per-sequence token mean, k3 KL with beta 0.04
  knobs = losses.LossKnobs.create(**pre.knobs)

  def loss(logp_BxT, old, ref, adv_):
    loss_sum, denom, _ = losses.policy_loss(logp_BxT, old, adv_, mask, knobs, cfg=pre.cfg,
                                            ref_logp_BxT=ref)
    return loss_sum / denom

  value, grad = jax.value_and_grad(loss)(logp, old_logp, ref_logp, adv)
  grad = np.asarray(grad)
  policy = np.asarray(mask) > 0
  assert (grad[~policy] == 0).all()  # the loss ignores the policy's log-prob of context tokens
  assert (grad[policy] != 0).all()

  # An independent reference over the policy tokens only (numpy, float64).
  lp, old, ref = (np.asarray(x, np.float64) for x in (logp, old_logp, ref_logp))
  per_seq = []
  for i, a in enumerate([1.0, -1.0]):
    t = policy[i]
    ratio = np.exp(lp[i, t] - old[i, t])
    pg = np.maximum(-a * ratio, -a * np.clip(ratio, 0.8, 1.2))
    kl = np.exp(ref[i, t] - lp[i, t]) - (ref[i, t] - lp[i, t]) - 1.0
    per_seq.append(np.mean(pg + 0.04 * kl))
  np.testing.assert_allclose(float(value), np.mean(per_seq), rtol=1e-5)

  # Garbage at every mask-0 slot (NaN, huge values) in what the batch carries there.
  garbage = lambda x, fill: jnp.where(jnp.asarray(policy), x, fill)
  adv_BxL = jnp.broadcast_to(adv[:, None], logp.shape)
  for args in [(garbage(logp, 1e4), old_logp, ref_logp, adv),
               (logp, garbage(old_logp, jnp.nan), garbage(ref_logp, -1e4), adv),
               (logp, garbage(old_logp, 50.0), ref_logp, garbage(adv_BxL, jnp.nan))]:
    v2, g2 = jax.value_and_grad(loss)(*args)
    assert float(v2) == float(value)
    np.testing.assert_array_equal(np.asarray(g2), grad)

  # The compiled update program: the same optimizer step, bitwise, with or without garbage.
  update_cfg = update_lib.UpdateCfg(model=model_cfg, loss=pre.cfg, optim=optim.OptimCfg(),
                                    num_microbatches=2)
  step = update_lib.make_update_step(update_cfg)
  update_knobs = update_lib.UpdateKnobs.create(knobs, 1e-3)

  def run(batch):
    state = update_lib.init_train_state(jax.tree.map(jnp.copy, params), update_cfg)
    return step(state, batch, update_knobs)

  clean = Batch(tokens_BxL=tokens, valid_BxL=valid, loss_mask_BxL=mask, old_logp_BxL=old_logp,
                ref_logp_BxL=ref_logp, advantages_B=adv, advantages_BxL=adv_BxL)
  dirty = clean.replace(old_logp_BxL=garbage(old_logp, jnp.nan),
                        ref_logp_BxL=garbage(ref_logp, 1e4),
                        advantages_BxL=garbage(adv_BxL, -1e4))
  (s1, m1), (s2, m2) = run(clean), run(dirty)
  np.testing.assert_allclose(float(m1["loss/total"]), float(value), rtol=1e-5)
  assert float(m1["grad/norm"]) > 0
  assert float(m2["loss/total"]) == float(m1["loss/total"])
  jax.tree.map(np.testing.assert_array_equal, s1.params, s2.params)


def test_the_doc_shows_this_example():
  """docs/architecture.md's worked example is this file's example, character for character."""
  with open(__file__, encoding="utf-8") as f:
    source = f.read()
  example = source[source.index(START) + len(START):source.index(END)]
  with open(DOC, encoding="utf-8") as f:
    doc = f.read()
  blocks = re.findall(r"<!-- example: tests/architecture_example_test.py -->\n```python\n(.*?)```",
                      doc, re.S)
  assert len(blocks) == 1, "the doc should hold the example once, after its marker comment"
  assert blocks[0] == example
