"""rl_jax.eval."""
