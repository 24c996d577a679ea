"""SWAP on verbose chain-of-thought arithmetic: SFT on verbose solutions, then three RL arms from
the same SFT policy (seed S5; docs/swap.md).

The study (one command: SFT, the three arms with the same prompts and sampling keys, the
held-out evaluation of each, and the report's results.md / results.json / curves.png /
final.png in the workdir):

  python -m rl_jax.main --config=configs/swap_tiny_arith.py --workdir=runs/swap

Seed table over several runs (`--config.seed=1`, ...):

  python -m rl_jax.projects.swap.report runs/swap runs/swap_seed1 runs/swap_seed2

Shrunk pipeline check (what tests/projects/swap runs, < 60 s):

  python -m rl_jax.main --config=configs/swap_tiny_arith.py:runlocal --workdir=runs/swap_ci

Arms (`rl.sweep` over rl.advantage.penalty; stage names rl_penalty=<arm>):
  none     outcome-only GRPO (A_{i,t} = A^out_i)
  uniform  GRPO + a trajectory-level length penalty: every token of a correct response carries
           M_i = alpha E_i / |o_i| (E_i: tokens beyond the group's shortest correct response)
  swap     SWAP: M_i redistributed to the response's low-importance steps
Each arm is one value of `penalty`; every other knob is shared, so the arms differ only in how
the excess-length penalty is placed. Override any field, e.g. `--config.rl.advantage.alpha=2`.
Every field of the SWAP advantage is documented in rl_jax/algorithms/swap.py (`SwapCfg`), the
others in rl_jax/experiment.py; the task, evaluator and report in rl_jax/projects/swap/.
"""
from ml_collections import config_dict

from rl_jax import config_defaults


def get_config(arg=None):
  c = config_dict.ConfigDict()
  c.seed = 0
  c.imports = ("rl_jax.projects.swap",)
  c.tokenizer = ""  # the task brings its character tokenizer
  # 2-3 operations per problem; 4-6 redundant steps per SFT demonstration (restatement,
  # duplicate verification, digression): ~53 tokens per demonstration, ~18 necessary. (With 2-4,
  # ~40 tokens, the necessary-steps floor is only ~32% below outcome-only GRPO: docs/swap.md.)
  c.task = config_dict.ConfigDict(dict(
      name="swap_verbose_arith", train_size=4000, eval_size=200, min_ops=2, max_ops=3,
      min_redundant=4, max_redundant=6))
  c.prompt_len = 8  # "7+5-3+2" is at most 7 characters
  c.max_new_tokens = 88  # the longest demonstration is 80 characters, 81 tokens with EOS
  c.logprob_impl = "auto"
  c.log_every = 1
  c.timing = False
  c.model = config_dict.ConfigDict(dict(name="tiny", hf_checkpoint="", overrides=dict(
      num_layers=2, hidden_size=64, num_heads=4, num_kv_heads=2, head_dim=16,
      intermediate_size=192, max_seq_len=128, scan_unroll=2)))
  c.stages = ("sft", "rl")
  c.sft = config_dict.ConfigDict(dict(steps=800, batch_size=64, learning_rate=3e-3,
                                      warmup_steps=20, schedule="cosine"))
  # advantage: the SWAP knobs (rl_jax/algorithms/swap.py, SwapCfg): alpha (penalty scale),
  # gamma (its weight in the advantage), tau (importance temperature), normalization
  # (softmax | minmax), weighting (linear | exp), reference (shortest | ratio) and ref_ratio,
  # units (per_response | per_token), outcome_normalize (std | none), the step splitter
  # (delimiter ";" here; or splitter="regex" with pattern) and the answer trigger "A",
  # answer_attr (the problems' field with y*), answer_eos, max_steps (K = 10 prefixes + the
  # empty one), max_answer_tokens. rollout "swap": the generate rollout plus the one-pass probe
  # of every step prefix (the importance of the sampling policy).
  # loss: GRPO's clipped objective with token-level aggregation (SPEC step 6), no KL.
  c.rl = config_dict.ConfigDict(dict(
      algorithm="grpo", agg="token_mean", beta=0.0, use_kl_loss=False, steps=100,
      prompts_per_step=16, group_size=8, num_epochs=1, num_minibatches=1, num_microbatches=1,
      learning_rate=2e-4, warmup_steps=5, schedule="constant", temperature=1.0,
      rollout=dict(name="swap"),
      advantage=dict(name="swap", penalty="swap", alpha=1.0, gamma=1.0, tau=1.0,
                     normalization="softmax", weighting="linear", reference="shortest",
                     ref_ratio=1.0, units="per_response", outcome_normalize="std",
                     splitter="delimiter", delimiter=";", trigger="A", answer_attr="answer",
                     answer_eos=True, max_steps=10, max_answer_tokens=3),
      sweep=dict(advantage=dict(penalty=("none", "uniform", "swap")))))
  # evaluator "swap": greedy accuracy / length / necessary steps kept on the held-out problems,
  # and the importance AUROC over num_samples sampled responses per problem.
  c.eval = config_dict.ConfigDict(dict(
      evaluator=dict(name="swap", max_problems=200, num_samples=2, temperature=1.0),
      every=25, at_stage_end=True, batch_size=100))
  c.checkpoint = config_dict.ConfigDict(dict(every=1000, keep=1, async_save=True))
  c.mesh = config_dict.ConfigDict(dict(data=-1, fsdp=1, tensor=1))
  c.report = config_dict.ConfigDict(dict(name="swap", plots=True))

  if arg == "runlocal":
    # Starts from the bundled SFT checkpoint of this config (rl_jax/data/assets/checkpoints/
    # swap_tiny_sft, held-out greedy accuracy in its README), so the two RL steps of each arm
    # see correct and incorrect responses of different lengths: non-zero rewards, penalties,
    # advantages and gradients. Two small SFT steps keep the SFT path exercised.
    c.model.hf_checkpoint = "swap_tiny_sft"
    c.model.overrides = {}
    c.task.update(train_size=64, eval_size=8)
    c.sft.update(steps=2, batch_size=8, learning_rate=1e-5, warmup_steps=0)
    c.rl.update(steps=2, prompts_per_step=2, group_size=4, warmup_steps=0)
    c.eval.update(every=0, batch_size=8)
    c.eval.evaluator.update(max_problems=8, num_samples=2)
    c.checkpoint.every = 0
  elif arg:
    raise ValueError(f"configs/swap_tiny_arith.py: unknown config argument {arg!r}; expected "
                     "none or 'runlocal'")
  return config_defaults.overridable(c)
