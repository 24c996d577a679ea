"""Model shapes: frozen dataclasses, hashable so they can be static arguments of `jax.jit`.

The real Qwen3 shapes follow the official Hugging Face `config.json` files of Qwen/Qwen3-*B.
They are used with `jax.eval_shape` (planning, tests) and by the weight loader; CPU tests never
instantiate them.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Mapping


REMAT_POLICIES = ("none", "dots", "full")
# The projections LoRA can adapt (`lora_targets`): attention and MLP kernels of every block.
LORA_PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclasses.dataclass(frozen=True)
class ModelConfig:
  """Shape and numerics of a Qwen3-style decoder.

  Attributes:
    vocab_size: rows of the embedding table (V).
    hidden_size: model width (D).
    num_layers: decoder blocks (L).
    num_heads: query heads (H).
    num_kv_heads: key/value heads (K); H % K == 0 (grouped-query attention).
    head_dim: per-head width; Qwen3 decouples it from D / H.
    intermediate_size: SwiGLU hidden width (F).
    rope_theta: RoPE base frequency.
    rms_norm_eps: epsilon of every RMSNorm (layer norms and per-head q/k norms).
    tie_embeddings: the unembedding is the transposed embedding table (Qwen3-0.6B/1.7B/4B).
    param_dtype: storage dtype of parameters ("float32" | "bfloat16").
    dtype: compute dtype of matmuls ("float32" | "bfloat16"); norms, softmax and
      log-probs always run in float32.
    max_seq_len: longest sequence (prompt + response) the model is used with.
    scan_unroll: decoder blocks per iteration of the layer `lax.scan` (1 = a loop over one
      compiled block, fast compiles for deep models; num_layers = fully unrolled). Unrolling a
      tiny model is ~20% faster on CPU (the backward of a rolled scan stacks per-layer residuals
      with dynamic-update-slices and copies); the numbers are the same either way.
    remat: activation rematerialisation of each decoder block in training forwards:
      "none" saves every intermediate for the backward pass; "dots" saves only matmul outputs
      (`jax.checkpoint_policies.dots_with_no_batch_dims_saveable`), recomputing norms, RoPE
      and activations; "full" saves only each block's input and recomputes the block in the
      backward pass (least memory, one more forward). `rl_jax.plan` reads this field for its
      activation bytes. Decoding is never rematerialised.
    lora_rank: rank r of LoRA adapters (arXiv 2106.09685) on the `lora_targets` projections;
      0 = no adapters (full fine-tuning). With r > 0 the params carry `lora_a` [L, in, r] and
      `lora_b` [L, r, out] (float32) next to each targeted kernel, every projection computes
      x W + (alpha / r) (x A) B, and only the adapters are trained (`rl_jax.models.lora`,
      docs/lora.md). Set it with `model.overrides.lora_rank`.
    lora_alpha: LoRA scale numerator: the adapter output is multiplied by lora_alpha / lora_rank.
    lora_targets: which projections get adapters, a subset of `LORA_PROJECTIONS` (default all
      seven: q, k, v, o, gate, up, down).
  """
  vocab_size: int
  hidden_size: int
  num_layers: int
  num_heads: int
  num_kv_heads: int
  head_dim: int
  intermediate_size: int
  rope_theta: float = 1_000_000.0
  rms_norm_eps: float = 1e-6
  tie_embeddings: bool = True
  param_dtype: str = "float32"
  dtype: str = "float32"
  max_seq_len: int = 512
  scan_unroll: int = 1
  remat: str = "none"
  lora_rank: int = 0
  lora_alpha: float = 16.0
  lora_targets: tuple = LORA_PROJECTIONS  # of str; bare `tuple` so ml-collections can type it

  def __post_init__(self):
    for name in ("vocab_size", "hidden_size", "num_layers", "num_heads", "num_kv_heads",
                 "head_dim", "intermediate_size", "max_seq_len", "scan_unroll"):
      if int(getattr(self, name)) <= 0:
        raise ValueError(f"ModelConfig.{name} must be a positive integer, got {getattr(self, name)!r}")
    if self.num_heads % self.num_kv_heads:
      raise ValueError(f"ModelConfig.num_heads ({self.num_heads}) must be a multiple of "
                       f"num_kv_heads ({self.num_kv_heads}) for grouped-query attention")
    if self.head_dim % 2:
      raise ValueError(f"ModelConfig.head_dim must be even for RoPE, got {self.head_dim}")
    if self.remat not in REMAT_POLICIES:
      raise ValueError(f"ModelConfig.remat must be one of {REMAT_POLICIES}, got {self.remat!r}")
    if isinstance(self.lora_targets, str):  # "q_proj,v_proj" from a command line
      object.__setattr__(self, "lora_targets", tuple(t.strip() for t in
                                                     self.lora_targets.split(",") if t.strip()))
    object.__setattr__(self, "lora_targets", tuple(self.lora_targets))  # hashable (jit static)
    if int(self.lora_rank) < 0:
      raise ValueError(f"ModelConfig.lora_rank must be >= 0 (0 = no adapters), got "
                       f"{self.lora_rank!r}")
    unknown = [t for t in self.lora_targets if t not in LORA_PROJECTIONS]
    if unknown or (self.lora_rank and not self.lora_targets):
      raise ValueError(f"ModelConfig.lora_targets must be a non-empty subset of "
                       f"{LORA_PROJECTIONS}, got {self.lora_targets!r}")
    if self.lora_rank and not self.lora_alpha > 0:
      raise ValueError(f"ModelConfig.lora_alpha must be > 0, got {self.lora_alpha!r}")
    for name in ("param_dtype", "dtype"):
      if getattr(self, name) not in ("float32", "bfloat16"):
        raise ValueError(f"ModelConfig.{name} must be 'float32' or 'bfloat16', "
                         f"got {getattr(self, name)!r}")

  def replace(self, **changes: Any) -> "ModelConfig":
    return dataclasses.replace(self, **changes)

  def num_params(self) -> int:
    """Exact parameter count of the base model, from the shapes (independent of the module
    code; LoRA adapters are counted by `num_adapter_params`)."""
    d, f, l = self.hidden_size, self.intermediate_size, self.num_layers
    q = self.num_heads * self.head_dim
    kv = self.num_kv_heads * self.head_dim
    per_layer = d * q + 2 * d * kv + q * d + 3 * d * f + 2 * d + 2 * self.head_dim
    embed = self.vocab_size * d * (1 if self.tie_embeddings else 2)
    return embed + l * per_layer + d

  def to_hf_config(self) -> dict[str, Any]:
    """The Hugging Face Qwen3 `config.json` dict of this shape (`from_hf_config`'s inverse for
    every field HF has; `dtype`, `scan_unroll`, `remat` and the `lora_*` fields are run-time
    choices, not stored: an exported checkpoint has its adapters merged, `rl_jax.models.lora`)."""
    return {"architectures": ["Qwen3ForCausalLM"], "model_type": "qwen3",
            "vocab_size": self.vocab_size, "hidden_size": self.hidden_size,
            "num_hidden_layers": self.num_layers, "num_attention_heads": self.num_heads,
            "num_key_value_heads": self.num_kv_heads, "head_dim": self.head_dim,
            "intermediate_size": self.intermediate_size, "rope_theta": self.rope_theta,
            "rms_norm_eps": self.rms_norm_eps, "tie_word_embeddings": self.tie_embeddings,
            "max_position_embeddings": self.max_seq_len, "hidden_act": "silu",
            "attention_bias": False, "torch_dtype": self.param_dtype, "dtype": self.param_dtype}

  def num_adapter_params(self) -> int:
    """LoRA adapter parameters: r * (in + out) per targeted projection and layer."""
    d, f = self.hidden_size, self.intermediate_size
    q, kv = self.num_heads * self.head_dim, self.num_kv_heads * self.head_dim
    widths = {"q_proj": d + q, "k_proj": d + kv, "v_proj": d + kv, "o_proj": q + d,
              "gate_proj": d + f, "up_proj": d + f, "down_proj": f + d}
    if not self.lora_rank:
      return 0
    return self.num_layers * self.lora_rank * sum(widths[t] for t in self.lora_targets)

  @classmethod
  def from_hf_config(cls, hf: Mapping[str, Any], **overrides: Any) -> "ModelConfig":
    """Builds a config from a Hugging Face Qwen3 `config.json` dict."""
    required = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                "intermediate_size")
    missing = [k for k in required if k not in hf]
    if missing:
      raise ValueError(f"HF config is missing required keys {missing}")
    rope_theta = hf.get("rope_theta")
    if rope_theta is None:
      rope_theta = (hf.get("rope_parameters") or {}).get("rope_theta", 1_000_000.0)
    fields = dict(
        vocab_size=int(hf["vocab_size"]),
        hidden_size=int(hf["hidden_size"]),
        num_layers=int(hf["num_hidden_layers"]),
        num_heads=int(hf["num_attention_heads"]),
        num_kv_heads=int(hf.get("num_key_value_heads", hf["num_attention_heads"])),
        head_dim=int(hf.get("head_dim") or hf["hidden_size"] // hf["num_attention_heads"]),
        intermediate_size=int(hf["intermediate_size"]),
        rope_theta=float(rope_theta),
        rms_norm_eps=float(hf.get("rms_norm_eps", 1e-6)),
        tie_embeddings=bool(hf.get("tie_word_embeddings", False)),
        max_seq_len=int(hf.get("max_position_embeddings", 512)),
    )
    # The checkpoint's stored dtype ("torch_dtype", or "dtype" since transformers 5) becomes the
    # parameter and compute dtype: a bf16 Qwen3 loads in bf16 (half the memory, the precision it
    # was trained in). float16 has no place here (its range overflows in RL log-ratios): it
    # loads in float32. `overrides` (config `model.overrides`) win.
    stored = hf.get("torch_dtype") or hf.get("dtype")
    if stored is not None:
      if stored not in HF_DTYPES:
        raise ValueError(f"HF config torch_dtype {stored!r}: expected one of {sorted(HF_DTYPES)}")
      fields.update(param_dtype=HF_DTYPES[stored], dtype=HF_DTYPES[stored])
    fields.update(overrides)
    return cls(**fields)


# config.json dtype -> (param and compute) dtype of this model code.
HF_DTYPES = {"bfloat16": "bfloat16", "float32": "float32", "float16": "float32"}

_QWEN3_COMMON = dict(rope_theta=1_000_000.0, rms_norm_eps=1e-6, vocab_size=151_936,
                     head_dim=128, max_seq_len=40_960, param_dtype="bfloat16", dtype="bfloat16",
                     remat="full")

MODEL_CONFIGS: dict[str, ModelConfig] = {
    # ~0.8M parameters at V=512: the CPU default of the quickstart and the seed reproductions.
    # The vocabulary is replaced by the tokenizer's size at run time (`config.replace`).
    "tiny": ModelConfig(vocab_size=512, hidden_size=128, num_layers=3, num_heads=4,
                        num_kv_heads=2, head_dim=32, intermediate_size=384,
                        rope_theta=10_000.0, max_seq_len=256),
    "qwen3_0_6b": ModelConfig(hidden_size=1024, num_layers=28, num_heads=16, num_kv_heads=8,
                              intermediate_size=3072, tie_embeddings=True, **_QWEN3_COMMON),
    "qwen3_1_7b": ModelConfig(hidden_size=2048, num_layers=28, num_heads=16, num_kv_heads=8,
                              intermediate_size=6144, tie_embeddings=True, **_QWEN3_COMMON),
    "qwen3_4b": ModelConfig(hidden_size=2560, num_layers=36, num_heads=32, num_kv_heads=8,
                            intermediate_size=9728, tie_embeddings=True, **_QWEN3_COMMON),
    "qwen3_8b": ModelConfig(hidden_size=4096, num_layers=36, num_heads=32, num_kv_heads=8,
                            intermediate_size=12288, tie_embeddings=False, **_QWEN3_COMMON),
}


def get_model_config(name: str, **overrides: Any) -> ModelConfig:
  """Returns the named model config, with optional field overrides."""
  if name not in MODEL_CONFIGS:
    raise ValueError(f"unknown model config {name!r}; valid names: {sorted(MODEL_CONFIGS)}")
  return MODEL_CONFIGS[name].replace(**overrides) if overrides else MODEL_CONFIGS[name]
