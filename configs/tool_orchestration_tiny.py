"""Multi-step tool orchestration with graduated rewards (seed S4, arXiv 2603.24709;
docs/tool_orchestration.md): SFT on synthesized traces, then GRPO with one policy per reward arm
(graduated, binary, R_atomic alone, R_orch alone), each from the same SFT policy with the same
prompts and sampling keys; every policy is evaluated greedily on held-out workflows.

One command (about 30 min on a shared 2-core CPU: 250 SFT steps, then 4 x 50 GRPO steps):

  python -m rl_jax.main --config=configs/tool_orchestration_tiny.py --workdir=runs/tool_orch

writes report.md / results.json / success.png into the workdir (report "tool_orchestration").
Re-print the table of a finished run:

  python -m rl_jax.projects.tool_orchestration.report runs/tool_orch

Shrunk pipeline check (what tests/projects/tool_orchestration/pipeline_test.py runs):

  python -m rl_jax.main --config=configs/tool_orchestration_tiny.py:runlocal --workdir=runs/to

Fields of the project's parts: rl_jax/projects/tool_orchestration/ (task, scorer, evaluator,
report); everything else: rl_jax/experiment.py.
"""
from ml_collections import config_dict

from rl_jax import config_defaults


def get_config(arg=None):
  c = config_dict.ConfigDict()
  c.seed = 0
  c.imports = ("rl_jax.projects.tool_orchestration",)
  c.tokenizer = ""  # the task trains its BPE tokenizer on the prompts and worked episodes
  # task: 160 training workflows (SFT demonstrations on sft_frac = 50% of them, SPEC 4(c)),
  # 64 held-out workflows (chains no training item has); 2 distractor tools per prompt (the
  # paper's num_distractors); query_writer: the Teacher behind the disk cache (the template
  # oracle; backend="openai" with base_url / model would use an LLM; cache_dir "" = memory).
  c.task = config_dict.ConfigDict(dict(
      name="tool_orchestration", train_size=160, eval_size=64, held_out_templates=(),
      num_distractors=2, query_variants=3, sft_frac=0.5, vocab_size=320,
      query_writer=dict(backend="oracle", cache_dir="", on_failure="fail")))
  # Layout: P = 28 prompt tokens (longest prompt 25), N = 36 per policy turn (longest call 35),
  # R = 16 response tokens (longest 16), up to 3 calls (templates have 2-3 steps).
  c.prompt_len = 28
  c.max_new_tokens = 36
  c.logprob_impl = "naive"
  c.log_every = 1
  c.timing = False
  c.model = config_dict.ConfigDict(dict(name="tiny", hf_checkpoint="", overrides=dict(
      num_layers=2, hidden_size=96, num_heads=4, num_kv_heads=2, head_dim=24,
      intermediate_size=256, max_seq_len=256, scan_unroll=2)))
  c.stages = ("sft", "rl")
  # A short SFT warm-up: it teaches the call format and most chains, not all of them, so RL has
  # something to fix (value errors dominate after it, as in the paper's analysis).
  c.sft = config_dict.ConfigDict(dict(steps=250, batch_size=32, learning_rate=2e-3,
                                      warmup_steps=10, schedule="cosine"))
  # GRPO (G = 8, SPEC 4(c)); no KL term [I] (the paper's k3 at 0.001 needs a reference forward
  # pass per step on a 2-core CPU). The scorer's reward is swept: one policy per arm.
  # malformed_reward: the reward of an episode with a malformed call (counted in
  # tool/malformed); None scores it as the authors' parser does (the malformed attempt is
  # dropped, the calls before it keep their credit; a fixed 0 made GRPO shorten episodes to
  # avoid malformed later calls in an earlier run, docs/tool_orchestration.md);
  # atomic_match: the trace a call's atomic validity is scored against, "first" (the paper's
  # code: the first step with its function) or "occurrence" (the k-th call of a function against
  # the k-th step with it; differs only on "flights", which searches two airports, where "first"
  # gives the right chain and a repeated origin search the same reward: docs/tool_orchestration.md);
  # weight_mode: orchestration step weights ("uniform", the paper's default); temperature 0.8
  # [I]: at 1.0 about 3/4 of the SFT policy's sampled episodes had a malformed call.
  c.rl = config_dict.ConfigDict(dict(
      algorithm="grpo", steps=50, prompts_per_step=8, group_size=8, num_epochs=1,
      num_minibatches=1, num_microbatches=1, learning_rate=2e-4, warmup_steps=0,
      beta=0.0, use_kl_loss=False, temperature=0.8,
      rollout=dict(name="tool", max_calls=3, tool_tokens=16),
      scorer=dict(name="tool_orchestration", reward="graduated", weight_mode="uniform",
                  atomic_match="first",
                  malformed_reward=config_dict.FieldReference(None, field_type=float)),
      sweep=dict(scorer=dict(reward=("graduated", "binary", "atomic", "orchestration")))))
  c.eval = config_dict.ConfigDict(dict(evaluator=dict(name="tool_orchestration"),
                                       every=0, at_stage_end=True, batch_size=64))
  c.checkpoint = config_dict.ConfigDict(dict(every=0, keep=1, async_save=True))
  c.mesh = config_dict.ConfigDict(dict(data=-1, fsdp=1, tensor=1))
  c.report = config_dict.ConfigDict(dict(name="tool_orchestration", plot_png=True))

  if arg == "runlocal":
    # Small enough for a CI test, trained enough that sampled episodes make parsable calls
    # (non-zero rewards and gradients in the RL steps).
    c.model.overrides.update(num_layers=2, hidden_size=64, num_heads=4, num_kv_heads=2,
                             head_dim=16, intermediate_size=192, scan_unroll=1)
    c.task.update(train_size=40, eval_size=8, sft_frac=1.0)
    c.sft.update(steps=60, batch_size=16, learning_rate=1e-2, warmup_steps=5)
    c.rl.update(steps=2, prompts_per_step=2, group_size=4)
    c.rl.sweep.scorer.reward = ("graduated", "binary")
    c.eval.batch_size = 8  # = prompts_per_step * group_size: shares the compiled turns
  elif arg:
    raise ValueError(f"configs/tool_orchestration_tiny.py: unknown config argument {arg!r}; "
                     "expected none or 'runlocal'")
  return config_defaults.overridable(c)
