"""LoRA GRPO on the quickstart task: adapters only, from the bundled SFT checkpoint.

    python -m rl_jax.main --config=configs/lora_quickstart.py --workdir=runs/lora_qs

The quickstart's RL stage (configs/quickstart.py: GRPO on 3-operand 2-digit additions) with
LoRA adapters of rank 8 on every attention and MLP projection of the frozen 63K-parameter SFT
checkpoint `arith_tiny_sft` (the base model; SFT is skipped). Only the adapters get gradients
and Adam state; `model.overrides.lora_rank=0` runs the same stage as full fine-tuning, which is
the comparison of docs/lora.md:

    python -m rl_jax.main --config=configs/lora_quickstart.py --workdir=runs/full_qs \
        --config.model.overrides.lora_rank=0 --config.rl.learning_rate=2e-4

Fields set here (every other field is the quickstart's, documented in rl_jax/experiment.py):
  model.hf_checkpoint: "arith_tiny_sft", the bundled SFT checkpoint (greedy accuracy 0.53).
  model.overrides.lora_rank / lora_alpha / lora_targets: `ModelConfig`'s LoRA fields (rank 8,
    scale alpha / rank = 2, all seven projections); rl_jax/models/lora.py.
  sft.steps: 0 (the checkpoint is already fine-tuned).
  rl.steps: 60 RL steps of 32 prompts x 8 samples.
  rl.learning_rate: 2e-3; LoRA usually needs a ~10x larger step than full fine-tuning (its
    updates live in a rank-r subspace and B starts at 0; arXiv 2106.09685 §4; docs/lora.md).
`:runlocal` shrinks it to two RL steps with a small KL term against the base (adapters off);
tests/models/lora_test.py runs it through rl_jax.main.
"""
from rl_jax import config_defaults as common


def get_config(arg=None):
  c = common.base_config()
  c.model.hf_checkpoint = "arith_tiny_sft"
  c.model.overrides = dict(lora_rank=8, lora_alpha=16.0)
  c.sft.steps = 0
  c.rl.algorithm = "grpo"
  c.rl.steps = 60
  c.rl.prompts_per_step = 32
  c.rl.learning_rate = 2e-3
  c.eval.every = 20

  def runlocal(c):  # shrink_for_ci resets the overrides and turns SFT back on
    c.model.overrides = dict(lora_rank=8, lora_alpha=16.0)
    c.sft.steps = 0
    # A small KL term (the full run has none) so the CI run also exercises the LoRA reference:
    # the base model with the adapters off.
    c.rl.use_kl_loss = True
    c.rl.beta = 0.01

  return common.finish(c, arg, runlocal)
