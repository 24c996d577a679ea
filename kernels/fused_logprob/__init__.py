"""Fused per-token log-prob (and entropy) without materialising [N, V] logits; see `api.py`."""
from rl_jax.kernels.fused_logprob.api import IMPLEMENTATIONS, fused_logprob, resolve_implementation

__all__ = ["IMPLEMENTATIONS", "fused_logprob", "resolve_implementation"]
