"""Translate-R1 on the cipher-language world: pretrain -> SFT (rare tool use) -> GSPO variants
-> cost-sensitivity sweep (seed S1; docs/translate_r1.md).

Full reproduction (one command, < 30 min on 2 CPU cores for seed 0):

  python -m rl_jax.main --config=configs/gated_gspo_tiny_cipher.py --workdir=runs/translate_r1

Seed table over several runs (and each run's report.md / results.json / pareto.png):

  python -m rl_jax.projects.translate_r1.report runs/translate_r1 runs/translate_r1_seed1 ...

Shrunk pipeline check (what tests/projects/translate_r1 runs):

  python -m rl_jax.main --config=configs/gated_gspo_tiny_cipher.py:runlocal --workdir=runs/tr1

Override anything on the command line, e.g. `--config.seed=1 --config.rl.steps=20`. RL trains
one policy per combination of `rl.sweep` (gate x lambda), each from the SFT policy; gate
"native_success" is the confidence-gated policy, "none" the ungated cost penalty. The SFT policy
is evaluated as is (the overconfident baseline), with the tool call forced (always-translate)
and forbidden (never-translate). Every field is documented in rl_jax/experiment.py and, for the
project's parts, in rl_jax/projects/translate_r1/ (task, scorer, evaluator, report) and
rl_jax/algorithms/advantage_parts.py (the gate).
"""
from ml_collections import config_dict

from rl_jax import config_defaults


