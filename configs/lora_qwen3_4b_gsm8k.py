"""GRPO with LoRA on Qwen3-4B and GSM8K, sized for one 16 GB device (TPU v5e-1, 16 GB GPU).

    python -m rl_jax.main --config=configs/lora_qwen3_4b_gsm8k.py \
        --config.model.hf_checkpoint=/path/to/Qwen3-4B --config.tokenizer=/path/to/Qwen3-4B \
        --workdir=runs/lora_qwen3_4b

The plan of docs/scaling.md ("Qwen3-4B GRPO with LoRA on one 16 GB device"; 10.674 GiB of
16): G = 8 samples of up to 1,024 tokens for each of 2 prompts per step, LoRA rank 16 on all
seven projections (only the adapters get gradients and AdamW state), full remat, fused
log-probs, micro-batches of one row, and a KL term whose reference is the base model with the
adapters off (no second copy of the weights). colab/qwen3_4b_lora.ipynb runs it.

Fields set here (the rest are rl_jax/experiment.py's defaults, documented there):
  model.name / hf_checkpoint: qwen3_4b, loaded from a local Hugging Face folder (safetensors).
  model.overrides.lora_rank / lora_alpha: 16 / 32 (scale 2); remat "full".
  tokenizer: the checkpoint folder's tokenizer (set it with the checkpoint path).
  task: the bundled GSM8K splits (500 held-out problems scored every 50 steps).
  prompt_len / max_new_tokens: 256 / 1024 slots.
  rl.prompts_per_step x group_size: 2 x 8 = 16 rows per step, num_microbatches 16 (one row each).
  rl.learning_rate: 1e-5 (LoRA takes ~10x the full-fine-tuning step; docs/lora.md).
  rl.use_kl_loss / beta: True / 0.04 (the reference is free with LoRA).
  mesh: one device (all fsdp).
`:runlocal`: a tiny random model with rank-4 adapters and the bundled GSM8K tokenizer, two RL
steps (pipeline check on CPU, seconds).
"""
from rl_jax import config_defaults as common


def get_config(arg=None):
  c = common.base_config()
  c.tokenizer = "gsm8k_unigram"  # replace with the checkpoint folder (its tokenizer.json)
  c.task = dict(name="gsm8k", train_size=0, eval_size=500, path="", eval_path="")
  c.model.name = "qwen3_4b"
  c.model.overrides = dict(lora_rank=16, lora_alpha=32.0, remat="full")
  c.prompt_len = 256
  c.max_new_tokens = 1024
  c.logprob_impl = "auto"  # fused log-probs: no f32 [B, T, 151936] logits
  c.sft.steps = 0
  c.rl.algorithm = "grpo"
  c.rl.steps = 200
  c.rl.prompts_per_step = 2
  c.rl.group_size = 8
  c.rl.num_minibatches = 1
  c.rl.num_microbatches = 16
  c.rl.learning_rate = 1e-5
  c.rl.warmup_steps = 10
  c.rl.use_kl_loss = True
  c.rl.beta = 0.04
  c.eval.every = 50
  c.eval.batch_size = 16
  c.checkpoint.every = 25
  c.mesh.data, c.mesh.fsdp, c.mesh.tensor = 1, -1, 1

  def runlocal(c):
    c.model.name = "tiny"
    c.model.hf_checkpoint = ""
    c.model.overrides = {"num_layers": 1, "hidden_size": 32, "num_heads": 2, "num_kv_heads": 1,
                         "head_dim": 16, "intermediate_size": 64, "lora_rank": 4,
                         "lora_alpha": 8.0}
    c.prompt_len = 160
    c.max_new_tokens = 64
    c.task.train_size = 16
    c.task.eval_size = 4
    c.eval.batch_size = 4
    c.logprob_impl = "naive"
    c.sft.steps = 0
    c.rl.steps = 2
    c.rl.prompts_per_step = 16
    c.rl.num_microbatches = 2
    # A random model never answers; the format term makes rewards vary within groups. Only a
    # few percent of its 64-token completions hold a number, so 2 steps x 128 samples: a step
    # with a learning signal is near certain whatever the sampler's random stream (with one
    # step of 16 samples, most seeds had none).
    c.rl.scorer = {"name": "weighted", "rewards": {"gsm8k_math": 1.0, "answer_is_number": 0.1}}

  return common.finish(c, arg, runlocal)
