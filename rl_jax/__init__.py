"""rl_jax: JAX-native RL post-training of language models (GRPO/GSPO family, DPO, seed systems)."""

__version__ = "0.1.0"
