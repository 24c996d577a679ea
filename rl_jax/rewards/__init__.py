"""rl_jax.rewards."""
