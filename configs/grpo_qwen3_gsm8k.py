"""GRPO on GSM8K with a real Qwen3 checkpoint (accelerators; `runlocal` runs it tiny on CPU).

    python -m rl_jax.main --config=configs/grpo_qwen3_gsm8k.py \
        --config.model.hf_checkpoint=/path/to/Qwen3-1.7B --config.tokenizer=/path/to/Qwen3-1.7B \
        --workdir=runs/grpo_qwen3_gsm8k

On a TPU pod: launch/tpu_pod.sh (see README "Run on a TPU pod"). Memory per device for a mesh:
`python -m rl_jax.plan --model qwen3_1_7b --topology v5p-64 --batch 512 --seq-len 1280`.
`:runlocal` uses the bundled GSM8K tokenizer and a tiny random model (pipeline check only).
"""
from rl_jax import config_defaults as common


def get_config(arg=None):
  c = common.base_config()
  c.tokenizer = "gsm8k_unigram"
  # path / eval_path: your own GSM8K-format JSONL files ("" = the bundled splits).
  c.task = dict(name="gsm8k", train_size=0, eval_size=500, path="", eval_path="")
  c.model.name = "qwen3_1_7b"
  c.prompt_len = 256
  c.max_new_tokens = 1024
  c.logprob_impl = "auto"  # fused log-probs: no f32 [B, T, 151936] logits
  c.sft.steps = 0  # instruct checkpoints need no warm start
  c.rl.algorithm = "grpo"
  c.rl.steps = 500
  c.rl.prompts_per_step = 64
  c.rl.group_size = 16
  c.rl.num_minibatches = 4
  c.rl.num_microbatches = 8
  c.rl.learning_rate = 1e-6
  c.rl.warmup_steps = 20
  c.rl.use_kl_loss = True
  c.rl.beta = 0.04
  c.eval.every = 50
  c.eval.batch_size = 100
  c.checkpoint.every = 50
  c.mesh.data, c.mesh.fsdp, c.mesh.tensor = 1, -1, 1

  def runlocal(c):
    c.model.name = "tiny"
    c.model.hf_checkpoint = ""  # random init (the bundled arithmetic checkpoint has 24 tokens)
    c.model.overrides = {"num_layers": 1, "hidden_size": 32, "num_heads": 2, "num_kv_heads": 1,
                         "head_dim": 16, "intermediate_size": 64}
    c.prompt_len = 160
    c.max_new_tokens = 8
    c.task.train_size = 16
    c.task.eval_size = 4
    c.eval.batch_size = 4
    c.logprob_impl = "naive"
    c.sft.steps = 0  # GSM8K solutions do not fit the 8-token runlocal budget
    # A random model never answers correctly; a small format term (a number as the answer)
    # makes rewards vary within groups, so the CI run has non-zero advantages and gradients.
    c.rl.scorer = {"name": "weighted", "rewards": {"gsm8k_math": 1.0, "answer_is_number": 0.1}}

  return common.finish(c, arg, runlocal)
