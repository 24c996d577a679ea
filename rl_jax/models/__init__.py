"""rl_jax.models."""
