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
  # Domains of SFT, RL and evaluation (pretraining uses all five). In this world only
  # arithmetic (which verbs add) and comparison (bigger or smaller) need the words: lookup,
  # counting and sequence are solvable from numbers and repeated tokens in any cipher, so
  # translating cannot help there (measured: SFT reward on XLow = High with all five).
  c.domains = ("arithmetic", "comparison")

  c.model = config_dict.ConfigDict(dict(
      num_layers=2, hidden_size=128, num_heads=4, num_kv_heads=2, head_dim=32,
      intermediate_size=384, max_seq_len=64))
  # Slot layout: P prompt slots, N tokens per policy turn, R tool-response tokens, 1 call.
  c.layout = config_dict.ConfigDict(dict(prompt_len=28, turn_tokens=4, tool_tokens=26,
                                          doc_len=60))
  c.tool = config_dict.ConfigDict(dict(cost_mode="per_call", unit_cost=1.0, token_cost=0.02,
                                       malformed_reward=0.0))

  c.pretrain = config_dict.ConfigDict(dict(
      steps=600, batch_size=32, docs_per_row=2, learning_rate=2e-3, warmup_steps=50,
      min_lr_ratio=0.1))
  c.sft = config_dict.ConfigDict(dict(
      steps=150, batch_size=32, learning_rate=1e-3, warmup_steps=10, num_examples=2000,
      tool_frac=0.05, tool_context_frac=0.3))
  c.rl = config_dict.ConfigDict(dict(
      steps=80, prompts_per_step=16, group_size=8, learning_rate=3e-4, warmup_steps=5,
      temperature=1.0, num_epochs=1, num_minibatches=2,
      gates=("native_success", "none"), lams=(0.15, 0.4),
      tau=0.3, kappa=10.0, m_min=2, gate_mode="hard", track_every=20))
  c.eval = config_dict.ConfigDict(dict(
      items_per_lang=10, track_items_per_lang=3, batch_size=128, alpha_max=1.0, n_alpha=1001,
      plot=True))

  if arg == "runlocal":
    c.model.num_layers = 1
    c.model.hidden_size = 32
    c.model.num_heads = 2
    c.model.num_kv_heads = 1
    c.model.head_dim = 16
    c.model.intermediate_size = 64
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
    c.rl.lams = (0.5,)
    c.rl.track_every = 2
    c.eval.items_per_lang = 1
    c.eval.track_items_per_lang = 1
    c.eval.batch_size = 8  # = prompts_per_step * group_size: shares the compiled turns
    c.eval.n_alpha = 101
    c.eval.plot = False
  elif arg:
    raise ValueError(f"configs/gated_gspo_tiny_cipher.py: unknown config argument {arg!r}; "
                     "expected none or 'runlocal'")
  return c
