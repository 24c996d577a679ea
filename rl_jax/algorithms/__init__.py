"""rl_jax.algorithms."""