def get_config(arg=None):
  c = config_dict.ConfigDict()
  c.seed = 0
  c.imports = ("rl_jax.projects.translate_r1",)
  c.tokenizer = ""  # the task brings the world's word tokenizer
  # Domains of SFT, RL and evaluation (pretraining uses all five too). Every domain needs the
  # meaning of the words (numbers are written as words), so translating can help in each.
  # tool_frac: demonstrations that call the tool (rare: the overconfident baseline);
  # tool_context_frac: demonstrations with the call and response as loss-0 context, so the
  # policy can read a tool response without being taught to call; train_call_syntax [I]: in
  # those, the call after its first token is trained (the syntax, not the decision to call;
  # without it about two thirds of sampled call attempts were malformed, docs/translate_r1.md
  # §5). Pretraining packs documents (a corpus of pretrain.steps x batch_size x docs_per_row) into
  # rows of `doc_len` tokens with segment ids (the data layer, docs/architecture.md).
  c.task = config_dict.ConfigDict(dict(
      name="translate_r1_cipher", world_seed=0,
      domains=("arithmetic", "lookup", "comparison", "counting", "sequence"),
      doc_len=64, docs_per_row=3, corpus_docs=0, sft_examples=2000, tool_frac=0.05, tool_context_frac=0.3,
      train_call_syntax=True, cost_mode="per_call", unit_cost=1.0, token_cost=0.02))
  # Slot layout: P prompt slots (the longest item is 16 words, + 3 for a forced call), N tokens
  # per policy turn, R tool-response tokens (16 words + 2 tags), 1 call.
  c.prompt_len = 20
  c.max_new_tokens = 4
  c.logprob_impl = "naive"
  c.log_every = 1
  c.timing = False
  # scan_unroll = num_layers runs the two blocks unrolled (about 20% faster on a CPU).
  c.model = config_dict.ConfigDict(dict(name="tiny", hf_checkpoint="", overrides=dict(
      num_layers=2, hidden_size=128, num_heads=4, num_kv_heads=2, head_dim=32,
      intermediate_size=384, max_seq_len=64, scan_unroll=2)))
  c.stages = ("pretrain", "sft", "rl")
  c.pretrain = config_dict.ConfigDict(dict(
      steps=1000, batch_size=32, learning_rate=2e-3, warmup_steps=50, schedule="cosine",
      min_lr_ratio=0.1))
  c.sft = config_dict.ConfigDict(dict(steps=150, batch_size=32, learning_rate=1e-3,
                                      warmup_steps=10, schedule="cosine"))
  # GSPO-token with decision_weight 10 [I]: the advantage of the call decision (the first policy
  # token of a sampled rollout) is scaled alone (gated_gspo.decision_weighted_advantages; 1 =
  # plain GSPO). At lr 5e-4 the native answers drift (High accuracy falls ~10 points); at 2e-4
  # alone the call decision is learned too slowly for the price. One GSPO update per rollout:
  # with eps 3e-4 a second, off-policy mini-batch is almost entirely clipped.
  # drop_zero_advantage: rows whose advantage is 0 (~30% of them) are left out of the update,
  # the kept rows padded to a multiple of this many rows: same loss and gradient, less compute.
  # rollout: the translate tool, one call; native_rows rollouts per group are forced to answer
  # natively ("<answer>" forced with loss 0): gate evidence in every group; row_bucket: turns
  # after the first generate only for the rows that called the tool, padded to 32 rows.
  # advantage (the core's "gated" part): tau, the gate opens (cost charged) where the group's
  # native accuracy is >= tau; mode "hard" (1[p >= tau]) or "soft" (sigmoid(kappa (p - tau)));
  # threshold "fixed" | "tool_gain" | "tool_gain_floor"; m_min native answers needed before any
  # cost is charged; cost_in "reward" (SPEC) | "advantage"; history_decay [I]: pool each
  # group's native evidence with a decayed history per cell (cell_attrs: ("lang",) per
  # language, ("lang", "domain") per language and domain; docs/translate_r1.md §5);
  # history_weight [I] caps the history at that many native answers (inf = all of it);
  # cost_free_steps / cost_free_until_rate [I]: lambda is 0 until this many steps have passed or
  # the sampled call rate of a step first reaches the rate (tool use is explored first).
  # sweep: one policy per (gate, lam), all from the SFT policy, with the same prompts and keys.
  c.rl = config_dict.ConfigDict(dict(
      algorithm="gspo_token", steps=300, prompts_per_step=16, group_size=8, num_epochs=1,
      num_minibatches=1, num_microbatches=1, learning_rate=2e-4, warmup_steps=5,
      schedule="cosine", temperature=1.0, adv_normalize="std", drop_zero_advantage=32,
      rollout=dict(name="tool", max_calls=1, tool_tokens=20, row_bucket=32, native_rows=2,
                   native_prefix="<answer>"),
      scorer=dict(name="translate_r1_episode", malformed_reward=0.0),
      advantage=dict(name="gated", gate="native_success", lam=0.1, tau=0.5, kappa=10.0,
                     mode="hard", threshold="fixed", m_min=2, cost_in="reward",
                     history_decay=0.9, history_weight=float("inf"), cell_attrs=("lang",),
                     cost_free_steps=60, cost_free_until_rate=0.4, decision_weight=10.0),
      sweep=dict(advantage=dict(gate=("native_success", "none"), lam=(0.1, 0.25, 0.5)))))
  # items_per_lang, raised per group to min_items_per_group (base has one language: without it
  # a quarter of R would rest on 10 items); the tracking set's greedy translate rate per
  # language every `every` RL steps.
  c.eval = config_dict.ConfigDict(dict(
      evaluator=dict(name="translate_r1", items_per_lang=10, min_items_per_group=60,
                     track_items_per_lang=3, baselines_after="sft"),
      every=50, at_stage_end=True, batch_size=128))
  c.checkpoint = config_dict.ConfigDict(dict(every=0, keep=2, async_save=True))
  c.mesh = config_dict.ConfigDict(dict(data=-1, fsdp=1, tensor=1))
  # The Pareto sweep covers alpha in [0, alpha_max] (None = the largest trained lambda).
  c.report = config_dict.ConfigDict(dict(
      name="translate_r1", alpha_max=config_dict.FieldReference(None, field_type=float),
      n_alpha=1001, plot_pareto=True))

  if arg == "runlocal":
    c.model.overrides.update(num_layers=1, hidden_size=32, num_heads=2, num_kv_heads=1,
                             head_dim=16, intermediate_size=64, scan_unroll=1)
    c.pretrain.update(steps=4, batch_size=8, warmup_steps=1)
    c.sft.update(steps=3, batch_size=8, warmup_steps=1)
    c.task.sft_examples = 40
    c.task.tool_frac = 0.25  # enough tool demos that a tiny run exercises the tool path
    c.rl.update(steps=2, prompts_per_step=2, group_size=4, warmup_steps=0)
    c.rl.advantage.cost_free_steps = 1  # step 0 free, step 1 charged: both paths run
    c.rl.drop_zero_advantage = 4  # = group_size: the dropping path runs in the CI test
    c.rl.rollout.row_bucket = 4  # and so does the compacted tool turn
    c.rl.sweep.advantage.lam = (0.5,)
    c.eval.every = 1
    c.eval.evaluator.update(items_per_lang=1, min_items_per_group=1, track_items_per_lang=1)
    c.eval.batch_size = 8  # = prompts_per_step * group_size: shares the compiled turns
    c.report.n_alpha = 101
    c.report.plot_pareto = False
  elif arg:
    raise ValueError(f"configs/gated_gspo_tiny_cipher.py: unknown config argument {arg!r}; "
                     "expected none or 'runlocal'")
  return config_defaults.overridable(c)
