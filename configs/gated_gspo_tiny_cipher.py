"""Translate-R1 on the cipher-language world: pretrain -> SFT (rare tool use) -> GSPO variants
-> cost-sensitivity sweep (SPEC §1(c)).

Full reproduction (one command, < 30 min on 2 CPU cores):

  python -m rl_jax.recipes.translate_r1 --config=configs/gated_gspo_tiny_cipher.py \
      --workdir=/tmp/translate_r1

Shrunk pipeline check (what tests/recipes/translate_r1_test.py runs):

  python -m rl_jax.recipes.translate_r1 --config=configs/gated_gspo_tiny_cipher.py:runlocal \
      --workdir=/tmp/translate_r1_local

Override anything on the command line, e.g. `--config.seed=1 --config.rl.steps=20`. RL trains
one policy per (gate, lambda) in `rl.gates` x `rl.lams`; gate "native_success" is the
confidence-gated policy, "none" the ungated cost penalty. The SFT policy is evaluated as is
(the overconfident baseline), with the tool call forced (always-translate) and forbidden
(never-translate).
"""
from ml_collections import config_dict


def get_config(arg=None):
  c = config_dict.ConfigDict()
  c.seed = 0
  c.world_seed = 0
  # Domains of SFT, RL and evaluation (pretraining uses all five too). Every domain needs the
  # meaning of the words (numbers are written as words), so translating can help in each.
  c.domains = ("arithmetic", "lookup", "comparison", "counting", "sequence")

  # scan_unroll = num_layers runs the two blocks unrolled (ModelConfig.scan_unroll: about 20%
  # faster on a CPU, the same model).
  c.model = config_dict.ConfigDict(dict(
      num_layers=2, hidden_size=128, num_heads=4, num_kv_heads=2, head_dim=32,
      intermediate_size=384, max_seq_len=64, scan_unroll=2))
  # Slot layout: P prompt slots (the longest item is 16 words, + 3 for a forced call), N tokens
  # per policy turn, R tool-response tokens (16 words + 2 tags), 1 call; pretraining packs
  # `docs_per_row` documents into rows of `doc_len` tokens, so the positions an answer takes
  # after a tool response (slot ~P + N + R) are trained too.
  # row_bucket: turns after the first generate only for the rows that called the tool, padded
  # to a multiple of this many rows (ToolLoopCfg.row_bucket; 0 = every row in every turn).
  c.layout = config_dict.ConfigDict(dict(prompt_len=20, turn_tokens=4, tool_tokens=20,
                                          doc_len=64, row_bucket=32))
  c.tool = config_dict.ConfigDict(dict(cost_mode="per_call", unit_cost=1.0, token_cost=0.02,
                                       malformed_reward=0.0))

  c.pretrain = config_dict.ConfigDict(dict(
      steps=1000, batch_size=32, docs_per_row=3, learning_rate=2e-3, warmup_steps=50,
      min_lr_ratio=0.1))
  # tool_frac: demonstrations that call the tool (rare: the overconfident baseline);
  # tool_context_frac: demonstrations with the call and response as loss-0 context, so the
  # policy can read a tool response without being taught to call; train_call_syntax [I]: in
  # those, the call after its first token is trained (the syntax, not the decision to call;
  # without it about two thirds of sampled call attempts were malformed, docs/translate_r1.md
  # §5).
  c.sft = config_dict.ConfigDict(dict(
      steps=150, batch_size=32, learning_rate=1e-3, warmup_steps=10, num_examples=2000,
      tool_frac=0.05, tool_context_frac=0.3, train_call_syntax=True))
  # learning_rate 2e-4 with decision_weight 10 [I]: at 5e-4 the native answers drift (High
  # accuracy falls ~10 points); at 2e-4 alone the call decision is learned too slowly for the
  # price and gated lambda >= 0.25 loses tool use in 2 of 3 seeds. decision_weight scales the
  # advantage of the call decision (the first policy token of a sampled rollout) alone, through
  # GSPO-token (gated_gspo.decision_weighted_advantages; 1 = plain GSPO; docs/translate_r1.md §5).
  # One GSPO update per rollout (num_minibatches=1): with eps 3e-4 a second, off-policy
  # mini-batch is almost entirely clipped. tau: the gate opens (cost charged) where the group's
  # native accuracy is >= tau; gate_mode: "hard" (g = 1[p_native >= tau]) or "soft"
  # (g = sigmoid(kappa (p_native - tau)), SPEC §1(a) 5); gate_threshold [I]: "fixed" (tau) or
  # "tool_gain" (the threshold is the group's call accuracy minus the price, p_tool - lam * c:
  # the cost is charged where the tool gains less than it costs, so a higher lam charges more
  # cells) or "tool_gain_floor" (the larger of tau and p_tool - lam * c: cells below tau are
  # never charged; gated_gspo module docstring); m_min: native answers the group (with
  # its history) needs before any cost is charged. lams: the cost-sensitivity sweep; both
  # families train at each.
  # adv_normalize: "std" (SPEC §1(a) 6, GRPO-style) or "none" (Dr.-style): with "std" a small
  # cost in an all-correct group becomes a unit-size advantage (docs/translate_r1.md §5).
  # cost_in: "reward" (SPEC) or "advantage" (cost added after the normalisation).
  # native_rows: rollouts per group forced to answer natively ("<answer>" forced with loss 0,
  # the answer trained): gate evidence and a native contrast in every group (0 = off).
  # cost_free_steps, cost_free_until_rate [I]: lambda is 0 until this many steps have passed or
  # the sampled call rate of a step first reaches the rate (tool use is explored first).
  # gate_history_decay [I]: pool each group's native evidence with a decayed history of
  # earlier steps (0 = the group alone, SPEC §1(a) 4); gate_history_key [I]: one history per
  # "language" or per "language_domain" pair (the finer one lets gated policies skip the Low
  # cells they solve natively: higher Pareto share, but some XLow tool use lost in one of
  # three seeds; docs/translate_r1.md §5); gate_history_weight [I]: the history counts as at
  # most this many native answers (inf = its full decayed counts; a small weight lets a group's
  # own answers decide and the history break ties).
  # lr_drop_step, lr_drop_factor [I]: from this RL step on the peak learning rate is multiplied
  # by the factor (-1 = never): a fast start for the call decision, small steps for the answers.
  # kl_beta, kl_scope [I]: k3 KL to the SFT policy (the RL start) with this weight (0 = off, as
  # in the GSPO preset); scope "all" = every policy token, "native" = only the rows that did not
  # attempt a call (the native answers; needs one update per rollout).
  # drop_zero_advantage: rows whose advantage is 0 (groups with equal rewards, ~30% of them)
  # are left out of the update, the kept rows padded to a multiple of this many rows: the same
  # loss and gradient for less compute (update.drop_zero_advantage_rows; 0 = off; not with KL).
  c.rl = config_dict.ConfigDict(dict(
      steps=300, prompts_per_step=16, group_size=8, learning_rate=2e-4, warmup_steps=5,
      temperature=1.0, num_epochs=1, num_minibatches=1,
      gates=("native_success", "none"), lams=(0.1, 0.25, 0.5),
      tau=0.5, kappa=10.0, m_min=2, gate_mode="hard", gate_threshold="fixed", track_every=50,
      adv_normalize="std", cost_in="reward", native_rows=2, cost_free_steps=60,
      cost_free_until_rate=0.4, gate_history_decay=0.9, gate_history_key="language",
      gate_history_weight=float("inf"),
      kl_beta=0.0, kl_scope="all", lr_drop_step=-1, lr_drop_factor=1.0, decision_weight=10.0,
      drop_zero_advantage=32))
  # items_per_lang, raised per group to min_items_per_group (base has one language: without it
  # a quarter of R would rest on 10 items). alpha_max: top of the Pareto sweep; None = the
  # largest trained lambda (SPEC §1(a) 8: the sweep covers the trained range); the share over
  # [0, 1] is reported as well.
  c.eval = config_dict.ConfigDict(dict(
      items_per_lang=10, min_items_per_group=60, track_items_per_lang=3, batch_size=128,
      alpha_max=config_dict.FieldReference(None, field_type=float), n_alpha=1001,
      plot=True))

  if arg == "runlocal":
    c.model.num_layers = 1
    c.model.hidden_size = 32
    c.model.num_heads = 2
    c.model.num_kv_heads = 1
    c.model.head_dim = 16
    c.model.intermediate_size = 64
    c.model.scan_unroll = 1
    c.pretrain.steps = 4
    c.pretrain.batch_size = 8
    c.pretrain.warmup_steps = 1
    c.sft.steps = 3
    c.sft.batch_size = 8
    c.sft.num_examples = 40
    c.sft.tool_frac = 0.25  # enough tool demos that a tiny run exercises the tool path
    c.sft.warmup_steps = 1
    c.rl.steps = 2
    c.rl.prompts_per_step = 2
    c.rl.group_size = 4
    c.rl.warmup_steps = 0
    c.rl.cost_free_steps = 1  # step 0 free, step 1 charged: both paths run
    c.rl.drop_zero_advantage = 4  # = group_size: the dropping path runs in the CI test
    c.layout.row_bucket = 4  # and so does the compacted tool turn
    c.rl.lams = (0.5,)
    c.rl.track_every = 2
    c.eval.items_per_lang = 1
    c.eval.min_items_per_group = 1
    c.eval.track_items_per_lang = 1
    c.eval.batch_size = 8  # = prompts_per_step * group_size: shares the compiled turns
    c.eval.n_alpha = 101
    c.eval.plot = False
  elif arg:
    raise ValueError(f"configs/gated_gspo_tiny_cipher.py: unknown config argument {arg!r}; "
                     "expected none or 'runlocal'")
  return c
